"""Answering customer questions: the chat service and its HTTP routes."""
