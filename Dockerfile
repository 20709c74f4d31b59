# One uvicorn process per container, as a non-root user. Scale out with replicas (see README: MQTT_SHARED_GROUP).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8000

WORKDIR /srv
# The locked runtime dependencies, checked against their hashes, in a layer of their own: a code change
# does not reinstall them. The lock also pins pip and setuptools, which build the project below.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes --no-deps -r requirements/runtime.txt

# Then the service itself, without dependencies, as a product: its migrations are package data, and the
# source tree is removed so only the installed package can be imported.
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-deps --no-build-isolation . \
    && rm -rf app build ./*.egg-info \
    && useradd --system --uid 10001 --home-dir /srv monitor \
    && mkdir -p /data \
    && chown monitor /data

USER monitor
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/healthz', timeout=2)"
CMD ["infoscreen-monitor", "serve"]
