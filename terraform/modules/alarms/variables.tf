variable "name_prefix" {
  description = "Prefix of every alarm name: <prefix>-dlq-<key>, <prefix>-iterator-age-<key>, <prefix>-stream-write-throttled-<key>, <prefix>-stripe-breaker-open."
  type        = string
}

variable "dead_letter_queues" {
  description = "Dead-letter queues to watch, by a static key: queue name. Any visible message raises the alarm."
  type        = map(string)
}

variable "iterator_age_alarms" {
  description = "Stream consumers to watch, by a static key: the Lambda function and how many seconds behind its stream (IteratorAge) it may fall, for evaluation_periods periods in a row, before the alarm fires."
  type = map(object({
    function_name      = string
    threshold_seconds  = number
    evaluation_periods = optional(number, 3)
  }))
  default = {}

  validation {
    condition     = alltrue([for a in values(var.iterator_age_alarms) : a.threshold_seconds >= 1 && a.evaluation_periods >= 1])
    error_message = "threshold_seconds and evaluation_periods must be at least 1."
  }
}

variable "provisioned_streams" {
  description = "PROVISIONED Kinesis streams to watch, by a static key: stream name. The alarm fires when writes are refused (WriteProvisionedThroughputExceeded) for 3 periods in a row. Leave ON_DEMAND streams out: they scale themselves."
  type        = map(string)
  default     = {}
}

variable "alarm_action_arns" {
  description = "ARNs notified when an alarm fires and when it clears (the ops-alerts topic)."
  type        = list(string)

  validation {
    condition     = length(var.alarm_action_arns) > 0
    error_message = "alarm_action_arns needs at least one ARN: an alarm nobody hears is a silent failure."
  }
}

variable "period_seconds" {
  description = "Evaluation period of each alarm."
  type        = number
  default     = 60

  validation {
    condition     = contains([10, 30], var.period_seconds) || (var.period_seconds >= 60 && var.period_seconds % 60 == 0)
    error_message = "period_seconds must be 10, 30 or a multiple of 60."
  }
}

variable "tags" {
  description = "Tags for the alarms."
  type        = map(string)
  default     = {}
}

variable "breaker_open_alarm" {
  description = <<-EOT
    The Stripe circuit breaker's "opened" EMF metric (null: no alarm): its namespace (the functions'
    Powertools metrics namespace), its name, and the `service` dimension (POWERTOOLS_SERVICE_NAME) of
    every function that shares the breaker. The alarm fires when any of them reports an opening.
  EOT
  type = object({
    namespace   = string
    metric_name = optional(string, "StripeBreakerOpened")
    services    = list(string)
  })
  default = null

  validation {
    # A metric-math alarm takes at most 10 queries: the services' metrics and the sum.
    condition     = var.breaker_open_alarm == null || try(length(var.breaker_open_alarm.services) >= 1 && length(var.breaker_open_alarm.services) <= 9, false)
    error_message = "breaker_open_alarm.services must name 1 to 9 services (a metric-math alarm takes at most 10 queries)."
  }

  validation {
    condition     = var.breaker_open_alarm == null || try(length(trimspace(var.breaker_open_alarm.namespace)) > 0, false)
    error_message = "breaker_open_alarm.namespace must not be empty."
  }
}
