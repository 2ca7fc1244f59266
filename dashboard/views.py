"""The dashboard: server-rendered pages, and the JSON their charts read (Chart.js's {labels,
datasets}). Every view needs a logged-in user; an anonymous one is sent to the login page, for
the JSON too (charts.js then reloads the page, which shows the login form).

Views validate their parameters, call inventory_app/fleet.py (what the central API shares) or
queries.py (the charts' pivots), and lay out the result. Everything that came
from a log (user names, addresses, agent errors) reaches the browser only through Django's
autoescaping or as JSON drawn on a canvas, never as markup.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseForbidden, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST, require_safe

from alerting.models import Alert
from collector.contract import (
    ADDRESS_COUNT_NAMES,
    CONNECTION_COUNTS,
    COUNT_BY_NAME,
    COUNT_NAMES,
    COUNTS,
    TALLIED,
)
from inventory_app import fleet
from inventory_app.models import DUPLICATE, NEVER_POLLED, NO_SOURCE, Host, host_name_validator

from . import queries
from .forms import AlertFilterForm, HostRangeForm, LoginFilterForm, RangeForm, default_range
from .templatetags.dashboard_text import visible

ATTACKERS_PER_PAGE = 100
ALERTS_PER_PAGE = 100
LOGINS_PER_PAGE = 100
# The overview's host table, a page at a time (at 1,000 hosts the whole table was ~600 KB).
HOSTS_PER_PAGE = 100
# A host page lists its latest logins of the day or range, and says when there were more (the
# logins page lists them all, a page at a time).
HOST_LOGINS_SHOWN = 200
# The overview's host table: who, how it is polled, and today's headline counts.
HOST_TABLE = ("pk", "name", "tags", "state", "last_success_at", "last_error", "polled_at", "sessions",
              "accepted", "failed_attempts")  # fmt: skip
DAY_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PRESET_DAYS = (7, 14, 30, 90)

# Colours of the busiest hosts' series (colour-blind-friendly), then grey for the others.
PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7"]
OTHERS_COLOUR = "#bab0ac"
# One colour per tallied count, in the contract's order (connections, accepted, failed attempts,
# failed connections, invalid user, pre-auth only).
OUTCOME_COLOURS = dict(
    zip(TALLIED, ("#4e79a7", "#59a14f", "#f28e2b", "#e15759", "#b07aa1", "#9c755f"), strict=True)
)


def dashboard_view(view):
    """Login required, GET (and HEAD) only (the Content-Security-Policy is the site's own,
    alphaproject.middleware)."""
    return login_required(require_safe(view))


def json_error(message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def parse_day(value: str) -> date | None:
    """A day in a URL: exactly YYYY-MM-DD (one spelling per page), else None."""
    if not DAY_PATTERN.match(value):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        return None


def find_host(name: str) -> Host | None:
    # A name no host can have is not looked up (PostgreSQL refuses some, e.g. NUL bytes).
    if not host_name_validator.regex.match(name):
        return None
    return Host.objects.filter(name=name).first()


def query_string(**params: date | int | None) -> str:
    """?since=...&until=... for links and data-urls (None values left out)."""
    values = {k: (v.isoformat() if isinstance(v, date) else v) for k, v in params.items() if v is not None}
    return f"?{urlencode(values)}" if values else ""


def page_links(request: HttpRequest, shown) -> dict[str, str]:
    """previous_page and next_page of a Paginator page: the request's query string with only the
    page number changed ("" where there is no such page)."""
    keep = {k: v for k, v in request.GET.items() if k != "page"}
    return {
        "previous_page": "?" + urlencode({**keep, "page": shown.previous_page_number()})
        if shown.has_previous()
        else "",
        "next_page": "?" + urlencode({**keep, "page": shown.next_page_number()}) if shown.has_next() else "",
    }


def link_query(since: date, until: date) -> str:
    """The range for links between pages: none when it is the default, so that the plain URL
    of a page (/hosts/web1/) is the one shown and shared."""
    return "" if (since, until) == default_range() else query_string(since=since, until=until)


def range_context(since: date, until: date, error: str, **extra) -> dict:
    today = timezone.localdate()
    presets = [
        {"days": n, "query": query_string(since=today - timedelta(days=n - 1), until=today)}
        for n in PRESET_DAYS
    ]
    return {
        "since": since,
        "until": until,
        "range_error": error,
        "presets": presets,
        "range_query": link_query(since, until),
        **extra,
    }


def valid_range(form: RangeForm) -> tuple[date, date, str]:
    """The form's range, or the default one and why the given one was refused."""
    if form.is_valid():
        return form.cleaned_data["since"], form.cleaned_data["until"], ""
    since, until = default_range()
    return since, until, form.message()


def page(request: HttpRequest, template: str, context: dict, error: str = "") -> HttpResponse:
    return render(request, template, context, status=400 if error else 200)


