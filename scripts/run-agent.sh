#!/usr/bin/env bash
# Installs the agent in .venv and starts it in the foreground: it follows /var/log/auth.log,
# else /var/log/secure, else the systemd journal, and counts SSH connections per day.
# Arguments go to watch_authlog (for example: scripts/run-agent.sh --once /var/log/auth.log).
# Settings are read from data/alpha.env, created on the first run with a random SECRET_KEY.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
mkdir -p data
if [ ! -f data/alpha.env ]; then
    umask 077
    key=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(50))")
    printf 'SECRET_KEY=%s\n' "$key" > data/alpha.env
fi
set -a
. data/alpha.env
set +a
.venv/bin/python manage.py migrate --verbosity 0
exec .venv/bin/python manage.py watch_authlog "$@"
