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
            sources[key] = [old[0] + counts.sessions, old[1] + counts.failed, old[2] + counts.accepted]
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
    # The agent saves the tracker state and the connections each batch changed or forgot; a
    # restart loads them back (as JSON).
    lines = sample_log(START)
    expected = count(lines)
    all_events = list(events(lines))
    bounds = [0, *sorted(c % (len(all_events) + 1) for c in cuts), len(all_events)]
    tallies = []
    state, rows = None, {}
    for lo, hi in zip(bounds, bounds[1:]):
        tracker = Tracker(state, rows)
        for event in all_events[lo:hi]:
            tracker.feed(event)
        tallies.append(tracker.take_tally())
        state, rows = saved(tracker, rows)
    assert merged(tallies) == expected


def saved(tracker: Tracker, rows: dict) -> tuple[dict, dict]:
    """What the agent's database holds after a commit, as JSON: the state and a row per
    connection, only the changed and forgotten ones written."""
    changed, removed = tracker.take_changes()
    rows = {key: row for key, row in rows.items() if key not in removed}
    rows.update(json.loads(json.dumps(changed)))
    return json.loads(json.dumps(tracker.state())), rows


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_it_keeps_the_rows_equal_to_the_open_connections_for_any_split(cuts):
    # Writing only the changes must leave the same rows as writing every connection each time.
    all_events = list(events(sample_log(START) + sample_log(START + timedelta(minutes=30))))
    bounds = [0, *sorted(c % (len(all_events) + 1) for c in cuts), len(all_events)]
    tracker = Tracker()
    rows: dict = {}
    for lo, hi in zip(bounds, bounds[1:]):
        for event in all_events[lo:hi]:
            tracker.feed(event)
        _, rows = saved(tracker, rows)
        assert rows == json.loads(json.dumps({key: conn.to_list() for key, conn in tracker.conns.items()}))


def test_it_reports_only_the_connections_a_batch_changed():
    tracker = Tracker()
    for event in events(guesses(40)):
        tracker.feed(event)
    changed, removed = tracker.take_changes()
    assert len(changed) == 40 and not removed
    # A line of one connection changes that one; nothing else is written again.
    for event in events(
        [syslog(START, 5003, "Failed password for invalid user admin from 192.0.2.3 port 3 ssh2")]
    ):
        tracker.feed(event)
    changed, removed = tracker.take_changes()
    assert list(changed) == ["|web1|5003"] and not removed
    assert tracker.take_changes() == ({}, set())


def test_it_reports_the_connections_it_forgot():
    tracker = Tracker()
    for event in events(guesses(3)):
        tracker.feed(event)
    tracker.take_changes()
    # Eleven minutes later the three are idle past IDLE_SECONDS: a new line evicts them.
    later = START + timedelta(minutes=11)
    for event in events([syslog(later, 6000, "Invalid user x from 192.0.2.99 port 9")]):
        tracker.feed(event)
    changed, removed = tracker.take_changes()
    assert list(changed) == ["|web1|6000"]
    assert removed == {"|web1|5000", "|web1|5001", "|web1|5002"}


def guesses(connections: int) -> list[str]:
    """Connections opened in one second, PIDs from 5000, still open."""
    return [
        syslog(START, 5000 + n, f"Invalid user admin from 192.0.2.{n % 250} port {n}")
        for n in range(connections)
    ]


def test_it_ignores_a_burst_syslog_delivered_again_after_the_end():
    # rsyslog/imjournal after a restart delivers a connection's lines again, after its end.
    connection = brute_force(START, 4100, "198.51.100.30", "admin", attempts=2)
    expected = count(connection)
    again = connection + connection[1:5] + connection[-1:]
    assert count(again) == expected
    # Copies of a one-second scanner and of a login are nothing new either.
    quick = [
        syslog(START, 4101, "Invalid user x from 198.51.100.31 port 4"),
        syslog(START, 4101, "Failed password for invalid user x from 198.51.100.31 port 4 ssh2"),
        syslog(START, 4101, "Connection closed by invalid user x 198.51.100.31 port 4 [preauth]"),
    ]
    session = login(START, 4102, 4103, "192.0.2.10", length=timedelta(seconds=30))
    assert count(quick + quick + session + session) == count(quick + session)


