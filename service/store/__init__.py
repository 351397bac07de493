"""Conversations, messages and ratings, stored through SQLAlchemy (SQLite or PostgreSQL)."""
