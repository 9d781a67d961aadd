"""The model: request params, stored records and their rendering, states and transitions, events."""