def test_it_still_counts_identical_failures_inside_a_live_connection():
    # sshd writes the same Failed line several times in one second: each is an attempt.
    line = syslog(START, 4104, "Failed password for root from 198.51.100.32 port 7 ssh2")
    assert count([line, line, line])["days"]["2026-03-02"]["failed_attempts"] == 3


def test_it_still_opens_a_connection_for_a_pid_reused_later():
    first = brute_force(START, 4105, "198.51.100.33", "root", attempts=1)
    second = brute_force(START + timedelta(seconds=60), 4105, "198.51.100.34", "root", attempts=1)
    assert count(first + second)["days"]["2026-03-02"]["sessions"] == 2


def connections(kinds: list[int]) -> list[list[str]]:
    """One connection per entry (0 brute force, 1 scanner, 2 login), 20 s apart, PIDs reused."""
    blocks = []
    for n, kind in enumerate(kinds):
        t, pid, ip = START + timedelta(seconds=20 * n), 5000 + n % 4, f"203.0.113.{n % 9 + 1}"
        if kind == 0:
            blocks.append(brute_force(t, pid, ip, f"user{n % 3}", attempts=n % 3 + 1))
        elif kind == 1:
            blocks.append(scanner(t, pid, ip))
        else:
            blocks.append(login(t, pid, pid + 100, ip, length=timedelta(seconds=9)))
    return blocks


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(0, 2), min_size=1, max_size=12),
    st.lists(
        st.tuples(st.integers(0, 99), st.integers(0, 99), st.integers(1, 99), st.integers(0, 3)), max_size=6
    ),
)
def test_it_counts_the_same_with_re_delivered_bursts(kinds, copies):
    blocks = connections(kinds)
    expected = count([line for block in blocks for line in block])
    # Each copy: a burst of one connection's lines, delivered again after its end and after up
    # to three of the connections that follow (before its PID comes back).
    after: dict[int, list[str]] = {}
    for which, start, length, delay in copies:
        n = which % len(blocks)
        block = blocks[n]
        lo = start % len(block)
        after.setdefault(min(n + delay, len(blocks) - 1), []).extend(block[lo : lo + length])
    log = []
    for n, block in enumerate(blocks):
        log += block + after.get(n, [])
    assert count(log) == expected


def test_it_takes_the_address_sshd_wrote_over_a_host_name_from_pam():
    pam = "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={}  user=root"
    lines = [
        syslog(START, 4801, pam.format("host-203-0-113-9.example.net")),
        syslog(START, 4801, "Failed password for root from 203.0.113.9 port 40184 ssh2"),
        syslog(START, 4801, "Connection closed by authenticating user root 203.0.113.9 port 40184 [preauth]"),
        # Only PAM's name for this one: kept as its source once the connection is long over.
        syslog(START, 4802, pam.format("host-198-51-100-20.example.org")),
        syslog(START + timedelta(minutes=20), 4803, "Connection closed by 203.0.113.50 port 2 [preauth]"),
    ]
    totals = count(lines)
    assert totals["sources"] == {
        ("2026-03-02", "203.0.113.9"): [1, 1, 0],
        ("2026-03-02", "host-198-51-100-20.example.org"): [1, 0, 0],
        ("2026-03-02", "203.0.113.50"): [1, 0, 0],
    }
    assert totals["days"]["2026-03-02"]["sessions"] == 3


def test_it_adds_refused_addresses_to_the_sources_without_a_connection():
    lines = [
        syslog(START, 900, "drop connection #0 from [192.0.2.77]:51312 on [192.0.2.1]:22 penalty: exceeded LoginGraceTime"),
        syslog(START, 900, "srclimit_penalise: ipv4: new 192.0.2.78/32 deferred penalty of 30 seconds for penalty: noauth"),
    ]  # fmt: skip
    totals = count(lines)
    assert totals["days"] == {}
    assert totals["sources"] == {
        ("2026-03-02", "192.0.2.77"): [0, 0, 0],
        ("2026-03-02", "192.0.2.78"): [0, 0, 0],
    }
