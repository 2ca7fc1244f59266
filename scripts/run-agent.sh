#!/usr/bin/env bash
# Installs the agent in .venv and starts it in the foreground: watch_authlog follows
# /var/log/auth.log, else /var/log/secure, else the systemd journal, and gunicorn serves the
# agent API on ALPHA_AGENT_BIND (default 0.0.0.0:8001) for the central server.
# Arguments go to watch_authlog (for example: scripts/run-agent.sh /var/log/secure).
# Settings are read from data/alpha.env, created on the first run with a random SECRET_KEY and
# a random ALPHA_AGENT_TOKEN (give that token to the central server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
mkdir -p data
if [ ! -f data/alpha.env ]; then
    umask 077
    new_secret() { .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(40))"; }
    printf 'SECRET_KEY=%s\nALPHA_AGENT_TOKEN=%s\n' "$(new_secret)" "$(new_secret)" > data/alpha.env
    echo "Created data/alpha.env; the agent API token is its ALPHA_AGENT_TOKEN line."
fi
export ALPHA_ROLE="${ALPHA_ROLE:-agent}"
set -a
. data/alpha.env
set +a
.venv/bin/python manage.py migrate --verbosity 0
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
bind="${ALPHA_AGENT_BIND:-0.0.0.0:8001}"
export ALLOWED_HOSTS="${ALLOWED_HOSTS:-*}"
.venv/bin/gunicorn alphaproject.wsgi --bind "$bind" --workers 2 --access-logfile - &
api=$!
trap 'kill $api 2>/dev/null; wait $api 2>/dev/null' EXIT
echo "Agent API: http://$bind/api/v1/ (Swagger UI at /api/docs/ for staff, Bearer token for scripts)"
.venv/bin/python manage.py watch_authlog "$@"
