"""The agent's per-line modules compiled with mypyc (scripts/compile.sh): the parser, classifier
and tracker run about twice as fast. A build is used only while it was made from exactly these
sources by this Python; otherwise, or with ALPHA_COMPILED=0, the same modules run as Python.

The build lives in the virtualenv (a new one, with perhaps another Python, starts without) and
is put ahead of the package's own folder on `collector.__path__`, so an edited source can never
be shadowed by a stale build: its digest no longer matches and the build is not used."""

from __future__ import annotations

import hashlib
import json
import os
import sys

MODULES = ("contract", "messages", "parsing", "sessions")
FOLDER = os.path.join(sys.prefix, "alpha-compiled")
MANIFEST = "manifest.json"


def digests(package_dir: str) -> dict[str, str]:
    """The sha256 of each compiled module's source in `package_dir`."""
    found = {}
    for name in MODULES:
        with open(os.path.join(package_dir, f"{name}.py"), "rb") as f:
            found[name] = hashlib.sha256(f.read()).hexdigest()
    return found


def usable(package_dir: str, folder: str = FOLDER) -> bool:
    """Whether `folder` holds a build of the sources in `package_dir` for this Python."""
    if os.environ.get("ALPHA_COMPILED", "1") == "0":
        return False
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            manifest = json.load(f)
        return manifest == {"python": sys.implementation.cache_tag, "digests": digests(package_dir)}
    except (OSError, ValueError):
        return False


def enable(package_path: list[str], folder: str = FOLDER) -> bool:
    """Put a usable build ahead of the package's folder (the package's __path__); True if it was."""
    if not usable(package_path[-1], folder):
        return False
    package_path.insert(0, os.path.join(folder, "collector"))
    # mypyc puts the code of all four modules in one library, imported by its top-level name.
    if folder not in sys.path:
        sys.path.append(folder)
    return True


def in_use() -> bool:
    """Whether this process runs the compiled modules."""
    from . import parsing

    return not parsing.__file__.endswith(".py")
