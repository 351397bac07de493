"""tunedesk service: API, chat, prompting, engines, store, web pages and metrics."""
