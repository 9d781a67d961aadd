"""State: the store, the outbox (webhooks, subscribers, retention) and what replicas share through Redis."""
