"""Kafka check: consumer lag, group state, topic sizes and broker health over the Kafka protocol."""