def sparkline(values: list[int], width: int = 84, height: int = 20) -> str:
    """SVG polyline points for a trend: numbers only (nothing from a log reaches the markup)."""
    if not values:
        return ""
    top = max(values) or 1
    step = width / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(values)
    )


# --- Pages --------------------------------------------------------------------------------------


@dashboard_view
def overview(request: HttpRequest) -> HttpResponse:
    since, until, error = valid_range(RangeForm(request.GET))
    today = timezone.localdate()
    states = fleet.host_states()
    # Ordered by name then pk, so that a page holds the same hosts from one request to the next.
    shown = Paginator(fleet.hosts_with_day(today).order_by("name", "pk").values(*HOST_TABLE),
                      HOSTS_PER_PAGE).get_page(request.GET.get("page"))  # fmt: skip
    hosts = list(shown.object_list)
    trends = queries.host_trends(since, until, [row["pk"] for row in hosts])
    for row in hosts:
        values = trends[row["pk"]]
        row["trend"] = sparkline(values)
        row["trend_text"] = ", ".join(str(v) for v in values)
    data = query_string(since=since, until=until)
    context = range_context(
        since,
        until,
        error,
        section="overview",
        today=today,
        totals=fleet.range_totals(since, until),
        states=states,
        never_polled=states[NEVER_POLLED],
        no_source=states[NO_SOURCE],
        duplicates=states[DUPLICATE],
        busiest=queries.BUSIEST,
        hosts=hosts,
        page_obj=shown,
        **page_links(request, shown),
        trend_days=min(queries.TREND_DAYS, (until - since).days + 1),
        connections_url=reverse("dashboard-data-connections") + data,
        outcomes_url=reverse("dashboard-data-outcomes") + data,
    )
    return page(request, "dashboard/overview.html", context, error)


@dashboard_view
def host_detail(request: HttpRequest, name: str) -> HttpResponse:
    host = find_host(name)
    if host is None:
        raise Http404("No host has this name.")
    form = HostRangeForm(request.GET)
    since, until, error = valid_range(form)
    day = None if error else form.cleaned_data["day"]
    # The tables show the chosen day, or else the whole range.
    first, last = (day, day) if day else (since, until)
    data = query_string(since=since, until=until)
    totals = fleet.range_totals(since, until, host=host)
    # One row more than shown says whether there were more, without counting them all.
    latest = list(fleet.logins(first, last, host=host.name)[: HOST_LOGINS_SHOWN + 1])
    context = range_context(
        since,
        until,
        error,
        section="hosts",
        host=host,
        day=day,
        totals=totals,
        cards=[(count.label, totals[count.name]) for count in COUNTS if count.name in totals],
        sources=fleet.add_user_names(first, last, fleet.top_sources(host, first, last), host=host),
        users=fleet.top_users(host, first, last),
        logins=fleet.add_after_failures(latest[:HOST_LOGINS_SHOWN]),
        more_logins=len(latest) > HOST_LOGINS_SHOWN,
        logins_shown=HOST_LOGINS_SHOWN,
        after_failures_meaning=fleet.AFTER_FAILURES_MEANING,
        all_logins=reverse("dashboard-logins") + query_string(since=first, until=last, host=host.name),
        outcomes_url=reverse("dashboard-data-host-outcomes", args=[host.name]) + data,
        day_link=request.path + query_string(since=since, until=until, day="__label__"),
        users_url=reverse("dashboard-data-host-users", args=[host.name])
        + query_string(since=since, until=until, day=day),
    )
    return page(request, "dashboard/host.html", context, error)


@dashboard_view
def day_view(request: HttpRequest, day: str) -> HttpResponse:
    parsed = parse_day(day)
    if parsed is None:
        raise Http404("Not a date like 2026-03-01.")
    # The page's "go to day" form (works without JavaScript).
    chosen = parse_day(request.GET.get("day", ""))
    if chosen is not None and chosen != parsed:
        return redirect("dashboard-day", chosen.isoformat())
    context = {
        "section": "day",
        "day": parsed,
        "busiest": queries.BUSIEST_OF_DAY,
        "hosts_url": reverse("dashboard-data-day-hosts", args=[parsed.isoformat()]),
        "previous": parsed - timedelta(days=1) if parsed > date.min else None,
        "next": parsed + timedelta(days=1) if parsed < date.max else None,
        "counts": COUNTS,
        **fleet.fleet_day(parsed),
    }
    # Each row's counts in the contract's order, for the table's columns; the totals' distinct
    # sources say when they are only a lower bound.
    for row in context["hosts"]:
        row["counts"] = [row[name] for name in COUNT_NAMES]
    totals = context["totals"]
    context["total_counts"] = [
        (totals[name], name == "unique_sources" and totals["unique_sources_lower_bound"])
        for name in COUNT_NAMES
    ]
    return page(request, "dashboard/day.html", context)


