# tunedesk: `make run` sets everything up and serves; `make test` runs every check CI runs.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# the sample products' tuned adapter and the evaluation that let it through the publish gate
DEMO_ADAPTER ?= knowledge/sample/adapters/sample-sft-2
DEMO_EVAL ?= $(DEMO_ADAPTER)/evaluation.json
# the engine `make run` prepares and serves: openvino (continuous batching, about 3x the local
# engine's decoding and better answers on the sample sets: docs/engine.md) or local (transformers,
# the reference and fallback: `make run ENGINE=local`). Only `make model` and `make run` see it.
ENGINE ?= openvino

.PHONY: run install model ingest demo-model serve test lint pytest bench clean

run: install model ingest demo-model
	@echo "Open http://$(HOST):$(PORT)/ to chat, http://$(HOST):$(PORT)/docs for the API."
	TUNEDESK_ENGINE__KIND=$(ENGINE) $(BIN)/tunedesk serve --host $(HOST) --port $(PORT)

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# the CPU build of torch first, pinned, so no dependency pulls the CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev,train]'
	rm -f $(VENV)/.installed-* && touch $@

model: install
	TUNEDESK_ENGINE__KIND=$(ENGINE) $(BIN)/tunedesk model prepare

ingest: install
	$(BIN)/tunedesk ingest knowledge/sample/docs --prune

# publishes the demo adapter as the default tenant's active version, once: after that the
# registry is the operator's (a rollback is not undone by the next `make run`)
demo-model: install
	$(BIN)/tunedesk publish $(DEMO_ADAPTER) --offline --activate --skip-existing \
		--candidate-eval $(DEMO_EVAL) --active-eval $(DEMO_EVAL)

test: lint pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: install
	$(BIN)/python -m pytest -m "not gpu" -p no:cacheprovider

bench: install model
	$(BIN)/python -m bench.chat_latency

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
