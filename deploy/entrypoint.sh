#!/bin/sh
# Container start: index the knowledge base (incremental, a no-op when unchanged), then serve.
set -eu
KNOWLEDGE_DIR="${TUNEDESK_INGEST_DIR:-/app/knowledge/sample/docs}"
tunedesk model prepare
tunedesk ingest "$KNOWLEDGE_DIR" --prune
exec tunedesk serve --host "${TUNEDESK_HOST:-0.0.0.0}" --port "${TUNEDESK_PORT:-8000}"
