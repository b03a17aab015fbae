terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
    }
  }

  # State path is given at init: `python -m localdev terraform` puts it in the stack's state dir.
  backend "local" {}
}
