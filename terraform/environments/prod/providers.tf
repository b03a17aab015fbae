# Real AWS, with the usual credential chain (AWS_PROFILE, SSO, environment variables, instance role).
provider "aws" {
  region = var.region
  # Refuses to plan or apply with credentials of any other account: prod never lands in dev by mistake.
  allowed_account_ids = length(var.allowed_account_ids) > 0 ? var.allowed_account_ids : null

  # Every resource carries these; var.tags (passed to the platform) only adds to them.
  default_tags {
    tags = {
      project     = "paystream"
      environment = var.environment
      managed_by  = "terraform"
    }
  }
}
