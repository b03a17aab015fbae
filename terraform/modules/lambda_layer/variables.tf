variable "layer_name" {
  description = "Name of the layer."
  type        = string
}

variable "description" {
  description = "Description of the layer."
  type        = string
  default     = null
}

variable "filename" {
  description = "Path of the layer zip (built by `make package`)."
  type        = string
}

variable "source_code_hash" {
  description = "base64 SHA-256 of the zip (filebase64sha256): a new version is published when it changes."
  type        = string
}

variable "compatible_runtimes" {
  description = "Runtimes the layer is built for."
  type        = list(string)
  default     = ["python3.12", "python3.13"]

  validation {
    condition     = length(var.compatible_runtimes) > 0 && alltrue([for r in var.compatible_runtimes : contains(["python3.12", "python3.13"], r)])
    error_message = "compatible_runtimes must list python3.12 and/or python3.13."
  }
}
