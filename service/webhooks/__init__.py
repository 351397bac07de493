"""Webhooks: tenants register URLs; events are delivered signed, retried and logged."""
