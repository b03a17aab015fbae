# Defaults for `make apply ENV=local`; the stack orchestrator overrides endpoints and paths per stack.
aws_endpoint_url = "http://127.0.0.1:4566"
region           = "us-east-1"
stripe_api_base  = "http://127.0.0.1:8420"
name_prefix      = "paystream-local"
