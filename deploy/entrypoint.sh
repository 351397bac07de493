#!/bin/sh
# Container start: index the knowledge base (incremental, a no-op when unchanged), publish the
# sample's tuned adapter when serving the sample (once: later the registry is the operator's),
# then serve.
set -eu
SAMPLE=/app/knowledge/sample
KNOWLEDGE_DIR="${TUNEDESK_INGEST_DIR:-$SAMPLE/docs}"
DEMO_ADAPTER="$SAMPLE/adapters/sample-sft-2"
tunedesk model prepare
tunedesk ingest "$KNOWLEDGE_DIR" --prune
if [ "$KNOWLEDGE_DIR" = "$SAMPLE/docs" ] && [ -d "$DEMO_ADAPTER" ]; then
  tunedesk publish "$DEMO_ADAPTER" --offline --activate --skip-existing \
    --candidate-eval "$DEMO_ADAPTER/evaluation.json" --active-eval "$DEMO_ADAPTER/evaluation.json"
fi
exec tunedesk serve --host "${TUNEDESK_HOST:-0.0.0.0}" --port "${TUNEDESK_PORT:-8000}"
