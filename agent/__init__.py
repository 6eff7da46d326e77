"""mqwatch: an observability and health-check agent for Kafka, Pulsar and Redis."""

__version__ = "0.1.0"
