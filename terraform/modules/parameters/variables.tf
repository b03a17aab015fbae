variable "parameters" {
  description = "Configuration parameters by a static key: SSM name (a path starting with /), description and value (e.g. a JSON document)."
  type = map(object({
    name        = string
    description = string
    value       = string
  }))

  validation {
    condition     = alltrue([for p in values(var.parameters) : can(regex("^/[A-Za-z0-9_./-]+$", p.name)) && length(p.name) <= 1011])
    error_message = "Parameter names must be paths such as /paystream/fraud-config (letters, digits, _ . / -)."
  }

  validation {
    condition     = alltrue([for p in values(var.parameters) : length(p.value) > 0 && length(p.value) <= 4096])
    error_message = "Parameter values must be 1 to 4096 characters (a Standard parameter; SSM refuses an empty value)."
  }
}

variable "tags" {
  description = "Tags for the parameters."
  type        = map(string)
  default     = {}
}
