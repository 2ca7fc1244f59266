#!/usr/bin/env bash
# Runs the whole system on one machine, with no server but this one: the agent following this
# host's sshd log, the central server (dashboard, admin, APIs) on ALPHA_BIND (default
# 127.0.0.1:8000) and in-process polling (no Redis). When this machine has no sshd log it can
# read (a container, a laptop user outside group adm), or with --demo, a demo host follows a
# generated log that holds the last 14 days and keeps growing, so that every page has something
# to show; --no-demo turns it off.
#
#   scripts/run-system.sh [--demo | --no-demo] [PATH ...]   (paths go to watch_authlog)
#
# The first run creates data/alpha.env (secrets) and an admin user whose password it keeps in
# data/admin-password; later runs reuse everything and change nothing an admin edited. Ctrl-C
# stops every process it started.
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077

demo=auto
paths=()
for argument in "$@"; do
    case "$argument" in
        --demo) demo=yes ;;
        --no-demo) demo=no ;;
        *) paths+=("$argument") ;;
    esac
done

scripts/bootstrap.sh requirements.txt
mkdir -p data data/demo
chmod 700 data data/demo
py=.venv/bin/python
new_secret() { "$py" -c "import secrets; print(secrets.token_urlsafe(40))"; }
if [ ! -f data/alpha.env ]; then
    printf 'SECRET_KEY=%s\nALPHA_AGENT_TOKEN=%s\nALPHA_DEMO_TOKEN=%s\n' "$(new_secret)" "$(new_secret)" "$(new_secret)" > data/alpha.env
fi
grep -q '^ALPHA_DEMO_TOKEN=' data/alpha.env || printf 'ALPHA_DEMO_TOKEN=%s\n' "$(new_secret)" >> data/alpha.env
set -a
. data/alpha.env
set +a
export ALPHA_ROLE=all
bind="${ALPHA_BIND:-127.0.0.1:8000}"
demo_bind="${ALPHA_DEMO_BIND:-127.0.0.1:8002}"
url="http://$bind"

# Every port first: nothing starts if one is taken.
port_free() {
    "$py" - "$1" <<'EOF'
import socket, sys
host, _, port = sys.argv[1].rpartition(":")
host = host.strip("[]")
if not host or not port.isdigit() or not 0 < int(port) < 65536:
    sys.exit("not an address like 127.0.0.1:8000")
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
    # As servers bind: a port with only connections closing (TIME_WAIT) is free.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((host, int(port)))
    except OSError as exc:
        sys.exit(exc.strerror or str(exc))
EOF
}
if ! reason=$(port_free "$bind" 2>&1); then
    echo "ALPHA_BIND: cannot serve on $bind ($reason); set it to a free address, e.g. ALPHA_BIND=127.0.0.1:8080." >&2
    exit 1
fi

"$py" manage.py migrate --verbosity 0
"$py" manage.py collectstatic --noinput --verbosity 0
if [ ! -f data/admin-password ]; then
    password=$(new_secret)
    DJANGO_SUPERUSER_PASSWORD="$password" "$py" manage.py createsuperuser \
        --noinput --username admin --email admin@localhost >/dev/null
    echo "$password" > data/admin-password
fi

# The local agent: which log it follows, or why there is none (the host shows "no log source").
if source_line=$("$py" manage.py watch_authlog --check "${paths[@]}" 2>&1); then
    local_agent=yes
else
    local_agent=no
    source_line=${source_line#CommandError: }
fi
echo "$source_line"
if [ "$demo" = auto ]; then
    demo=$([ "$local_agent" = no ] && echo yes || echo no)
fi
if [ "$demo" = yes ] && ! reason=$(port_free "$demo_bind" 2>&1); then
    echo "ALPHA_DEMO_BIND: cannot serve the demo agent on $demo_bind ($reason); set it, or run with --no-demo." >&2
    exit 1
fi

printf '%s\n' "$ALPHA_AGENT_TOKEN" > data/agent.token
"$py" manage.py add_host "$(hostname)" "$url" --token-file data/agent.token --tags local --if-missing >/dev/null

pids=()
stop() {
    trap - EXIT INT TERM
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap stop EXIT INT TERM

if [ "$local_agent" = yes ]; then
    "$py" manage.py watch_authlog "${paths[@]}" 2>>data/agent.log &
    pids+=($!)
fi
.venv/bin/gunicorn alphaproject.wsgi --bind "$bind" --workers 2 --log-level warning \
    --access-logfile data/access.log 2>>data/web.log &
pids+=($!)

if [ "$demo" = yes ]; then
    # The demo host: its own log, database and agent API, as a second machine would have.
    printf '%s\n' "$ALPHA_DEMO_TOKEN" > data/demo/agent.token
    demo_env=(env ALPHA_ROLE=agent ALPHA_HOST_NAME=demo DATABASE_URL="sqlite:///$PWD/data/demo/agent.sqlite3"
              ALPHA_AGENT_TOKEN="$ALPHA_DEMO_TOKEN" ALLOWED_HOSTS="${demo_bind%:*},localhost")
    "${demo_env[@]}" "$py" manage.py migrate --verbosity 0
    "$py" manage.py demo_authlog data/demo/auth.log --once >/dev/null
    "$py" manage.py demo_authlog data/demo/auth.log &
    pids+=($!)
    "${demo_env[@]}" "$py" manage.py watch_authlog data/demo/auth.log 2>>data/demo/agent.log &
    pids+=($!)
    "${demo_env[@]}" "$py" manage.py serve_agent_api --bind "$demo_bind" >>data/demo/api.log 2>&1 &
    pids+=($!)
    "$py" manage.py add_host demo "http://$demo_bind" --token-file data/demo/agent.token --tags demo \
        --if-missing >/dev/null
fi

# Running means answering: the web server's /healthz, and each agent's health saying it follows.
wait_until() {
    "$py" - "$@" <<'EOF'
import json, sys, time, urllib.request
url, token = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
        with urllib.request.urlopen(request, timeout=2) as answer:
            body = json.load(answer)
            if body.get("following", True):
                sys.exit(0)
    except (OSError, ValueError):
        pass
    time.sleep(0.3)
sys.exit(f"no answer from {url} within 60 s")
EOF
}
if ! wait_until "$url/healthz" ""; then
    echo "The web server did not start on $bind; see data/web.log." >&2
    exit 1
fi
if [ "$local_agent" = yes ] && ! wait_until "$url/api/v1/health/" "$ALPHA_AGENT_TOKEN"; then
    echo "The local agent did not start following; see data/agent.log." >&2
    exit 1
fi
if [ "$demo" = yes ] && ! wait_until "http://$demo_bind/api/v1/health/" "$ALPHA_DEMO_TOKEN"; then
    echo "The demo agent did not start; see data/demo/agent.log and data/demo/api.log." >&2
    exit 1
fi

"$py" manage.py poll_hosts --interval "${ALPHA_POLL_INTERVAL:-60}" >>data/poll.log 2>&1 &
pids+=($!)
echo "Alpha is running. Dashboard: $url/  Admin: $url/admin/ (user admin, password in data/admin-password)."
[ "$demo" = yes ] && echo "The host 'demo' shows generated demo data (scripts/run-system.sh --no-demo leaves it out)."
echo "Ctrl-C stops it."
set +e
wait -n
status=$?
[ "$status" -gt 128 ] && status=0  # stopped by a signal: not a failure
exit "$status"
