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

  # Routes that declare a body schema; model names must be alphanumeric and unique per API.
  schema_routes = { for key, route in local.routes : key => route if route.request_schema != null }
  model_names   = { for key, route in local.schema_routes : key => "${replace(title(lower("${route.method} ${route.path}")), "/[^A-Za-z0-9]/", "")}Request" }

  # One JSON object per request, metadata only: never a body, a header value or the API key itself
  # (the key's id identifies the client). The validation error string is left out too: it can quote
  # parts of the body.
  access_log_format = jsonencode({
    requestId          = "$context.requestId"
    extendedRequestId  = "$context.extendedRequestId"
    requestTime        = "$context.requestTimeEpoch"
    ip                 = "$context.identity.sourceIp"
    caller             = "$context.identity.caller"
    apiKeyId           = "$context.identity.apiKeyId"
    httpMethod         = "$context.httpMethod"
    resourcePath       = "$context.resourcePath"
    protocol           = "$context.protocol"
    status             = "$context.status"
    responseLength     = "$context.responseLength"
    responseLatency    = "$context.responseLatency"
    integrationStatus  = "$context.integration.status"
    integrationLatency = "$context.integration.latency"
    errorMessage       = "$context.error.message"
    errorResponseType  = "$context.error.responseType"
    xrayTraceId        = "$context.xrayTraceId"
  })
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

# -- request validation ------------------------------------------------------------------------
# A route with a request_schema gets its body validated against it (application/json) before the
# function runs; every route gets its required request parameters checked (none are declared today:
# the functions check their headers themselves, with more precise answers).

resource "aws_api_gateway_model" "this" {
  for_each = local.schema_routes

  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = local.model_names[each.key]
  description  = "Request body of ${each.key}"
  content_type = "application/json"
  schema       = each.value.request_schema
}

resource "aws_api_gateway_request_validator" "body_and_parameters" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "body-and-parameters"
  validate_request_body       = true
  validate_request_parameters = true
}

resource "aws_api_gateway_request_validator" "parameters" {
  rest_api_id                 = aws_api_gateway_rest_api.this.id
  name                        = "parameters"
  validate_request_body       = false
  validate_request_parameters = true
}

resource "aws_api_gateway_method" "this" {
  for_each = local.routes

  rest_api_id      = aws_api_gateway_rest_api.this.id
  resource_id      = local.resource_ids[each.value.path]
  http_method      = each.value.method
  authorization    = "NONE"
  api_key_required = each.value.api_key_required

  request_models       = each.value.request_schema != null ? { "application/json" = aws_api_gateway_model.this[each.key].name } : null
  request_validator_id = each.value.request_schema != null ? aws_api_gateway_request_validator.body_and_parameters.id : aws_api_gateway_request_validator.parameters.id
}

# API Gateway's own error answers (a body failing its model, a missing key, …) in the shape clients
# expect; a type left out keeps API Gateway's default ({"message": "..."}).
resource "aws_api_gateway_gateway_response" "this" {
  for_each = var.gateway_responses

  rest_api_id         = aws_api_gateway_rest_api.this.id
  response_type       = each.key
  status_code         = each.value.status_code
  response_templates  = each.value.response_templates
  response_parameters = each.value.response_parameters
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
    # Only what the configuration says and the ids of what it made: attributes read back from the API can
    # come back normalised (moto's do), which would redeploy on every plan. var.routes holds the
    # functions' invoke ARNs and the request schemas.
    redeployment = sha1(jsonencode([
      var.routes,
      var.gateway_responses,
      local.resource_ids,
      [for m in aws_api_gateway_method.this : m.id],
      [for i in aws_api_gateway_integration.this : i.id],
      [for m in aws_api_gateway_model.this : m.id],
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_cloudwatch_log_group" "access" {
  name              = "/aws/apigateway/${var.name}/${var.stage_name}/access"
  retention_in_days = var.access_log_retention_in_days
  kms_key_id        = var.access_log_kms_key_arn
  tags              = var.tags
}

resource "aws_api_gateway_stage" "this" {
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = true
  tags                 = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  # API Gateway refuses access log settings until the region's account settings name a CloudWatch role.
  depends_on = [aws_api_gateway_account.this]
}

# -- CloudWatch role (one per account and region) ---------------------------------------------
# API Gateway writes logs through a role set in the region's account settings, shared by every API
# there. Only one configuration may manage it: the others leave manage_account_cloudwatch_role false.

data "aws_iam_policy_document" "apigateway_assume" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  name               = "${var.name}-apigateway-cloudwatch"
  assume_role_policy = data.aws_iam_policy_document.apigateway_assume[0].json
  tags               = var.tags
}

# What AmazonAPIGatewayPushToCloudWatchLogs grants for writing, inline and limited to this account
# and region's log groups (its read actions are not needed to write).
data "aws_iam_policy_document" "cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  statement {
    sid = "WriteApiGatewayLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogGroups",
      "logs:DescribeLogStreams",
      "logs:PutLogEvents",
    ]
    # "arn:<partition>:logs:<region>:<account>" taken from the access log group's own ARN.
    resources = ["${join(":", slice(split(":", aws_cloudwatch_log_group.access.arn), 0, 5))}:log-group:*"]
  }
}

resource "aws_iam_role_policy" "cloudwatch" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  name   = "write-logs"
  role   = aws_iam_role.cloudwatch[0].id
  policy = data.aws_iam_policy_document.cloudwatch[0].json
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_account_cloudwatch_role ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.cloudwatch[0].arn
  depends_on          = [aws_iam_role_policy.cloudwatch]
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

# -- one API key and usage plan per client -----------------------------------------------------
# Each client gets its own throttle and quota, so one client's burst or runaway loop never eats
# another's allowance, and its requests are told apart by key id (access logs, idempotency keys).

resource "aws_api_gateway_api_key" "client" {
  for_each = var.clients

  name        = "${var.name}-${each.key}"
  description = "API key of client ${each.key}"
  enabled     = true
  tags        = var.tags
}

resource "aws_api_gateway_usage_plan" "client" {
  for_each = var.clients

  name        = "${var.name}-${each.key}"
  description = "Throttle and quota of client ${each.key}"
  tags        = var.tags

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    burst_limit = each.value.throttle_burst
    rate_limit  = each.value.throttle_rate
  }

  quota_settings {
    limit  = each.value.quota_limit
    period = each.value.quota_period
  }
}

resource "aws_api_gateway_usage_plan_key" "client" {
  for_each = var.clients

  key_id        = aws_api_gateway_api_key.client[each.key].id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.client[each.key].id
}
