"""AWS adapters (boto3): S3, DynamoDB, Step Functions."""
