output "role_arn" {
  description = "The deployment role: deploy_role_arn of environments/<stage>."
  value       = module.deploy_role.role_arn
}

output "permissions_boundary_arn" {
  description = "The boundary of the pipeline's roles: permissions_boundary_arn of environments/<stage>."
  value       = module.deploy_role.permissions_boundary_arn
}
