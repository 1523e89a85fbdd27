terraform {
  required_version = ">= 1.9.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # One state per target account: terraform init -backend-config=dev.backend.hcl (or prod).
  backend "s3" {}
}
