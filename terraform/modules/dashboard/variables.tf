variable "dashboard_name" {
  description = "Name of the CloudWatch dashboard, e.g. <prefix>-flow."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.dashboard_name))
    error_message = "dashboard_name must be 1-255 letters, digits, '_' or '-'."
  }
}

variable "region" {
  description = "Region of every metric on the dashboard (the platform's region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]+$", var.region))
    error_message = "region must be an AWS region such as eu-west-1."
  }
}

variable "period_seconds" {
  description = "Period of every graph, in seconds."
  type        = number
  default     = 60

  validation {
    condition     = var.period_seconds >= 60 && var.period_seconds % 60 == 0
    error_message = "period_seconds must be a multiple of 60."
  }
}

variable "api" {
  description = "The REST API: name (the ApiName dimension) and stage (the Stage dimension) of its AWS/ApiGateway metrics."
  type = object({
    name  = string
    stage = string
  })
}

variable "metrics_namespace" {
  description = "Namespace of the functions' EMF metrics (Powertools POWERTOOLS_METRICS_NAMESPACE)."
  type        = string
  default     = "paystream"

  validation {
    condition     = length(trimspace(var.metrics_namespace)) > 0
    error_message = "metrics_namespace must not be empty."
  }
}

variable "business_metrics" {
  description = <<-EOT
    Graphs of the functions' EMF metrics, in order: a title and the metrics it adds up per period (Sum),
    each by name and the `service` dimension Powertools gives it (the emitting function's
    POWERTOOLS_SERVICE_NAME), with an optional label (default: the name).
  EOT
  type = list(object({
    title = string
    metrics = list(object({
      name    = string
      service = string
      label   = optional(string)
    }))
  }))
  default = []

  validation {
    condition     = alltrue([for w in var.business_metrics : length(w.metrics) >= 1 && length(w.metrics) <= 100])
    error_message = "Each business_metrics graph needs 1 to 100 metrics."
  }
}

variable "function_names" {
  description = "Lambda functions by a short label: their errors, throttles and duration are graphed per function."
  type        = map(string)
  default     = {}
}

variable "queue_names" {
  description = "Consumer SQS queues by a short label: their depth (visible messages) and oldest message age are graphed."
  type        = map(string)
  default     = {}
}

variable "dead_letter_queue_names" {
  description = "Dead-letter queues (and on-failure destinations) by a short label: their depth is graphed."
  type        = map(string)
  default     = {}
}

variable "kinesis_stream_names" {
  description = "Kinesis streams by a short label: their GetRecords iterator age is graphed."
  type        = map(string)
  default     = {}
}

variable "stream_consumer_function_names" {
  description = "Functions reading a Kinesis or DynamoDB stream, by a short label: their Lambda IteratorAge is graphed."
  type        = map(string)
  default     = {}
}

variable "alarm_arns" {
  description = "Alarms shown in the dashboard's alarm status widget (at most 100, CloudWatch's limit)."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.alarm_arns) <= 100 && alltrue([for arn in var.alarm_arns : startswith(arn, "arn:")])
    error_message = "alarm_arns takes at most 100 alarm ARNs."
  }
}
