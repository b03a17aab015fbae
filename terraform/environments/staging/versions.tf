terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  # Bucket, key, region and lock table come from backend.hcl at init:
  # `terraform init -backend-config=backend.hcl` (`make plan ENV=…` does it).
  backend "s3" {}
}
