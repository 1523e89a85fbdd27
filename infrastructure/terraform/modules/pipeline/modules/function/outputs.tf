output "function_name" {
  description = "The function's name (the FunctionName dimension of its metrics)."
  value       = aws_lambda_function.this.function_name
}

output "arn" {
  description = "The function's ARN (what the state machine and the triggers invoke)."
  value       = aws_lambda_function.this.arn
}

output "invoke_arn" {
  description = "The ARN API Gateway integrations use."
  value       = aws_lambda_function.this.invoke_arn
}

output "role_name" {
  description = "The execution role's name."
  value       = aws_iam_role.this.name
}
