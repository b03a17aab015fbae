variable "transactions_table_name" {
  description = "Name of the transactions table (event store + projection, pk/sk)."
  type        = string
}

variable "idempotency_table_name" {
  description = "Name of the API idempotency table (Powertools idempotency layout: key `id`, TTL `expiration`)."
  type        = string
}

variable "fraud_profiles_table_name" {
  description = "Name of the fraud risk-profiles table (hash key `pk`: CUSTOMER#…, DEVICE#…, IP#…; TTL `expires_at`)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting every table."
  type        = string
}

variable "point_in_time_recovery" {
  description = "Enable point-in-time recovery on every table."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Protect every table from deletion (blocks `terraform destroy`, so false locally)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for the tables."
  type        = map(string)
  default     = {}
}
