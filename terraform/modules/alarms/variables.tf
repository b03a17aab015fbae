variable "name_prefix" {
  description = "Prefix of every alarm name: <prefix>-dlq-<key>."
  type        = string
}

variable "dead_letter_queues" {
  description = "Dead-letter queues to watch, by a static key: queue name. Any visible message raises the alarm."
  type        = map(string)
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
