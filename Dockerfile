# One uvicorn process per container, as a non-root user. Scale out with replicas (see README: MQTT_SHARED_GROUP).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
# `python -m app` runs from /srv, so the app and its migrations/ are used from here; pip brings the dependencies.
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /srv monitor \
    && mkdir -p /data \
    && chown monitor /data

USER monitor
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
CMD ["python", "-m", "app", "serve"]
