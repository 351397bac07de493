"""Web pages served by the service: the demo chat page."""
