"""The configuration: its schema and the YAML loader that reports file, line and reason."""
