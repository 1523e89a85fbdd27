"""The cloud-free heart of eventpipe: models, schemas, enrichment, aggregation, use-cases and ports.

Nothing here imports an AWS SDK, Lambda or HTTP types, or reads the environment.
"""