@dashboard_view
def attackers(request: HttpRequest) -> HttpResponse:
    since, until, error = valid_range(RangeForm(request.GET))
    try:
        number = max(1, min(int(request.GET.get("page", "1")), 1_000_000))
    except ValueError:
        number = 1
    offset = (number - 1) * ATTACKERS_PER_PAGE
    # One row more than a page says whether there is a next page, without counting them all.
    rows = fleet.ranked_addresses(since, until, offset, offset + ATTACKERS_PER_PAGE + 1)
    rows = fleet.add_seen(since, until, rows[:ATTACKERS_PER_PAGE]) + rows[ATTACKERS_PER_PAGE:]
    data = query_string(since=since, until=until)
    context = range_context(
        since,
        until,
        error,
        section="attackers",
        rows=rows[:ATTACKERS_PER_PAGE],
        first_rank=offset + 1,
        per_page=ATTACKERS_PER_PAGE,
        previous_page=query_string(since=since, until=until, page=number - 1) if number > 1 else "",
        next_page=query_string(since=since, until=until, page=number + 1)
        if len(rows) > ATTACKERS_PER_PAGE
        else "",
        per_day_url=reverse("dashboard-data-attackers") + data,
    )
    return page(request, "dashboard/attackers.html", context, error)


@dashboard_view
def logins(request: HttpRequest) -> HttpResponse:
    """Every login of a day (default today) or range across the fleet, newest first, filtered by
    user, address, host and method; a page at a time, each marked when it came after failures."""
    form = LoginFilterForm(request.GET)
    today = timezone.localdate()
    if form.is_valid():
        params, error = form.cleaned_data, ""
    else:
        # A filter that cannot be applied shows nothing rather than every login unfiltered.
        params, error = {"since": today, "until": today}, form.message()
    since, until = params["since"], params["until"]
    rows = fleet.logins(
        since, until, **{name: params.get(name, "") for name in ("host", "user", "ip", "method")}
    )
    shown = Paginator(rows if not error else rows.none(), LOGINS_PER_PAGE).get_page(params.get("page"))
    context = {
        "section": "logins",
        "form": form,
        "since": since,
        "until": until,
        "filter_error": error,
        "page_obj": shown,
        "rows": fleet.add_after_failures(list(shown.object_list)),
        **page_links(request, shown),
        "today": query_string(since=today, until=today),
        "after_failures_meaning": fleet.AFTER_FAILURES_MEANING,
    }
    return page(request, "dashboard/logins.html", context, error)


@dashboard_view
def alerts(request: HttpRequest) -> HttpResponse:
    form = AlertFilterForm(request.GET)
    error = "" if form.is_valid() else form.message()
    params = form.cleaned_data if not error else {}
    rows = Alert.objects.select_related("rule", "acknowledged_by").prefetch_related("deliveries__channel")
    if params.get("alert"):
        rows = rows.filter(pk=params["alert"])
    else:
        rows = rows.filter(state="open") if not request.GET else rows
        rows = rows.filtered(params.get("state", ""), params.get("rule", ""), params.get("host", ""))
    number = params.get("page") or 1
    offset = (number - 1) * ALERTS_PER_PAGE
    # One row more than a page says whether there is a next page, without counting them all.
    rows = list(rows[offset : offset + ALERTS_PER_PAGE + 1])
    keep = {k: v for k, v in request.GET.items() if k != "page"}
    context = {
        "section": "alerts",
        "form": form,
        "filter_error": error,
        "rows": rows[:ALERTS_PER_PAGE],
        "can_acknowledge": request.user.has_perm("alerting.acknowledge_alert"),
        "previous_page": "?" + urlencode({**keep, "page": number - 1}) if number > 1 else "",
        "next_page": "?" + urlencode({**keep, "page": number + 1}) if len(rows) > ALERTS_PER_PAGE else "",
        "this_page": request.get_full_path(),
    }
    return page(request, "dashboard/alerts.html", context, error)


@login_required
@require_POST
def acknowledge_alert(request: HttpRequest, pk: int) -> HttpResponse:
    """The alerts page's Acknowledge button (a form POST: Django's CSRF check applies)."""
    if not request.user.has_perm("alerting.acknowledge_alert"):
        return HttpResponseForbidden("Acknowledging needs the permission 'Can acknowledge alerts'.")
    get_object_or_404(Alert, pk=pk).acknowledge(request.user)
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("dashboard-alerts")
    return redirect(back)


# --- Chart data ---------------------------------------------------------------------------------


def json_range(request: HttpRequest, form_class=RangeForm) -> tuple[dict | None, JsonResponse | None]:
    form = form_class(request.GET)
    if not form.is_valid():
        return None, json_error(form.message(), 400)
    return form.cleaned_data, None


