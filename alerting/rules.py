"""The alert rules: one function per rule kind, reading the central database through the ORM,
each returning Findings; a registry so that a new kind plugs in with a decorator (its Rule row
is created at the next migrate, with the defaults given here).

evaluate() runs every enabled rule and stores what they found, grouped into campaigns
(models.Alert), together with the pending deliveries of every new alert, before anything is sent.

Day granularity: polling stores each address once per host and day, with its day's counts and
first and last time seen (inventory_app.HostSource). A rule over a window reads the rows of the
days the window touches whose last_seen falls inside it, and counts their whole day: an address
active within the window is counted with that day's earlier attempts too. So a window shorter
than a day measures "still active within the window" rather than "failed N times within it".
"""

from __future__ import annotations

import functools
import ipaddress
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count, Max, Min, Q, Sum
from django.utils import timezone

from collector.contract import is_address
from inventory_app.models import DOWN, NO_SOURCE, OK, STALE, Host, HostLogin, HostSource

from .models import CRITICAL, INFO, WARNING, Alert, Delivery, HostBaseline, Rule, host_field

LOGIN_AFTER_FAILURES = "login_after_failures"
NEW_LOGIN = "new_login"
BRUTE_FORCE = "brute_force"
HOST_NEEDS_LOOK = "host_needs_look"


@dataclass(frozen=True)
class Finding:
    """What a rule found about one key (an address, a user, a host and problem)."""

    key: str
    summary: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    hosts: tuple[str, ...] = ()
    address: str = ""
    user: str = ""


@dataclass(frozen=True)
class RuleKind:
    kind: str
    name: str
    description: str
    window: timedelta
    evaluate: Callable[[Rule, datetime], list[Finding]]
    params: dict[str, int] = field(default_factory=dict)  # thresholds and their defaults
    meanings: dict[str, str] = field(default_factory=dict)  # one sentence per threshold


REGISTRY: dict[str, RuleKind] = {}


def rule_kind(kind: str, name: str, description: str, window: timedelta, params=None, meanings=None):
    """Register the decorated function as the evaluator of `kind`."""

    def register(evaluate):
        REGISTRY[kind] = RuleKind(kind, name, description, window, evaluate, params or {}, meanings or {})
        return evaluate

    return register


# --- Rules 1 and 2: logins --------------------------------------------------------------------

# Logins this recent are looked at by every evaluation: one polled late (its host was down for a
# while) still raises its alert, and one already alerted on adds nothing (Alert.absorb).
LOGIN_LOOKBACK = timedelta(hours=24)


@functools.lru_cache(maxsize=2)
def recent_logins(now: datetime, lookback: timedelta) -> tuple[HostLogin, ...]:
    """The fleet's logins of the look-back, read once per evaluation (rules 1 and 2 both read
    them, and evaluate() passes every rule the same `now`)."""
    return tuple(
        HostLogin.objects.filter(at__gte=now - lookback, at__lte=now)
        .select_related("host")
        # What the rules read: a fleet's day of logins is thousands of rows, and a whole Host
        # (health, errors, times) for each costs more than the query.
        .only("at", "user", "ip", "method", "host__name")
        .order_by("at", "pk")
    )


