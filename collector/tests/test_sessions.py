from __future__ import annotations

import json
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.contract import TALLIED
from collector.parsing import MALFORMED, Parser
from collector.sessions import Tally, Tracker

from .logs import brute_force, login, sample_log, scanner, syslog

ZONE = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=ZONE)
START = datetime(2026, 3, 2, 20, 0)


def events(lines: list[str]):
    parser = Parser(ZONE, now=NOW)
    for line in lines:
        event = parser.parse_line(line)
        if event is not None and event is not MALFORMED:
            yield event


def merged(tallies: list[Tally]) -> dict:
    """Sum a list of tallies into plain totals, as the database would after adding them."""
    days: dict[str, list[int]] = {}
    sources: dict = {}
    users: dict = {}
    for tally in tallies:
        for day, counts in tally.days.items():
            days[day] = [a + b for a, b in zip(days.get(day, [0] * 6), counts)]
        for key, counts in tally.sources.items():
            old = sources.get(key, [0, 0, 0])
            sources[key] = [old[i] + counts[i] for i in range(3)]
        for key, counts in tally.users.items():
            old = users.get(key, [0, 0, 0])
            users[key] = [a + b for a, b in zip(old, counts)]
    days = {d: dict(zip(TALLIED, c)) for d, c in days.items() if any(c)}
    return {"days": days, "sources": sources, "users": users}


def count(lines: list[str]) -> dict:
    tracker = Tracker()
    for event in events(lines):
        tracker.feed(event)
    return merged([tracker.take_tally()])


def test_it_counts_a_connection_once_on_the_day_of_its_first_line():
    # A brute force starting at 23:59:58 whose failures come after midnight.
    lines = brute_force(datetime(2026, 3, 2, 23, 59, 58), 400, "198.51.100.7", "admin", attempts=3)
    totals = count(lines)
    assert totals["days"] == {
        "2026-03-02": {"sessions": 1, "accepted": 0, "failed_attempts": 3, "failed_sessions": 1,
                       "invalid_user_sessions": 1, "preauth_only": 0},
    }  # fmt: skip
    assert totals["sources"] == {("2026-03-02", "198.51.100.7"): [1, 3, 0]}
    assert totals["users"] == {("2026-03-02", "admin"): [1, 3, 0]}


def test_it_does_not_count_the_post_auth_child_as_a_connection():
    lines = login(START, 500, 501, "192.0.2.10")
    totals = count(lines)
    assert totals["days"]["2026-03-02"]["sessions"] == 1
    assert totals["days"]["2026-03-02"]["accepted"] == 1
    assert totals["days"]["2026-03-02"]["preauth_only"] == 0


def test_it_counts_a_reused_pid_as_a_new_connection():
    first = brute_force(START, 600, "198.51.100.1", "root", attempts=1)
    second = brute_force(START + timedelta(seconds=30), 600, "198.51.100.2", "oracle", attempts=2)
    totals = count(first + second)
    day = totals["days"]["2026-03-02"]
    assert day["sessions"] == 2
    assert day["failed_attempts"] == 3
    assert set(totals["sources"]) == {("2026-03-02", "198.51.100.1"), ("2026-03-02", "198.51.100.2")}


def test_it_does_not_open_a_connection_for_trailing_lines_after_the_end():
    # PAM's summary comes after sshd logged the disconnect.
    lines = [
        syslog(START, 700, "Failed password for root from 198.51.100.3 port 2222 ssh2"),
        syslog(START, 700, "Connection closed by authenticating user root 198.51.100.3 port 2222 [preauth]"),
        syslog(
            START,
            700,
            "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.3  user=root",
        ),
    ]
    assert count(lines)["days"]["2026-03-02"]["sessions"] == 1


def test_it_never_counts_the_listener():
    lines = [
        syslog(START, 1, "Server listening on 0.0.0.0 port 22."),
        syslog(START, 1, "Received SIGHUP; restarting."),
        syslog(START, 1, "Received signal 15; terminating."),
    ]
    assert count(lines)["days"] == {}


def test_it_splits_outcomes_into_failed_invalid_and_preauth_only():
    lines = (
        scanner(START, 800, "198.51.100.9")
        + [syslog(START, 801, "Did not receive identification string from 198.51.100.9 port 1")]
        + [syslog(START, 802, "Failed password for root from 198.51.100.8 port 3 ssh2")]
        + [syslog(START, 802, "Accepted password for root from 198.51.100.8 port 3 ssh2")]
        + [syslog(START, 803, "Invalid user x from 198.51.100.8 port 4"),
           syslog(START, 803, "Connection closed by invalid user x 198.51.100.8 port 4 [preauth]")]
    )  # fmt: skip
    day = count(lines)["days"]["2026-03-02"]
    # The failed-then-accepted connection is accepted, not failed.
    assert day == {"sessions": 4, "accepted": 1, "failed_attempts": 1, "failed_sessions": 0,
                   "invalid_user_sessions": 1, "preauth_only": 2}  # fmt: skip


def test_it_expands_repeated_messages():
    lines = [
        syslog(START, 900, "Failed password for root from 198.51.100.4 port 5 ssh2"),
        syslog(
            START, 900, "message repeated 4 times: [ Failed password for root from 198.51.100.4 port 5 ssh2]"
        ),
        f"{START:%b} {START.day:2d} {START:%H:%M:%S}  sshd[900]: last message repeated 2 times",
    ]
    day = count(lines)["days"]["2026-03-02"]
    assert day["failed_attempts"] == 1 + 4 + 2
    assert day["sessions"] == 1


def test_it_keeps_attacker_text_out_of_the_source_address():
    lines = [
        syslog(
            START,
            901,
            "Failed password for invalid user a from 6.6.6.6 port 1 ssh2 from 192.0.2.5 port 58946 ssh2",
        )
    ]
    totals = count(lines)
    assert list(totals["sources"]) == [("2026-03-02", "192.0.2.5")]
    assert list(totals["users"]) == [("2026-03-02", "a from 6.6.6.6 port 1 ssh2")]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_it_gives_the_same_counts_for_any_split_and_restart(cuts):
    # The agent saves the tracker state with each batch; a restart loads it back (as JSON).
    lines = sample_log(START)
    expected = count(lines)
    all_events = list(events(lines))
    bounds = [0, *sorted(c % (len(all_events) + 1) for c in cuts), len(all_events)]
    tallies = []
    state = None
    for lo, hi in zip(bounds, bounds[1:]):
        tracker = Tracker(json.loads(json.dumps(state)) if state is not None else None)
        for event in all_events[lo:hi]:
            tracker.feed(event)
        tallies.append(tracker.take_tally())
        state = tracker.state()
    assert merged(tallies) == expected
