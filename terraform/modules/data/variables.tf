variable "transactions_table_name" {
  description = "Name of the transactions table (event store + projection, pk/sk)."
  type        = string
}

variable "idempotency_table_name" {
  description = "Name of the API idempotency table (Powertools idempotency layout: key `id`, TTL `expiration`)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting both tables."
  type        = string
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery on both tables."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect both tables from deletion (blocks `terraform destroy`, so false locally)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for the tables."
  type        = map(string)
  default     = {}
}
