# S3 state backend of the staging environment, read by `terraform init -backend-config=backend.hcl`
# (`make plan ENV=staging` and `make apply ENV=staging` pass it). Replace every REPLACE_ME before the first init:
# the runner refuses to start while one is left. Create the bucket and the table once, outside Terraform:
#   bucket: versioning on, public access blocked, default encryption on (the state holds the default
#           API key's value: keep the bucket private)
#   dynamodb_table: partition key "LockID" (String), on-demand billing
# (Terraform >= 1.10 can lock in the bucket instead: replace dynamodb_table with use_lockfile = true.)
bucket         = "REPLACE_ME-paystream-terraform-state" # e.g. acme-paystream-terraform-state-123456789012
key            = "paystream/staging/terraform.tfstate"      # one state per environment, in the same or different buckets
region         = "us-east-1"                            # the bucket's region (not necessarily the platform's)
dynamodb_table = "REPLACE_ME-paystream-terraform-locks" # e.g. acme-paystream-terraform-locks
encrypt        = true
