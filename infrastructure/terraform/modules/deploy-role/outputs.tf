output "role_arn" {
  description = "The deployment role: the role_arn of the environment's provider assume_role block."
  value       = aws_iam_role.deploy.arn
}

output "permissions_boundary_arn" {
  description = "The boundary every role of the pipeline must carry (modules/pipeline's permissions_boundary_arn)."
  value       = aws_iam_policy.boundary.arn
}
