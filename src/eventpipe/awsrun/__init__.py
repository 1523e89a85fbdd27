"""The pipeline wired to AWS: S3, DynamoDB and Step Functions, for the Lambda entry points."""
