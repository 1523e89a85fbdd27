"""Thin entry points: read an AWS event, call one use-case, map its result. The same code serves
the Lambda functions (`src/lambda_pipeline.py`) and the local runtime."""
