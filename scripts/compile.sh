#!/usr/bin/env bash
# Compiles the agent's parser, classifier and tracker (collector/speedups.py lists them) with mypyc
# into .venv/alpha-compiled; the agent then reads logs with about half the CPU. Needs a C
# compiler and Python's headers (Debian: gcc python3-dev); without them this fails and the agent
# runs them as Python. Quick when the build already matches the sources. Run by bootstrap.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
python=.venv/bin/python
folder="$("$python" -c 'import collector.speedups as s; print(s.FOLDER)')"
if "$python" -c 'import sys, collector.speedups as s; sys.exit(not s.usable("collector"))' 2>/dev/null; then
    exit 0
fi
if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-compile.txt; then
    echo "scripts/compile.sh: could not install mypyc (requirements-compile.txt); the agent's modules run as Python." >&2
    exit 1
fi
modules="$("$python" -c 'import collector.speedups as s; print(" ".join(s.MODULES))')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/collector" "$work/out/collector"
touch "$work/collector/__init__.py"
sources=()
for name in $modules; do
    cp "collector/$name.py" "$work/collector/"
    sources+=("collector/$name.py")
done
if ! (cd "$work" && "$OLDPWD/.venv/bin/mypyc" "${sources[@]}") >"$work/log" 2>&1; then
    tail -n 5 "$work/log" >&2
    echo "scripts/compile.sh: mypyc could not compile the agent's modules (a C compiler and Python's headers are needed); they run as Python." >&2
    exit 1
fi
mv "$work"/collector/*.so "$work/out/collector/"
mv "$work"/*__mypyc*.so "$work/out/"
# The digests of the sources just compiled, not of the tree now: an edit made meanwhile is not used.
"$python" -c '
import json, sys, collector.speedups as s
with open(sys.argv[2], "w") as f:
    json.dump({"python": sys.implementation.cache_tag, "digests": s.digests(sys.argv[1])}, f)
' "$work/collector" "$work/out/manifest.json"
rm -rf "$folder.new" "$folder"
mv "$work/out" "$folder"
