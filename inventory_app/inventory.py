"""Inventory files for scripted setups: read a CSV or YAML list of hosts, check every entry, then
apply them all or none. Used by `manage.py import_inventory`; `add_host` and the admin share the
token and tag rules.

An inventory only adds and updates: hosts it does not name are left alone, and a host whose url,
token and tags already match is not written at all, so importing the same file twice changes
nothing.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.core.exceptions import ValidationError
from django.db import transaction

from .models import Host

COLUMNS = ("name", "url", "token", "token_file", "tags")
# Agents refuse an ALPHA_AGENT_TOKEN shorter than this (see settings), so a shorter one is a typo.
MIN_TOKEN_LENGTH = 16
# A token file holds one line; refusing big files keeps a wrong path (a log, /dev/zero) harmless.
MAX_TOKEN_FILE_CHARS = 4096
# Tags are stored comma-joined and matched whole (HostQuerySet.with_tag), so no separators inside.
TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,49}$")
TAG_SEPARATORS = re.compile(r"[\s;,]+")
MAX_LISTED_ERRORS = 20


class InventoryError(Exception):
    """What is wrong, one sentence per problem, each naming where it is."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else problems
        shown = self.problems[:MAX_LISTED_ERRORS]
        if len(self.problems) > MAX_LISTED_ERRORS:
            shown.append(f"… and {len(self.problems) - MAX_LISTED_ERRORS} more.")
        super().__init__("\n".join(shown))


@dataclass(frozen=True)
class Entry:
    where: str  # "line 3" or "entry 2 (line 5)": how error messages name it
    name: str
    url: str
    token: str
    tags: tuple[str, ...]


@dataclass(frozen=True)
class Result:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    def summary(self) -> str:
        return f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"


# --- Rules shared with add_host and the admin ----------------------------------------------------


def parse_tags(value: str | list | None) -> list[str]:
    """Tags from a string (separated by spaces, ';' or ',') or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        items = TAG_SEPARATORS.split(value)
    elif isinstance(value, list) and all(isinstance(t, str) for t in value):
        items = [t.strip() for t in value]
    else:
        raise ValueError("tags must be a string or a list of strings.")
    tags = sorted({t for t in items if t})
    for tag in tags:
        if not TAG.match(tag):
            raise ValueError(
                f"the tag {tag!r} is not valid: use up to 50 letters, digits, '.', '_', ':' and '-'."
            )
    return tags


def check_token(token: str) -> str:
    """The token as stored, or ValueError. Never echoes the token."""
    if not token:
        raise ValueError("the token is empty.")
    if any(c.isspace() for c in token):
        raise ValueError("the token must be one word, without spaces or line breaks.")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(f"the token is shorter than {MIN_TOKEN_LENGTH} characters, which agents refuse.")
    return token


def read_token_file(path: Path) -> str:
    """The stripped token in a file, or ValueError naming the file and the problem."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read(MAX_TOKEN_FILE_CHARS + 1)
    except FileNotFoundError:
        raise ValueError(f"the token file {path} does not exist.") from None
    except UnicodeDecodeError:
        raise ValueError(f"the token file {path} is not UTF-8 text.") from None
    except OSError as exc:
        raise ValueError(f"cannot read the token file {path}: {exc.strerror or exc}.") from None
    if len(text) > MAX_TOKEN_FILE_CHARS:
        raise ValueError(f"the token file {path} is too large to hold a token.")
    if not text.strip():
        raise ValueError(f"the token file {path} is empty.")
    return check_token(text.strip())


def sentence(text: str) -> str:
    """Our messages are written to follow "line 3: "; alone they start with a capital."""
    return text[:1].upper() + text[1:]


def stored_tags(tags: list[str] | tuple[str, ...]) -> str:
    # As Host.save() stores them, so that max_length is checked on the real value.
    return ",".join(sorted(set(tags))).join(",,") if tags else ""