def chart(labels: list, datasets: list[dict]) -> JsonResponse:
    """What every chart's <canvas data-url> reads: Chart.js's {labels, datasets} (days as ISO dates)."""
    return JsonResponse(
        {"labels": [x.isoformat() if isinstance(x, date) else x for x in labels], "datasets": datasets}
    )


def line(field: str, values: list[int], **options) -> dict:
    colour = OUTCOME_COLOURS[field]
    return {
        "label": COUNT_BY_NAME[field].label,
        "data": values,
        "borderColor": colour,
        "backgroundColor": colour,
        **options,
    }


@dashboard_view
def data_connections(request: HttpRequest) -> JsonResponse:
    """Connections per day, stacked: the busiest hosts by name (each with a link to its page),
    then one dataset for the other hosts when they had any."""
    params, error = json_range(request)
    if error:
        return error
    result = queries.connections_by_host(params["since"], params["until"])
    links = link_query(params["since"], params["until"])
    datasets = [
        {
            "label": name,
            "data": values,
            "backgroundColor": PALETTE[i % len(PALETTE)],
            "link": reverse("dashboard-host", args=[name]) + links,
        }
        for i, (name, values) in enumerate(result["hosts"])
    ]
    if any(result["others"]):
        datasets.append({"label": queries.OTHERS, "data": result["others"], "backgroundColor": OTHERS_COLOUR})
    return chart(result["days"], datasets)


@dashboard_view
def data_outcomes(request: HttpRequest) -> JsonResponse:
    """Accepted logins against failed connections and failed password attempts, per day."""
    params, error = json_range(request)
    if error:
        return error
    result = queries.outcomes_per_day(params["since"], params["until"])
    datasets = [line(field, result[field]) for field in ("accepted", "failed_sessions", "failed_attempts")]
    return chart(result["days"], datasets)


@dashboard_view
def data_host_outcomes(request: HttpRequest, name: str) -> JsonResponse:
    """The host's connections per day by outcome (the outcomes overlap: not stacked)."""
    host = find_host(name)
    if host is None:
        return json_error("No host has this name.", 404)
    params, error = json_range(request)
    if error:
        return error
    result = queries.host_series(host, params["since"], params["until"])
    datasets = [line(field, result[field]) for field in CONNECTION_COUNTS]
    # Attempts outnumber connections: off until the legend turns it on.
    datasets.append(line("failed_attempts", result["failed_attempts"], hidden=True))
    return chart(result["days"], datasets)


@dashboard_view
def data_host_users(request: HttpRequest, name: str) -> JsonResponse:
    """The host's busiest user names (attacker text: drawn on the canvas, never as markup)."""
    host = find_host(name)
    if host is None:
        return json_error("No host has this name.", 404)
    params, error = json_range(request, HostRangeForm)
    if error:
        return error
    day = params["day"]
    rows = fleet.top_users(host, day or params["since"], day or params["until"])
    datasets = [line(field, [row[field] for row in rows]) for field in ADDRESS_COUNT_NAMES]
    # Drawn on a canvas, where no CSS isolates them: invisible characters are written out.
    return chart([visible(row["user"]) for row in rows], datasets)


@dashboard_view
def data_day_hosts(request: HttpRequest, day: str) -> JsonResponse:
    """The day's busiest hosts, each bar its connections split by how they ended (stacked: the
    three add up to the host's connections)."""
    parsed = parse_day(day)
    if parsed is None:
        return json_error("Not a date like 2026-03-01.", 404)
    rows = queries.busiest_on(parsed)
    rest = [max(row["sessions"] - row["accepted"] - row["failed_sessions"], 0) for row in rows]
    datasets = [
        line("accepted", [row["accepted"] for row in rows]),
        line("failed_sessions", [row["failed_sessions"] for row in rows]),
        {"label": "No password tried", "data": rest, "borderColor": "#bab0ac", "backgroundColor": "#bab0ac"},
    ]
    return chart([row["host__name"] for row in rows], datasets)


@dashboard_view
def data_attackers(request: HttpRequest) -> JsonResponse:
    """Distinct source addresses per day over the fleet: all, failing, and logging in."""
    params, error = json_range(request)
    if error:
        return error
    result = queries.attackers_per_day(params["since"], params["until"])
    datasets = [
        {"label": "Addresses", "data": result["addresses"], "borderColor": "#4e79a7", "backgroundColor": "#4e79a7"},
        {"label": "With failed attempts", "data": result["failing"], "borderColor": "#e15759", "backgroundColor": "#e15759"},
        {"label": "Logged in", "data": result["accepting"], "borderColor": "#59a14f", "backgroundColor": "#59a14f"},
    ]  # fmt: skip
    return chart(result["days"], datasets)
