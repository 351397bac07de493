"""The prompt layer: choose a troubleshooting template, assemble the chat prompt, read citations."""
