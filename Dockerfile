# syntax=docker/dockerfile:1
# tunedesk. Three stages: `build` installs the package into a virtual environment, `model`
# converts the packaged Gemma GGUF once (no hub, no download at run time), `runtime` copies
# both into a slim image and runs as a non-root user (uid 10001: numeric, so Kubernetes'
# runAsNonRoot can check it).
#
#   docker build -t tunedesk .                       # CPU torch: the embedded default, or the
#                                                    # service in front of vLLM (docs/deploy.md)
#   docker build -t tunedesk:cuda --build-arg TORCH_INDEX_URL=https://pypi.org/simple .
#                                                    # CUDA torch, for `tunedesk train` on a GPU
#   docker run -p 8000:8000 -v tunedesk-data:/data -e TUNEDESK_ADMIN_API_KEY=... tunedesk
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# torch==2.13.0 from PyPI is the CUDA build (several GB of nvidia-* wheels); the CPU index has
# the CPU-only wheel with the same version, which the package's own torch==2.13.0 pin accepts.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" torch==2.13.0
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service service
COPY knowledge knowledge
COPY training training
# not editable: the runtime stage gets site-packages, never the source tree. DL3013 asks for
# pins: this is the project itself, whose pyproject.toml pins torch and bounds the rest.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[postgres]'

FROM build AS model
# the model directory the engines and the tokenizer counter read; the assembled GGUF it was
# converted from is dropped (253 MB), `tunedesk model prepare` rebuilds it into an empty volume
ENV TUNEDESK_MODEL__CACHE_DIR=/models HF_HUB_OFFLINE=1
RUN tunedesk model prepare && rm -rf /models/gguf

FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HOME=/data/.hf \
    TUNEDESK_DATA_DIR=/data TUNEDESK_MODEL__CACHE_DIR=/models TUNEDESK_HOST=0.0.0.0
RUN groupadd --system --gid 10001 tunedesk \
    && useradd --system --uid 10001 --gid tunedesk --home-dir /data --no-create-home tunedesk \
    && mkdir -p /data/adapters \
    && chown -R tunedesk:tunedesk /data
COPY --from=build /opt/venv /opt/venv
COPY --from=model --chown=tunedesk:tunedesk /models /models
COPY --chmod=0755 deploy/entrypoint.sh /usr/local/bin/tunedesk-entrypoint
USER 10001:10001
WORKDIR /data
EXPOSE 8000
VOLUME ["/data"]
# /healthz is 503 while the engine is down, so a container whose engine cannot answer is unhealthy
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 CMD ["python", "-c", \
    "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
ENTRYPOINT ["tunedesk-entrypoint"]
CMD ["serve"]