def model_problem(host: Host) -> str | None:
    """The model's first objection to a host, as "field: message", or None."""
    try:
        # Names already in the database are updates, not clashes: uniqueness is not checked here.
        host.full_clean(validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        return f"{field}: {messages[0]}"
    if not host.url.lower().startswith(("http://", "https://")):
        return "url: use an http:// or https:// address."
    return None


# --- Reading an inventory -----------------------------------------------------------------------


def read_inventory(path: Path) -> list[Entry]:
    """Every entry of the file, all checked; InventoryError lists every bad one."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yaml", ".yml"):
        raise InventoryError(f"{path}: use a .csv, .yaml or .yml file (the extension names the format).")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: spreadsheets write a BOM
            text = f.read()
    except UnicodeDecodeError:
        raise InventoryError(f"{path} is not UTF-8 text.") from None
    except OSError as exc:
        raise InventoryError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    raw = csv_rows(text) if suffix == ".csv" else yaml_rows(text)

    entries: list[Entry] = []
    problems: list[str] = []
    first_line: dict[str, str] = {}
    for where, row in raw:
        try:
            entry = make_entry(where, row, path.parent)
        except ValueError as exc:
            name = row.get("name")
            label = f"{where} ({name})" if isinstance(name, str) and name.strip() else where
            problems.append(f"{label}: {exc}")
            continue
        if entry.name in first_line:
            problems.append(f"{where}: the name {entry.name} is already used on {first_line[entry.name]}.")
            continue
        first_line[entry.name] = where
        entries.append(entry)
    if problems:
        raise InventoryError(problems)
    return entries


def csv_rows(text: str) -> list[tuple[str, dict]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [c.strip() for c in reader.fieldnames or []]
    if not header:
        raise InventoryError(f"line 1: the header row is missing; start with {','.join(COLUMNS)}.")
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        raise InventoryError(f"line 1: unknown column {unknown[0]!r}; the columns are {', '.join(COLUMNS)}.")
    if len(set(header)) != len(header):
        raise InventoryError("line 1: a column is named twice in the header.")
    if "name" not in header or "url" not in header:
        raise InventoryError("line 1: the header needs at least the columns name and url.")
    reader.fieldnames = header
    rows = []
    try:
        for row in reader:
            # line_num is the line the row ends on, counting the header as line 1.
            where = f"line {reader.line_num}"
            if None in row:
                raise InventoryError(f"{where}: the row has more cells than the header has columns.")
            cells = {k: (v or "").strip() for k, v in row.items()}
            if not any(cells.values()):
                continue  # a row of empty cells, as spreadsheets leave at the end
            rows.append((where, {k: v for k, v in cells.items() if v}))
    except csv.Error as exc:
        raise InventoryError(f"line {reader.line_num}: not valid CSV ({exc}).") from None
    return rows


def yaml_rows(text: str) -> list[tuple[str, dict]]:
    """Entries of a YAML list (at the top, or under `hosts:`), each with its line number."""
    loader = yaml.SafeLoader(text)
    try:
        # Composing first keeps the nodes, whose marks give each entry's line.
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InventoryError(f"{where}not valid YAML ({problem}).") from None
    finally:
        loader.dispose()
    if data is None:
        return []
    if isinstance(data, dict) and set(data) == {"hosts"}:
        data = data["hosts"] or []
        node = next(value for key, value in node.value if key.value == "hosts")
    if not isinstance(data, list):
        raise InventoryError("line 1: the YAML must be a list of hosts (at the top or under hosts:).")
    rows = []
    for index, (item, item_node) in enumerate(zip(data, node.value), start=1):
        where = f"entry {index} (line {item_node.start_mark.line + 1})"
        if not isinstance(item, dict):
            raise InventoryError(f"{where}: each host must be a mapping with name, url, token or token_file.")
        rows.append((where, {k: v for k, v in item.items() if v is not None and v != ""}))
    return rows


def make_entry(where: str, row: dict, base: Path) -> Entry:
    """One checked entry from a row of cells, or ValueError saying what is wrong."""
    unknown = [str(k) for k in row if k not in COLUMNS]
    if unknown:
        raise ValueError(f"unknown field {unknown[0]!r}; the fields are {', '.join(COLUMNS)}.")
    for key in ("name", "url", "token", "token_file"):
        if key in row and not isinstance(row[key], str):
            raise ValueError(f"{key} must be text (quote it).")
    if "token" in row and "token_file" in row:
        raise ValueError("give token or token_file, not both.")
    if "token" in row:
        token = check_token(row["token"].strip())
    elif "token_file" in row:
        # Relative to the inventory, so a file and its token files move together.
        token = read_token_file(base / Path(row["token_file"].strip()).expanduser())
    else:
        raise ValueError("give a token or a token_file.")
    tags = parse_tags(row.get("tags"))
    host = Host(name=row.get("name", "").strip(), url=row.get("url", "").strip(), token=token)
    host.tags = stored_tags(tags)
    problem = model_problem(host)
    if problem:
        raise ValueError(problem)
    return Entry(where=where, name=host.name, url=host.url, token=token, tags=tuple(tags))


# --- Applying -----------------------------------------------------------------------------------


def apply_inventory(entries: list[Entry]) -> Result:
    """Create new hosts and update changed ones in one transaction; write nothing else."""
    created = updated = unchanged = 0
    with transaction.atomic():
        existing = {
            h.name: h for h in Host.objects.select_for_update().filter(name__in=[e.name for e in entries])
        }
        for entry in entries:
            host = existing.get(entry.name)
            if host is None:
                Host.objects.create(
                    name=entry.name, url=entry.url, token=entry.token, tags=stored_tags(entry.tags)
                )
                created += 1
            elif (host.url, host.token, tuple(host.tag_list())) == (entry.url, entry.token, entry.tags):
                unchanged += 1
            else:
                host.url, host.token, host.tags = entry.url, entry.token, stored_tags(entry.tags)
                # Only the inventory's fields: a poll finishing meanwhile keeps its status.
                host.save(update_fields=["url", "token", "tags"])
                updated += 1
    return Result(created, updated, unchanged)
