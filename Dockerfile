# The smartAquarium image: the web server and the Celery worker run from it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

# pg_dump and pg_restore for PostgreSQL snapshots (docker-compose.postgres.yml):
# bookworm's PostgreSQL 15 client, as new as that file's server.
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/*

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# The admin's CSS and JavaScript, served by WhiteNoise (see smartAquarium/wsgi.py).
# A throwaway key for this step: the image must not carry one (compose keeps the real one in /data).
RUN DATABASE_URL=sqlite:////tmp/build.sqlite3 SECRET_KEY_FILE=/tmp/build-secret.key \
    python manage.py collectstatic --noinput && rm -f /tmp/build-secret.key

# The database and backups live in the /data volume, owned by an ordinary user.
RUN useradd --system --create-home --uid 1000 plant && mkdir -p /data/backups && chown -R plant /data
USER plant
