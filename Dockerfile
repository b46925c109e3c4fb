# Production image: the web server, Celery worker and Celery beat all run from it
# (see docker-compose.yml). Settings come from the environment (.env.example).

# The source without local state: a developer's virtualenv, SQLite database, artifacts
# and caches never reach the image, whatever the build context holds.
FROM python:3.11-slim AS source
COPY . /src
RUN rm -rf /src/.venv /src/var /src/.git /src/.env /src/.ruff_cache /src/.pytest_cache /src/bench/output \
    && find /src -name __pycache__ -type d -prune -exec rm -rf {} +

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RFM_VAR_DIR=/app/var

# libgomp1: OpenMP runtime needed by the lightgbm, faiss-cpu and torch wheels.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Requirements first, so code changes do not reinstall them. requirements.txt pins
# torch==2.13.0 (the CPU wheel); keep that pin.
COPY requirements.txt .
RUN pip install -r requirements.txt

COPY --from=source /src /app

RUN useradd --create-home --uid 1000 rfm \
    && mkdir -p /app/var \
    && chown -R rfm:rfm /app/var
USER rfm

EXPOSE 8000
# uvicorn worker processes (WEB_CONCURRENCY, default 1 here; docker-compose.yml sets 2), keep-alive on.
CMD ["python", "manage.py", "serve", "--host", "0.0.0.0", "--port", "8000"]