@functools.lru_cache(maxsize=2)
def failed_before(now: datetime, window: timedelta) -> dict[int, list[tuple[str, datetime, int]]]:
    """For each recent login whose address failed on any host of the fleet (the same included)
    within `window` before it: those failures as (host, first failure, attempts) per host-day.

    The agent reports each source's first and last failure of the day, so "failed, then got
    in" is decided on times: failures that began before the login (or in its second: sshd logs
    whole seconds) and went on within the window before it. The logins page marks the same."""
    logins = [login for login in recent_logins(now, max(window, LOGIN_LOOKBACK)) if is_address(login.ip)]
    if not logins:
        return {}
    earliest = min(login.at for login in logins) - window
    failures = (
        HostSource.objects.filter(
            ip__in={login.ip for login in logins},
            day__gte=timezone.localdate(earliest) - timedelta(days=1),
            first_failed__isnull=False,
        )
        .addresses()
        .values_list("ip", "host__name", "first_failed", "last_failed", "failed_attempts")
    )
    by_ip: dict[str, list[tuple]] = {}
    for ip, host, first, last, attempts in failures:
        by_ip.setdefault(ip, []).append((host, first, last, attempts))
    found = {}
    for login in logins:
        before = [
            (host, first, attempts)
            for host, first, last, attempts in by_ip.get(login.ip, ())
            if first <= login.at and last >= login.at - window
        ]
        if before:
            found[login.pk] = before
    return found


@rule_kind(
    LOGIN_AFTER_FAILURES,
    "Login after failures",
    "A successful login from an address that failed on any host of the fleet (the same host "
    "included) within the window before it. Names every host it failed on and the host it got in on.",
    timedelta(hours=24),
)
def login_after_failures(rule: Rule, now: datetime) -> list[Finding]:
    flagged = failed_before(now, rule.window)
    findings = []
    for login in recent_logins(now, max(rule.window, LOGIN_LOOKBACK)):
        before = flagged.get(login.pk)
        if not before:
            continue
        failed_on = sorted({host for host, _, _ in before})
        attempts = sum(n for _, _, n in before)
        first = min(first for _, first, _ in before)
        findings.append(
            Finding(
                key=login.ip,
                summary=(
                    f"{login.ip} logged in as {login.user} on {login.host.name} "
                    f"({login.method}, {timezone.localtime(login.at):%Y-%m-%d %H:%M:%S}) after failing "
                    f"{attempts:,} attempts on {len(failed_on)} host(s) ({', '.join(failed_on)}) "
                    f"since {timezone.localtime(first):%Y-%m-%d %H:%M}."
                ),
                severity=CRITICAL,
                first_seen=first,
                last_seen=login.at,
                hosts=tuple(sorted({*failed_on, login.host.name})),
                address=login.ip,
                user=login.user,
            )
        )
    return findings


def reported_as_after_failures(now: datetime) -> set[int]:
    """The logins rule 1 reports (when it is on): rule 2 leaves them to it, one login one alert."""
    rule = Rule.objects.filter(kind=LOGIN_AFTER_FAILURES, enabled=True).first()
    return set(failed_before(now, rule.window)) if rule else set()


