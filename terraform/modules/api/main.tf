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
  #checkov:skip=CKV_AWS_237:No argument set here forces a replacement of the REST API (name, description, endpoint type update in place); a replaced API gets a new id and invoke URL anyway, so creating it first would not keep clients working. The deployment, replaced on every change, is create_before_destroy.
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
  #checkov:skip=CKV_AWS_120:No response caching: payment and refund responses are per request and GET /payments/{id} must show the current status; a cached status could show a settled payment as pending. Idempotent retries are answered from DynamoDB, not from a cache.
  #checkov:skip=CKV2_AWS_29:The web ACL association for this stage is made by modules/waf (resource_arn = module.api.stage_arn), on in staging and prod (waf_enabled) and asserted by platform/tests/queues_waf.tftest.hcl; checkov's graph does not link a stage to an association in a sibling module.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to HTTP backends; every integration here is a Lambda proxy (AWS_PROXY) invoked with IAM, so there is no backend to present a certificate to. Callers authenticate with API keys and Stripe webhooks with their signature.
  rest_api_id          = aws_api_gateway_rest_api.this.id
  deployment_id        = aws_api_gateway_deployment.this.id
  stage_name           = var.stage_name
  xray_tracing_enabled = var.xray_tracing_enabled
  tags                 = var.tags

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format          = local.access_log_format
  }

  # API Gateway refuses access log settings until the region's account settings name a CloudWatch role.
  depends_on = [aws_api_gateway_account.this]
}

# Execution logs: API Gateway creates this group itself on first use, without retention or the key, so
# it is created here first.
resource "aws_cloudwatch_log_group" "execution" {
  name              = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.stage_name}"
  retention_in_days = var.access_log_retention_in_days
  kms_key_id        = var.access_log_kms_key_arn
  tags              = var.tags
}

# Every method: execution logs for failed requests only (ERROR: why API Gateway rejected or failed a
# request; the access log already has one line per request) and per-method CloudWatch metrics.
# Data tracing stays off: it would log full request and response bodies (card details, keys).
resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:No response caching, as on the stage (CKV_AWS_120): payment and refund responses are per request and a payment's status must be read fresh.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    logging_level      = "ERROR"
    metrics_enabled    = true
    data_trace_enabled = false
  }

  depends_on = [aws_cloudwatch_log_group.execution]
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

# -- alarms ----------------------------------------------------------------------------------------
# Here rather than in the alarms module: like lambda_function, the module that creates the API owns its
# alarms, so their ApiName and Stage dimensions come from the API and the stage themselves and cannot
# drift from them (a renamed API or stage with an alarm still watching the old name watches nothing).
# REST APIs publish AWS/ApiGateway metrics per ApiName and Stage (no detailed metrics needed for these).

resource "aws_cloudwatch_metric_alarm" "server_errors" {
  count = var.alarms_enabled ? 1 : 0

  alarm_name          = "${var.name}-api-5xx"
  alarm_description   = "The ${var.name} API (stage ${var.stage_name}) answered more than ${var.server_errors_alarm_threshold} request(s) with a 5xx in ${var.alarm_period_seconds} s: check the functions' errors and timeouts and the Stripe circuit breaker. Runbook: docs/runbooks/api-5xx.md"
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = { ApiName = aws_api_gateway_rest_api.this.name, Stage = aws_api_gateway_stage.this.stage_name }
  statistic           = "Sum" # the number of 5xx answers in the period (Average would be their rate)
  period              = var.alarm_period_seconds
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.server_errors_alarm_threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = length(var.alarm_action_arns) > 0
      error_message = "alarm_action_arns needs at least one ARN while alarms_enabled is true: an alarm nobody hears is a silent failure."
    }
  }
}

# Latency is the whole request as API Gateway saw it (integration included), in milliseconds; one
# alarm per percentile. Sustained for latency_alarm_evaluation_periods periods: one slow minute (a
# cold start burst) is not an incident.
resource "aws_cloudwatch_metric_alarm" "latency" {
  for_each = var.alarms_enabled ? var.latency_alarm_thresholds_ms : {}

  alarm_name          = "${var.name}-api-latency-${each.key}"
  alarm_description   = "The ${var.name} API (stage ${var.stage_name}) ${each.key} latency stayed above ${each.value} ms for ${var.latency_alarm_evaluation_periods} period(s) of ${var.alarm_period_seconds} s: check the functions' duration and Stripe's response times. Runbook: docs/runbooks/api-latency.md"
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = { ApiName = aws_api_gateway_rest_api.this.name, Stage = aws_api_gateway_stage.this.stage_name }
  extended_statistic  = each.key
  period              = var.alarm_period_seconds
  evaluation_periods  = var.latency_alarm_evaluation_periods
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_action_arns
  ok_actions          = var.alarm_action_arns
  tags                = var.tags

  lifecycle {
    precondition {
      condition     = length(var.alarm_action_arns) > 0
      error_message = "alarm_action_arns needs at least one ARN while alarms_enabled is true: an alarm nobody hears is a silent failure."
    }
  }
}
