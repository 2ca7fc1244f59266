# The central server (web, Celery worker and beat) and, for hosts that run Docker, the agent: one
# image, the role chosen by ALPHA_ROLE and the command (docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ALPHA_DATA_DIR=/data \
    ALPHA_STATIC_ROOT=/opt/alpha/static

# journalctl, for an agent that follows the journal of its host (mounted read-only).
RUN apt-get update \
    && apt-get install -y --no-install-recommends systemd \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/alpha
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY . .
# Static files (admin, Swagger UI, the dashboard's) are collected into the image; whitenoise
# serves them. The key is a throwaway: collectstatic reads no secret.
RUN SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput --verbosity 0

# No root at run time. The agent reads logs through its groups (docker-compose.yml: group_add).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin alpha \
    && mkdir -p /data && chown alpha:alpha /data && chmod 0700 /data
USER alpha
VOLUME ["/data"]
EXPOSE 8000 8001
CMD ["gunicorn", "alphaproject.wsgi", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