def network(ip: str, rule: Rule) -> str:
    """The address's network at the rule's prefix (IPv4 /24, IPv6 /64 by default), as text."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return ip
    prefix = rule.param("ipv4_prefix") if address.version == 4 else rule.param("ipv6_prefix")
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))


@rule_kind(
    NEW_LOGIN,
    "Root or a new user/address pair",
    "A login as root, or a user logging in from an address (or network) from which that user "
    "has not logged in on any host within the window before it.",
    timedelta(days=30),
    params={"ipv4_prefix": 24, "ipv6_prefix": 64},
    meanings={
        "ipv4_prefix": "IPv4 addresses in the same /N network count as the same address.",
        "ipv6_prefix": "IPv6 addresses in the same /N network count as the same address.",
    },
)
def new_login(rule: Rule, now: datetime) -> list[Finding]:
    # A login after failures is rule 1's (critical) alert: one login, one alert.
    theirs = reported_as_after_failures(now)
    logins = [login for login in recent_logins(now, LOGIN_LOOKBACK) if login.pk not in theirs]
    if not logins:
        return []
    # Where each of those users logged in from within the window before their logins.
    seen: dict[str, list[tuple[datetime, str]]] = {}
    history = HostLogin.objects.filter(
        user__in={login.user for login in logins},
        at__gte=min(login.at for login in logins) - rule.window,
        at__lte=now,
    ).values_list("user", "at", "ip")
    networks: dict[str, str] = {}  # the same few addresses come back login after login

    def network_of(ip: str) -> str:
        if ip not in networks:
            networks[ip] = network(ip, rule)
        return networks[ip]

    for user, at, ip in history:
        seen.setdefault(user, []).append((at, network_of(ip)))
    findings = []
    for login in logins:
        where, when = network_of(login.ip), timezone.localtime(login.at)
        host = login.host.name
        if login.user == "root":
            findings.append(
                Finding(
                    key=f"root:{host}",
                    summary=f"root logged in on {host} from {login.ip} ({login.method}, {when:%Y-%m-%d %H:%M:%S}).",
                    severity=WARNING,
                    first_seen=login.at,
                    last_seen=login.at,
                    hosts=(host,),
                    address=login.ip,
                    user=login.user,
                )
            )
            continue
        known = any(
            net == where and login.at - rule.window <= at < login.at for at, net in seen.get(login.user, ())
        )
        if not known:
            findings.append(
                Finding(
                    key=f"{login.user}:{where}",
                    summary=(
                        f"{login.user} logged in on {host} from {login.ip} ({login.method}, "
                        f"{when:%Y-%m-%d %H:%M:%S}): not from {where} in the {rule.window.days} days before."
                    ),
                    severity=WARNING,
                    first_seen=login.at,
                    last_seen=login.at,
                    hosts=(host,),
                    address=login.ip,
                    user=login.user,
                )
            )
    return findings


# --- Rule 3: brute force ----------------------------------------------------------------------


@rule_kind(
    BRUTE_FORCE,
    "Brute force",
    "More than N failed attempts from one address across the fleet within the window, or one "
    "address failing on at least K hosts. Counted per day (see the module's note).",
    timedelta(hours=1),
    params={"failed_attempts": 100, "hosts": 3},
    meanings={
        "failed_attempts": "N: more failed attempts than this from one address, summed over the fleet.",
        "hosts": "K: an address failing on at least this many hosts (0 turns this test off).",
    },
)
def brute_force(rule: Rule, now: datetime) -> list[Finding]:
    since = now - rule.window
    most, least_hosts = rule.param("failed_attempts"), rule.param("hosts")
    rows = (
        HostSource.objects.filter(
            day__gte=timezone.localdate(since),
            day__lte=timezone.localdate(now),
            last_seen__gte=since,
            failed_attempts__gt=0,
        )
        .addresses()  # never a host name: whoever controls a PTR record chooses it
        .order_by()
    )
    per_address = rows.values("ip").annotate(
        failed=Sum("failed_attempts"),
        host_count=Count("host", distinct=True),
        first=Min("first_seen"),
        last=Max("last_seen"),
    )
    # The thresholds in the database (HAVING): of the fleet's thousands of addresses a window
    # holds, only those over them come back.
    over = Q(failed__gt=most) | Q(host_count__gte=least_hosts) if least_hosts else Q(failed__gt=most)
    per_address = per_address.filter(over)
    matched = [
        row
        for row in per_address
        if is_address(row["ip"])
        and (row["failed"] > most or (least_hosts and row["host_count"] >= least_hosts))
    ]
    if not matched:
        return []
    hosts: dict[str, set[str]] = {}
    users: dict[str, set[str]] = {}
    for ip, name, tried in rows.filter(ip__in=[r["ip"] for r in matched]).values_list(
        "ip", "host__name", "users"
    ):
        hosts.setdefault(ip, set()).add(name)
        users.setdefault(ip, set()).update(tried)
    findings = []
    for row in matched:
        ip, names = row["ip"], sorted(hosts.get(ip, ()))
        tried = sorted(users.get(ip, ()))
        summary = (
            f"{ip} failed {row['failed']:,} attempts on {len(names)} host(s) ({', '.join(names)}) "
            f"since {timezone.localtime(row['first']):%Y-%m-%d %H:%M}"
        )
        if tried:
            more = f" and {len(tried) - 5} more" if len(tried) > 5 else ""
            summary += "; user names tried: " + ", ".join(tried[:5]) + more
        findings.append(
            Finding(
                key=ip,
                summary=summary + ".",
                severity=WARNING,
                first_seen=row["first"],
                last_seen=row["last"],
                hosts=tuple(names),
                address=ip,
            )
        )
    return findings


# --- Rule 4: a host that needs a look ---------------------------------------------------------

# A week of hourly samples of each host's unknown sshd messages (the last 24 h, from its health).
BASELINE_HOURS = 7 * 24
# A baseline needs a day of samples before it can say what is usual.
BASELINE_MIN_SAMPLES = 24


def unknown_jumped(current: int, earlier: list[int], minimum: int, factor: int) -> bool:
    """Whether the unknown sshd messages of the last 24 h are well above the host's usual level:
    at least `minimum`, and at least `factor` times the median of a week of hourly samples.

    The median, not the mean: an earlier burst (a scanner sending garbage for an afternoon) does
    not raise the bar, and a new format drift keeps firing until it has lasted half a week, by
    which time someone has had a look."""
    if len(earlier) < BASELINE_MIN_SAMPLES:
        return False
    usual = statistics.median(earlier)
    return current >= minimum and current >= factor * usual


@rule_kind(
    HOST_NEEDS_LOOK,
    "A host that needs a look",
    "Polling failing for M rounds in a row; an agent that answers but does not follow its log "
    "(stale) or has none to read; a log with no new event for S hours while its agent answers; "
    "or unknown sshd messages well above the host's usual level (format drift after an upgrade).",
    timedelta(hours=24),
    params={"failed_rounds": 3, "silent_hours": 24, "unknown_minimum": 20, "unknown_factor": 5},
    meanings={
        "failed_rounds": "M: polls failed in a row before a down host is reported.",
        "silent_hours": "S: hours without a new sshd event in the log while its agent answers.",
        "unknown_minimum": "Unknown sshd messages in the last 24 h below this are never reported.",
        "unknown_factor": "Reported at this many times the host's usual unknown messages (the median of "
        "a week of hourly samples; a day of samples is needed first).",
    },
)
def host_needs_look(rule: Rule, now: datetime) -> list[Finding]:
    failed_rounds, silent = rule.param("failed_rounds"), timedelta(hours=rule.param("silent_hours"))
    findings = []
    hosts = list(Host.objects.enabled().exclude(last_poll_at=None))
    baselines = {b.host_id: b for b in HostBaseline.objects.filter(host__in=hosts)}
    new_baselines: list[HostBaseline] = []
    changed_baselines: list[HostBaseline] = []
    hour = int(now.timestamp()) // 3600

    def found(host: Host, problem: str, summary: str, severity: str = WARNING) -> None:
        findings.append(
            Finding(
                key=f"{host.name}:{problem}",
                summary=summary,
                severity=severity,
                # Each failed or answered poll is new activity: the campaign goes on as long as
                # the problem does, and a host fixed and broken again a day later is a new one.
                first_seen=host.last_poll_at,
                last_seen=host.last_poll_at,
                hosts=(host.name,),
            )
        )

    for host in hosts:
        if host.state == DOWN and host.consecutive_failures >= failed_rounds:
            found(
                host,
                "down",
                f"{host.name}: {host.consecutive_failures} polls failed in a row: {host.last_error}",
            )
        elif host.state == STALE:
            found(host, "stale", f"{host.name}: its agent answers but is not following its log.")
        elif host.state == NO_SOURCE:
            found(host, "no-log-source", f"{host.name}: its agent has no sshd log to read: {host.last_error}")
        elif host.state == OK and host.last_event_at is not None and now - host.last_event_at > silent:
            age = (now - host.last_event_at).total_seconds() / 3600
            found(host, "silent", f"{host.name}: no new sshd event in its log for {age:.0f} hours.", INFO)
        if host.state != DOWN and host.unknown_last_24h is not None:
            baseline = baselines.get(host.pk) or HostBaseline(host=host)
            earlier = baseline.earlier_samples(hour)
            if unknown_jumped(
                host.unknown_last_24h, earlier, rule.param("unknown_minimum"), rule.param("unknown_factor")
            ):
                found(
                    host,
                    "format-drift",
                    f"{host.name}: {host.unknown_last_24h:,} sshd messages Alpha does not know in the last "
                    f"24 h, usually {statistics.median(earlier):g} (an OpenSSH upgrade?).",
                )
            before = dict(baseline.unknown_hours)
            baseline.add_sample(hour, host.unknown_last_24h, BASELINE_HOURS)
            if baseline.pk is None:
                new_baselines.append(baseline)
            elif baseline.unknown_hours != before:  # within the hour, mostly the same sample again
                changed_baselines.append(baseline)
    # Written together: one UPDATE per host after every round was most of this rule's time.
    HostBaseline.objects.bulk_create(new_baselines, batch_size=500)
    HostBaseline.objects.bulk_update(changed_baselines, ["unknown_hours"], batch_size=500)
    return findings


# --- Evaluation -------------------------------------------------------------------------------


def evaluate(now: datetime | None = None) -> list[int]:
    """Run every enabled rule and store what it found; returns the ids of the new deliveries.

    Each rule is evaluated and stored in one transaction holding its Rule row (SELECT FOR UPDATE
    on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers anyway), so two evaluations
    at once (a Celery worker and a manual one) never raise one campaign twice."""
    now = now or timezone.now()
    Rule.objects.ensure_all()
    # Rules 1 and 2 share the logins they read, within this evaluation only.
    recent_logins.cache_clear()
    failed_before.cache_clear()
    try:
        return _evaluate(now)
    finally:
        recent_logins.cache_clear()
        failed_before.cache_clear()


def _evaluate(now: datetime) -> list[int]:
    new_deliveries: list[int] = []
    for rule_id in Rule.objects.filter(enabled=True).values_list("pk", flat=True):
        with transaction.atomic():
            rule = Rule.objects.select_for_update().get(pk=rule_id)
            if rule.definition is None:
                continue  # a kind no longer registered: its row stays for its alerts
            findings = rule.definition.evaluate(rule, now)
            if not findings:
                continue
            # One query for the campaigns these findings may belong to and one for the channels,
            # rather than two per finding (a round over a big fleet finds hundreds).
            campaigns = Alert.objects.campaigns(
                rule, {f.key for f in findings}, min(f.last_seen for f in findings) - rule.quiet_period
            )
            channels = list(rule.channels.filter(enabled=True))
            for finding in findings:
                new_deliveries += record(rule, finding, now, campaigns, channels)
    return new_deliveries


def record(rule: Rule, finding: Finding, now: datetime, campaigns: dict, channels: list) -> list[int]:
    """Fold the finding into its campaign (the latest alert of its key in `campaigns`, kept up to
    date here), or raise a new alert with a pending delivery per channel. Returns the new
    deliveries' ids."""
    latest = campaigns.get(finding.key)
    if latest is not None and finding.last_seen - latest.last_seen <= rule.quiet_period:
        latest.absorb(finding)
        return []
    alert = Alert.objects.create(
        rule=rule,
        key=finding.key[:400],
        severity=finding.severity,
        summary=finding.summary,
        address=finding.address,
        user=finding.user[:128],
        hosts=host_field(finding.hosts),
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        created_at=now,
        updated_at=now,
    )
    # Later than any earlier alert of the key (created only past the quiet period after it): the
    # campaign from now on, for the findings of this evaluation still to come.
    campaigns[finding.key] = alert
    return [
        Delivery.objects.create(alert=alert, channel=channel, next_attempt_at=now).pk for channel in channels
    ]
