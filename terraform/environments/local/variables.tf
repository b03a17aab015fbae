variable "aws_endpoint_url" {
  description = "AWS API endpoint of the local emulator."
  type        = string
  default     = "http://127.0.0.1:4566"

  validation {
    condition     = can(regex("^https?://[^/]+/?$", var.aws_endpoint_url))
    error_message = "aws_endpoint_url must be a base URL like http://127.0.0.1:4566."
  }
}

variable "region" {
  description = "AWS region the emulator answers as."
  type        = string
  default     = "us-east-1"
}

variable "artifacts_dir" {
  description = "Directory `make package` writes to (functions/<name>.zip, layers/core.zip, layers/deps.zip), relative to this directory or absolute."
  type        = string
  default     = "../../../build"
}

variable "stripe_api_base" {
  description = "Base URL of the Stripe API the functions call (localstripe locally)."
  type        = string
  default     = "http://127.0.0.1:8420"
}

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "paystream-local"

  validation {
    condition     = can(regex("^[a-z0-9-]{1,32}$", var.name_prefix))
    error_message = "name_prefix must be 1-32 lower-case letters, digits or '-'."
  }
}

variable "bus_name" {
  description = "Name of the event bus (the public contract is \"payments\"; tests sharing one emulator pick their own)."
  type        = string
  default     = "payments"
}

variable "capture_mode" {
  description = "automatic: PaymentIntents capture when confirmed. risk_gated: they are only authorized; a fraud score below review captures them, a payment held in review waits for scripts/review.py approve|decline (docs/fraud.md)."
  type        = string
  default     = "automatic"

  validation {
    condition     = contains(["automatic", "risk_gated"], var.capture_mode)
    error_message = "capture_mode must be automatic or risk_gated."
  }
}
