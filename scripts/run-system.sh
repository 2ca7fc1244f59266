#!/usr/bin/env bash
# Runs the whole system on one machine, with no server but this one: the agent following this
# host's sshd log, the central server (admin, APIs) on ALPHA_BIND (default 127.0.0.1:8000), and
# in-process polling (no Redis needed) of the local agent, registered as the first host.
# The first run creates data/alpha.env (secrets) and an admin user whose password it prints once.
# Arguments go to watch_authlog (for example: scripts/run-system.sh /var/log/secure).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements.txt
mkdir -p data
new_secret() { .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(40))"; }
if [ ! -f data/alpha.env ]; then
    (umask 077; printf 'SECRET_KEY=%s\nALPHA_AGENT_TOKEN=%s\n' "$(new_secret)" "$(new_secret)" > data/alpha.env)
fi
set -a
. data/alpha.env
set +a
export ALPHA_ROLE=all
bind="${ALPHA_BIND:-127.0.0.1:8000}"
.venv/bin/python manage.py migrate --verbosity 0
.venv/bin/python manage.py collectstatic --noinput --verbosity 0
if [ ! -f data/admin-password ]; then
    password=$(new_secret)
    DJANGO_SUPERUSER_PASSWORD="$password" .venv/bin/python manage.py createsuperuser \
        --noinput --username admin --email admin@localhost >/dev/null
    (umask 077; echo "$password" > data/admin-password)
    echo "Admin user: admin, password: $password (also in data/admin-password)"
fi
# The local agent is the first host; this machine serves its agent API on the same address.
(umask 077; printf '%s\n' "$ALPHA_AGENT_TOKEN" > data/agent.token)
.venv/bin/python manage.py add_host "$(hostname)" "http://$bind" --token-file data/agent.token --tags local >/dev/null

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM
.venv/bin/python manage.py watch_authlog "$@" &
pids+=($!)
.venv/bin/gunicorn alphaproject.wsgi --bind "$bind" --workers 2 --access-logfile data/access.log &
pids+=($!)
# Let gunicorn bind and the agent start following (its heartbeat) before the first poll round,
# or this host would show as stale until the next one.
sleep 3
.venv/bin/python manage.py poll_hosts --interval "${ALPHA_POLL_INTERVAL:-60}" &
pids+=($!)
echo "Alpha is running: http://$bind/admin/ (inventory), http://$bind/api/docs/ (APIs). Ctrl-C stops it."
wait -n
