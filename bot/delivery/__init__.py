"""Sending: planned messages, the durable outbox, claiming and leases, the dispatcher, failures,
outages and pauses, staff alerts."""
