"""Job format v1: models, hostile-input-safe YAML loading, validation, JSON Schema."""
