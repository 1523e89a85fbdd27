# The alarms and the dashboard of monitoring/alerts.yml, read here as they are: the file is the one
# source, for this module and for scripts/alarms.py, which writes them into the SAM template.
# This module does what scripts/alarms.py does: expand `for_each: functions`, resolve
# `{resource: ...}` dimensions, one alarm per alert named <stack>-<name>, one topic per severity.

locals {
  source = yamldecode(file("${path.module}/../../../../monitoring/alerts.yml"))

  # Alerts with `for_each: functions` become one alert per function. Placeholders ({function} and
  # the entry's own keys, such as {duration_alarm_ms}) are replaced in every string of the alert:
  # its JSON text is cut at each "{" and a piece that starts with "<known key>}" gets the value.
  # A field that is exactly one placeholder ends up a string ("48000"); numbers are read with tonumber.
  expanded = flatten([
    for alert in local.source.alerts : [
      for instance, values in try(local.source[alert.for_each], { (alert.name) = {} }) : jsondecode(join("", [
        for index, piece in split("{", jsonencode({ for key, value in alert : key => value if key != "for_each" })) :
        index == 0 ? piece : try(
          format(
            "%s%s",
            merge(values, { for key, value in { function = instance } : key => value if can(alert.for_each) })[regex("^([A-Za-z0-9_]+)}", piece)[0]],
            substr(piece, length(regex("^([A-Za-z0-9_]+)}", piece)[0]) + 1, -1),
          ),
          "{${piece}",
        )
      ]))
    ]
  ])

  # CloudWatch's statistics; anything else (p99, p95) is an extended statistic.
  statistics = ["Sum", "Average", "Maximum", "Minimum", "SampleCount"]

  # try() and can() wrap only expressions over the file: an expression that reads var.resources,
  # whose values (the API id, the state machine's ARN) are unknown before the first apply, would
  # make try() unknown as a whole. A dimension {resource: <key>} becomes var.resources[<key>].
  # `level: detailed` alerts only with var.detailed_monitoring (SAM: DetailedMonitoring): CloudWatch
  # bills every metric an alarm reads, traffic or not, so an idle stack keeps to the core set.
  alarms = {
    for alert in local.expanded : alert.name => {
      description         = "${alert.severity}: ${alert.description} Runbook: RUNBOOK.md#${alert.runbook}"
      severity            = alert.severity
      runbook             = alert.runbook
      comparison          = alert.comparison
      threshold           = tonumber(alert.threshold)
      period              = tonumber(alert.period)
      evaluation_periods  = tonumber(alert.evaluation_periods)
      datapoints_to_alarm = tonumber(try(alert.datapoints_to_alarm, alert.evaluation_periods))
      treat_missing_data  = try(alert.treat_missing_data, "notBreaching")
      # One metric: the alarm's own metric and statistic. Metric math: one query per entry, the last returned.
      metric = can(alert.metric) ? {
        namespace  = alert.metric.namespace
        name       = alert.metric.name
        statistic  = alert.metric.statistic
        dimensions = { for key, value in try(alert.metric.dimensions, {}) : key => can(value.resource) ? var.resources[value.resource] : tostring(value) }
      } : null
      queries = [
        for index, query in try(alert.metrics, []) : {
          id          = query.id
          expression  = try(query.expression, null)
          label       = try(query.label, null)
          period      = try(tonumber(query.period), null)
          return_data = index == length(alert.metrics) - 1
          metric = can(query.metric) ? {
            namespace  = query.metric.namespace
            name       = query.metric.name
            statistic  = query.metric.statistic
            dimensions = { for key, value in try(query.metric.dimensions, {}) : key => can(value.resource) ? var.resources[value.resource] : tostring(value) }
          } : null
        }
      ]
    } if var.detailed_monitoring || alert.level == "core"
  }

  severities = toset([for alarm in values(local.alarms) : alarm.severity])
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS managed SNS key; alarm messages hold no event data
  for_each = local.severities

  name         = "${var.stack_name}-alarms-${each.key}"
  display_name = "eventpipe ${each.key} alarms"
  tags         = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each = var.alarm_email == null ? toset([]) : local.severities

  topic_arn = aws_sns_topic.alarms[each.key].arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.stack_name}-${each.key}"
  alarm_description   = each.value.description
  actions_enabled     = true
  alarm_actions       = [aws_sns_topic.alarms[each.value.severity].arn]
  ok_actions          = [aws_sns_topic.alarms[each.value.severity].arn]
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  evaluation_periods  = each.value.evaluation_periods
  datapoints_to_alarm = each.value.datapoints_to_alarm
  treat_missing_data  = each.value.treat_missing_data
  tags                = var.tags

  # One metric: set here. Metric math: these stay null and the queries below describe the metrics.
  namespace          = each.value.metric == null ? null : each.value.metric.namespace
  metric_name        = each.value.metric == null ? null : each.value.metric.name
  dimensions         = each.value.metric == null ? null : each.value.metric.dimensions
  period             = each.value.metric == null ? null : each.value.period
  statistic          = each.value.metric == null ? null : (contains(local.statistics, each.value.metric.statistic) ? each.value.metric.statistic : null)
  extended_statistic = each.value.metric == null ? null : (contains(local.statistics, each.value.metric.statistic) ? null : each.value.metric.statistic)

  dynamic "metric_query" {
    for_each = each.value.queries

    content {
      id          = metric_query.value.id
      expression  = metric_query.value.expression
      label       = metric_query.value.label
      period      = metric_query.value.period # a Metrics Insights query carries its own
      return_data = metric_query.value.return_data

      dynamic "metric" {
        for_each = metric_query.value.metric == null ? [] : [metric_query.value.metric]

        content {
          namespace   = metric.value.namespace
          metric_name = metric.value.name
          dimensions  = metric.value.dimensions
          stat        = metric.value.statistic
          period      = each.value.period
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = length(setsubtract(keys(local.source.resources), keys(var.resources))) == 0
      error_message = "var.resources lacks ${join(", ", setsubtract(keys(local.source.resources), keys(var.resources)))}: give every resource monitoring/alerts.yml names."
    }
  }
}

locals {
  # The dashboard of scripts/alarms.py: a title, the alarm states, the graphs of alerts.yml's
  # `dashboard`, then one graph per alarm with its threshold. CloudWatch places widgets without x and y.
  region = data.aws_region.current.region

  dashboard_widgets = concat(
    [
      {
        type   = "text"
        width  = 24
        height = 2
        properties = {
          markdown = "# eventpipe ${var.stack_name}\nAlarms are generated from `monitoring/alerts.yml`; each alarm's description names its RUNBOOK.md section."
        }
      },
      {
        type   = "alarm"
        width  = 24
        height = 6
        properties = {
          title  = "Alarms"
          alarms = [for alarm in aws_cloudwatch_metric_alarm.this : alarm.arn]
          sortBy = "stateUpdatedTimestamp"
        }
      },
    ],
    [
      for graph in try(local.source.dashboard.widgets, []) : {
        type   = "metric"
        width  = 12
        height = 6
        properties = {
          title   = graph.title
          view    = "timeSeries"
          stacked = false
          region  = local.region
          # A graph is a search expression or a list of metrics: [namespace, name, dimension, value, ..., {stat}].
          metrics = can(graph.search) ? [[{ expression = graph.search, id = "e1", period = 300 }]] : [
            for metric in graph.metrics : concat(
              [metric.namespace, metric.name],
              flatten([for key, value in try(metric.dimensions, {}) : [key, can(value.resource) ? var.resources[value.resource] : tostring(value)]]),
              [{ stat = metric.statistic }],
            )
          ]
        }
      }
    ],
    [
      for name, alarm in local.alarms : {
        type   = "metric"
        width  = 8
        height = 6
        properties = {
          title       = "${name} (${alarm.severity}, runbook: ${alarm.runbook})"
          annotations = { alarms = [aws_cloudwatch_metric_alarm.this[name].arn] }
          view        = "timeSeries"
          region      = local.region
        }
      }
    ],
  )
}

data "aws_region" "current" {}

# $3 a month past an account's first three dashboards: with the detailed alarms only.
resource "aws_cloudwatch_dashboard" "this" {
  count = var.detailed_monitoring ? 1 : 0

  dashboard_name = var.stack_name
  dashboard_body = jsonencode({ start = "-PT6H", periodOverride = "inherit", widgets = local.dashboard_widgets })
}
