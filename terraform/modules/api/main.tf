locals {
  routes = { for key, route in var.routes : key => merge(route, {
    method = split(" ", key)[0]
    path   = trimprefix(split(" ", key)[1], "/")
  }) }

  # Every prefix of every route path is a resource; resources are created level by level because
  # a resource's parent must exist first (and Terraform has no recursion).
  paths = distinct(flatten([for route in local.routes : [
    for depth in range(1, length(split("/", route.path)) + 1) : join("/", slice(split("/", route.path), 0, depth))
  ]]))
  paths_by_depth = { for depth in [1, 2, 3, 4] : depth => toset([for p in local.paths : p if length(split("/", p)) == depth]) }

  resource_ids = merge(
    { for p, r in aws_api_gateway_resource.level1 : p => r.id },
    { for p, r in aws_api_gateway_resource.level2 : p => r.id },
    { for p, r in aws_api_gateway_resource.level3 : p => r.id },
    { for p, r in aws_api_gateway_resource.level4 : p => r.id },
  )

  # Statement ids must be unique per function and use only [A-Za-z0-9_-].
  statement_ids = { for key, route in local.routes : key => "apigw-${lower(route.method)}-${replace(replace(route.path, "/[{}]/", ""), "/[^A-Za-z0-9_-]/", "-")}" }
}

resource "aws_api_gateway_rest_api" "this" {
  name        = var.name
  description = var.description
  tags        = var.tags

  endpoint_configuration {
    types = ["REGIONAL"]
  }
}

resource "aws_api_gateway_resource" "level1" {
  for_each = local.paths_by_depth[1]

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = each.key
}

resource "aws_api_gateway_resource" "level2" {
  for_each = local.paths_by_depth[2]

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level1[dirname(each.key)].id
  path_part   = basename(each.key)
}

resource "aws_api_gateway_resource" "level3" {
  for_each = local.paths_by_depth[3]

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level2[dirname(each.key)].id
  path_part   = basename(each.key)
}

resource "aws_api_gateway_resource" "level4" {
  for_each = local.paths_by_depth[4]

  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.level3[dirname(each.key)].id
  path_part   = basename(each.key)
}

resource "aws_api_gateway_method" "this" {
  for_each = local.routes

  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = local.resource_ids[each.value.path]
  http_method      = each.value.method
  authorization    = "NONE"
  api_key_required = each.value.api_key_required
}

resource "aws_api_gateway_integration" "this" {
  for_each = local.routes

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = aws_api_gateway_method.this[each.key].resource_id
  http_method             = aws_api_gateway_method.this[each.key].http_method
  type                    = "AWS_PROXY"
  integration_http_method = "POST"
  uri                     = each.value.invoke_arn
}

resource "aws_lambda_permission" "this" {
  for_each = local.routes

  statement_id  = local.statement_ids[each.key]
  action        = "lambda:InvokeFunction"
  function_name = each.value.function_name
  principal     = "apigateway.amazonaws.com"
  # Path parameters match any value in the source ARN.
  source_arn = "${aws_api_gateway_rest_api.this.execution_arn}/*/${each.value.method == "ANY" ? "*" : each.value.method}/${replace(each.value.path, "/\\{[^}]+\\}/", "*")}"
}

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # A deployment is a snapshot: take a new one whenever a route or its integration changes.
  triggers = {
    redeployment = sha1(jsonencode([
      var.routes,
      local.resource_ids,
      [for m in aws_api_gateway_method.this : m.id],
      [for i in aws_api_gateway_integration.this : [i.id, i.uri]],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "this" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = true
  tags                 = var.tags
}

resource "aws_api_gateway_api_key" "this" {
  name    = "${var.name}-default"
  enabled = true
  tags    = var.tags
}

resource "aws_api_gateway_usage_plan" "this" {
  name = "${var.name}-default"
  tags = var.tags

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    burst_limit = var.throttle_burst_limit
    rate_limit  = var.throttle_rate_limit
  }

  quota_settings {
    limit  = var.quota_limit
    period = var.quota_period
  }
}

resource "aws_api_gateway_usage_plan_key" "this" {
  key_id        = aws_api_gateway_api_key.this.id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this.id
}
