# The HTTP API (docs/http-api.md). A JWT authorizer: API Gateway checks the token's
# signature, issuer, audience and expiry itself, with the keys of the issuer's JWKS endpoint.
# GET /health stays open for load balancers and uptime checks; it reads nothing. POST /events is
# authorized by the app's write key, which the ingest function checks (browsers cannot get a JWT);
# OPTIONS /events is the CORS preflight. events_authorization = "jwt" puts the JWT authorizer on
# POST /events too, for server-to-server senders only.
# GET /tracker.js (the JavaScript tracker) stays open too: pages of any site load it with a script tag.

locals {
  protected_routes = ["GET /batches/{batch_id}", "GET /insights"]
  events_by_jwt    = var.events_authorization == "jwt"
}

resource "aws_apigatewayv2_api" "http" {
  name          = "${local.name}-api"
  protocol_type = "HTTP"
  description   = "eventpipe ingest API"
  tags          = local.tags
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.http.id
  name             = "JwtAuthorizer"
  authorizer_type  = "JWT"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    issuer   = var.jwt_issuer
    audience = var.jwt_audiences
  }
}

resource "aws_apigatewayv2_integration" "ingest" {
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = module.entry["ingest"].invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "protected" {
  for_each = toset(local.protected_routes)

  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
}

resource "aws_apigatewayv2_route" "events" {
  #checkov:skip=CKV_AWS_309:the ingest function checks the app's write key (X-Api-Key or ?key=); events_authorization = "jwt" adds the JWT authorizer
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "POST /events"
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = local.events_by_jwt ? "JWT" : "NONE"
  authorizer_id      = local.events_by_jwt ? aws_apigatewayv2_authorizer.jwt.id : null
}

resource "aws_apigatewayv2_route" "events_preflight" {
  #checkov:skip=CKV_AWS_309:the CORS preflight carries no credentials by the Fetch standard; the function answers 204
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "OPTIONS /events"
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_route" "health" {
  #checkov:skip=CKV_AWS_309:GET /health is the uptime probe; it answers {"status": "ok"} and reads no data
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "GET /health"
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "NONE"
}

resource "aws_apigatewayv2_route" "tracker" {
  #checkov:skip=CKV_AWS_309:GET /tracker.js is the public JavaScript tracker; it reads no data
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = "GET /tracker.js"
  target             = "integrations/${aws_apigatewayv2_integration.ingest.id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api_access" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts at rest by default; access logs hold no event data (as in the SAM template)
  #checkov:skip=CKV_AWS_338:retention is the log_retention_days variable; a year of logs is a cost the operator chooses
  name              = "/aws/apigateway/${local.name}-api"
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true
  tags        = local.tags

  default_route_settings {
    throttling_rate_limit  = var.api_throttling.rate_limit
    throttling_burst_limit = var.api_throttling.burst_limit
  }

  # No source IP in the access log: eventpipe never stores a raw IP (docs/event-envelope.md).
  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId        = "$context.requestId"
      requestTime      = "$context.requestTime"
      method           = "$context.httpMethod"
      route            = "$context.routeKey"
      status           = "$context.status"
      length           = "$context.responseLength"
      latency          = "$context.responseLatency"
      integrationError = "$context.integrationErrorMessage"
      authorizerError  = "$context.authorizer.error"
    })
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = module.entry["ingest"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*"
}
