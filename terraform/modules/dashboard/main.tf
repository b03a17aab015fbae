# One dashboard for the whole payment flow, top to bottom as a payment travels: the API, the business
# outcomes (EMF metrics of the functions), the functions' health, the queues and DLQs, the streams'
# lag, then every alarm's state. The body is data only (names passed in), so a plan shows exactly which
# metrics it graphs and a test can check that nothing the platform runs is missing from it.

locals {
  api_dimensions = ["ApiName", var.api.name, "Stage", var.api.stage]

  # Defaults shared by every graph; each widget adds its own title, metrics and statistic.
  graph = {
    region  = var.region
    period  = var.period_seconds
    view    = "timeSeries"
    stacked = false
  }

  header = {
    type   = "text"
    width  = 24
    height = 2
    properties = {
      markdown = "# ${var.dashboard_name}\nPOST /payments → event store → outbox relay (DynamoDB stream) → bus and fraud stream (Kinesis) → consumers (SQS) → notifications. Alarms go to ops-alerts; DLQ depth above 0 needs a redrive."
    }
  }

  api_widgets = [
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = merge(local.graph, {
        title = "API requests and errors"
        stat  = "Sum"
        metrics = [
          concat(["AWS/ApiGateway", "Count"], local.api_dimensions, [{ label = "requests" }]),
          concat(["AWS/ApiGateway", "4XXError"], local.api_dimensions, [{ label = "4xx" }]),
          concat(["AWS/ApiGateway", "5XXError"], local.api_dimensions, [{ label = "5xx" }]),
        ]
      })
    },
    {
      type   = "metric"
      width  = 12
      height = 6
      properties = merge(local.graph, {
        title = "API latency (ms)"
        metrics = [for p in ["p50", "p95", "p99"] :
          concat(["AWS/ApiGateway", "Latency"], local.api_dimensions, [{ stat = p, label = p }])
        ]
      })
    },
  ]

  business_widgets = [for w in var.business_metrics : {
    type   = "metric"
    width  = 8
    height = 6
    properties = merge(local.graph, {
      title = w.title
      stat  = "Sum"
      metrics = [for m in w.metrics :
        [var.metrics_namespace, m.name, "service", m.service, { label = coalesce(m.label, m.name) }]
      ]
    })
  }]

  function_widgets = length(var.function_names) == 0 ? [] : [
    for g in [
      { title = "Function errors", metric = "Errors", stat = "Sum" },
      { title = "Function throttles", metric = "Throttles", stat = "Sum" },
      { title = "Function duration p99 (ms)", metric = "Duration", stat = "p99" },
      ] : {
      type   = "metric"
      width  = 8
      height = 6
      properties = merge(local.graph, {
        title   = g.title
        stat    = g.stat
        metrics = [for label, name in var.function_names : ["AWS/Lambda", g.metric, "FunctionName", name, { label = label }]]
      })
    }
  ]

  queue_widgets = concat(
    length(var.queue_names) == 0 ? [] : [
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = merge(local.graph, {
          title   = "Queue depth (visible messages)"
          stat    = "Maximum"
          metrics = [for label, name in var.queue_names : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, { label = label }]]
        })
      },
      {
        type   = "metric"
        width  = 8
        height = 6
        properties = merge(local.graph, {
          title   = "Oldest queued message (s)"
          stat    = "Maximum"
          metrics = [for label, name in var.queue_names : ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", name, { label = label }]]
        })
      },
    ],
    length(var.dead_letter_queue_names) == 0 ? [] : [{
      type   = "metric"
      width  = 8
      height = 6
      properties = merge(local.graph, {
        title   = "DLQ depth (needs a redrive above 0)"
        stat    = "Maximum"
        metrics = [for label, name in var.dead_letter_queue_names : ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", name, { label = label }]]
      })
    }],
  )

  stream_widgets = concat(
    length(var.kinesis_stream_names) == 0 ? [] : [{
      type   = "metric"
      width  = 12
      height = 6
      properties = merge(local.graph, {
        title   = "Kinesis iterator age (ms)"
        stat    = "Maximum"
        metrics = [for label, name in var.kinesis_stream_names : ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", name, { label = label }]]
      })
    }],
    length(var.stream_consumer_function_names) == 0 ? [] : [{
      type   = "metric"
      width  = 12
      height = 6
      properties = merge(local.graph, {
        title   = "Stream consumers' iterator age (ms): Kinesis and DynamoDB streams"
        stat    = "Maximum"
        metrics = [for label, name in var.stream_consumer_function_names : ["AWS/Lambda", "IteratorAge", "FunctionName", name, { label = label }]]
      })
    }],
  )

  alarm_widgets = length(var.alarm_arns) == 0 ? [] : [{
    type   = "alarm"
    width  = 24
    height = 6
    properties = {
      title  = "Alarms"
      alarms = var.alarm_arns
    }
  }]

  widgets = concat([local.header], local.api_widgets, local.business_widgets, local.function_widgets,
  local.queue_widgets, local.stream_widgets, local.alarm_widgets)
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.dashboard_name
  # Widgets without x and y are laid out left to right, top to bottom, in this order.
  dashboard_body = jsonencode({ widgets = local.widgets })
}
