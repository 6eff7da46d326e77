"""Built-in checks, one package per system: kafka, redis, pulsar."""
