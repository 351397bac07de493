#!/bin/sh
# Container entry point.
#   serve   (default) prepare steps below unless TUNEDESK_INIT_ON_START=0, then the API
#   engine  the CPU engine behind vLLM's OpenAI routes (`tunedesk engine serve`), port 8001
#   init    the prepare steps alone: migrations, knowledge ingestion, the demo adapter; run it
#           once per release (a Kubernetes Job, a one-shot Compose service) when several
#           replicas start at once, so they never race each other
#   migrate the database migrations alone
#   wait-migrated  wait until the database is at this release's migration head (a Kubernetes
#           init container: replicas never migrate concurrently with the Job or each other)
#   anything else runs as given (`tunedesk models list`, `sh`, ...)
# Secrets may come as files (Docker and Kubernetes secrets): VAR_FILE=/run/secrets/x sets VAR.
set -eu

load_secret_files() {
  for var in TUNEDESK_ADMIN_API_KEY TUNEDESK_DATABASE_URL TUNEDESK_ENGINE__VLLM_API_KEY \
    TUNEDESK_REDIS_URL; do
    file=$(eval "printf '%s' \"\${${var}_FILE:-}\"")
    if [ -n "$file" ]; then
      value=$(cat "$file")
      export "$var=$value"
    fi
  done
}

migrate() {
  python -c 'from service.config import Settings; from service.db import make_engine, migrate
migrate(make_engine(Settings().db_url))'
}

wait_migrated() {
  python - <<'PY'
import time

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.config import Settings
from service.db import alembic_config, make_engine

settings = Settings()
head = ScriptDirectory.from_config(alembic_config(settings.db_url)).get_current_head()
engine = make_engine(settings.db_url)
while True:
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except Exception as exc:  # the database is not up yet: report it and wait
        current = f"unreachable ({exc.__class__.__name__})"
    if current == head:
        break
    print(f"waiting for migrations: database at {current}, this release needs {head}", flush=True)
    time.sleep(5)
PY
}

# Index the knowledge base (incremental, a no-op when unchanged) and publish the sample's tuned
# adapter when serving the sample (once: later the registry is the operator's).
prepare() {
  tunedesk model prepare # a no-op on the image's /models; converts into an empty volume
  migrate
  sample=$(python -c 'from service.config import SAMPLE_KNOWLEDGE_DIR; print(SAMPLE_KNOWLEDGE_DIR)')
  knowledge_dir="${TUNEDESK_INGEST_DIR:-$sample/docs}"
  demo_adapter="$sample/adapters/sample-sft-2"
  tunedesk ingest "$knowledge_dir" --prune
  if [ "$knowledge_dir" = "$sample/docs" ] && [ -d "$demo_adapter" ]; then
    tunedesk publish "$demo_adapter" --offline --activate --skip-existing \
      --candidate-eval "$demo_adapter/evaluation.json" --active-eval "$demo_adapter/evaluation.json"
  fi
}

load_secret_files
command="${1:-serve}"
[ "$#" -gt 0 ] && shift
case "$command" in
  serve)
    [ "${TUNEDESK_INIT_ON_START:-1}" = 0 ] || prepare
    exec tunedesk serve --host "${TUNEDESK_HOST:-0.0.0.0}" --port "${TUNEDESK_PORT:-8000}" "$@"
    ;;
  engine)
    tunedesk model prepare
    exec tunedesk engine serve --host "${TUNEDESK_HOST:-0.0.0.0}" \
      --port "${TUNEDESK_ENGINE_PORT:-8001}" "$@"
    ;;
  init) prepare ;;
  migrate) migrate ;;
  wait-migrated) wait_migrated ;;
  *) exec "$command" "$@" ;;
esac
