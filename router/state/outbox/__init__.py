"""The outbox: events leave the store as webhook deliveries and subscriber calls; retention ages them out."""
