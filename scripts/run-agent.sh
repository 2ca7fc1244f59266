#!/usr/bin/env bash
# Installs the agent in .venv and starts it in the foreground: watch_authlog follows
# /var/log/auth.log, else /var/log/secure, else the systemd journal, and the agent API is served
# (waitress) on ALPHA_AGENT_BIND (default 0.0.0.0:8001) for the central server.
# Arguments go to watch_authlog (for example: scripts/run-agent.sh /var/log/secure).
# Settings are read from data/alpha.env, created on the first run with a random SECRET_KEY and
# a random ALPHA_AGENT_TOKEN (give that token to the central server). ALLOWED_HOSTS defaults to
# this machine's names and addresses: set it to the name the central server's URL uses.
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
if [ -z "${ALLOWED_HOSTS:-}" ]; then
    names="$(hostname),$(hostname -f 2>/dev/null || true),localhost,127.0.0.1,[::1]"
    for address in $(hostname -I 2>/dev/null || true); do
        case "$address" in *:*) names="$names,[$address]" ;; *) names="$names,$address" ;; esac
    done
    export ALLOWED_HOSTS="$names"
fi
.venv/bin/python manage.py migrate --verbosity 0
.venv/bin/python manage.py collectstatic --noinput --verbosity 0

pids=()
stop() { trap - EXIT INT TERM; kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM
.venv/bin/python manage.py serve_agent_api &
pids+=($!)
.venv/bin/python manage.py watch_authlog "$@" &
pids+=($!)
# Either one ending ends both: no orphan left following the log.
wait -n
