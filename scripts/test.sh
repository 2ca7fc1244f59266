#!/usr/bin/env bash
# Runs the whole test suite twice: on SQLite (the embedded default) and on PostgreSQL.
#   ALPHA_TEST_POSTGRES_URL  PostgreSQL server for the second run
#                            (default postgres://postgres@127.0.0.1:5432/alpha; the tests use test_alpha)
#   CI=true                  a missing PostgreSQL fails the run instead of skipping it
# Extra arguments go to pytest (for example: scripts/test.sh -k parsing).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh requirements-dev.txt
export SECRET_KEY="${SECRET_KEY:-test-only-key}"
export ALPHA_DATA_DIR="${ALPHA_DATA_DIR:-$(mktemp -d)}"
postgres_url="${ALPHA_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/alpha}"

echo "== tests on SQLite"
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
DATABASE_URL="$postgres_url" .venv/bin/pytest -q "$@"
