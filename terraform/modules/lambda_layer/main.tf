resource "aws_lambda_layer_version" "this" {
  layer_name          = var.layer_name
  description         = var.description
  filename            = var.filename
  source_code_hash    = var.source_code_hash
  compatible_runtimes = var.compatible_runtimes

  lifecycle {
    precondition {
      condition     = fileexists(var.filename)
      error_message = "Layer zip ${var.filename} does not exist: run `make package` first."
    }
  }
}
