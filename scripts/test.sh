#!/usr/bin/env bash
# Runs the whole test suite twice: on SQLite (the embedded default) and on PostgreSQL.
#   ALPHA_TEST_POSTGRES_URL  PostgreSQL server for the second run
#                            (default postgres://postgres@127.0.0.1:5432/alpha; the tests use test_alpha)
#   CELERY_BROKER_URL        Redis for the Celery worker-and-beat test (default redis://127.0.0.1:6379/0;
#                            the test takes an empty database of that server and flushes it afterwards)
#   CI=true                  a missing PostgreSQL or Redis fails the run instead of skipping it
# Extra arguments go to pytest (for example: scripts/test.sh -k parsing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt
export SECRET_KEY="${SECRET_KEY:-test-only-key}"
export ALPHA_DATA_DIR="${ALPHA_DATA_DIR:-$(mktemp -d)}"
postgres_url="${ALPHA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/alpha}"
redis_url="${CELERY_BROKER_URL:-redis://127.0.0.1:6379/0}"

# Checked before anything runs: the Celery integration test needs Redis (redis-cli may be absent).
check_redis='
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=5, socket_timeout=5).ping()
'
if ! .venv/bin/python -c "$check_redis" "$redis_url" 2>/dev/null; then
    if [ "${CI:-}" = "true" ]; then
        echo "Redis is not reachable at $redis_url: CI needs it for the Celery worker-and-beat test." >&2
        exit 1
    fi
    echo "Redis is not reachable at $redis_url: the Celery worker-and-beat test will be skipped (CI would fail)." >&2
fi

# The SQLite run uses the compiled parser and tracker where scripts/compile.sh built them; the
# PostgreSQL run the same modules as Python, so both are tested whole.
echo "== tests on SQLite (compiled parser and tracker: $(.venv/bin/python -c 'import collector.speedups as s; print("yes" if s.in_use() else "no")'))"
env -u DATABASE_URL .venv/bin/pytest -q "$@"

echo "== tests on PostgreSQL ($postgres_url)"
check_postgres='
import sys, dj_database_url, psycopg
c = dj_database_url.parse(sys.argv[1])
psycopg.connect(host=c["HOST"] or None, port=c["PORT"] or None, user=c["USER"] or None,
                password=c["PASSWORD"] or None, dbname="postgres", connect_timeout=5).close()
'
if ! .venv/bin/python -c "$check_postgres" "$postgres_url" 2>/dev/null; then
    if [ "${CI:-}" = "true" ]; then
        echo "PostgreSQL is not reachable at $postgres_url: CI needs it." >&2
        exit 1
    fi
    echo "PostgreSQL is not reachable at $postgres_url: skipping the PostgreSQL run (CI would fail)." >&2
    exit 0
fi
echo "   (as Python: ALPHA_COMPILED=0)"
ALPHA_COMPILED=0 DATABASE_URL="$postgres_url" .venv/bin/pytest -q "$@"
