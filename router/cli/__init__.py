"""The `payroute` command: serve, check, explain."""
