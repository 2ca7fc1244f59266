"""The central API: the fleet's stored counts as JSON, for logged-in users and API tokens.
Thin views over fleet.py (and polling.refresh_day for a live refresh)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from collector.api import DAY_PARAM, ERROR, valid_day
from collector.contract import COUNT_NAMES
from collector.pagination import CheckedPageSize

from . import fleet
from .models import Host, HostDay, host_name_validator
from .polling import refresh_day
from .serializers import (
    FleetDayParamSerializer,
    FleetDaySerializer,
    FleetLoginParamSerializer,
    FleetLoginSerializer,
    FleetRangeParamSerializer,
    FleetRangeSerializer,
    FleetSourceParamSerializer,
    FleetSourceSerializer,
    HostDaySerializer,
    HostSerializer,
)

TAGS = ["central"]
ERRORS = {400: ERROR, 401: ERROR}
# A page past the last one is DRF's 404 ("Invalid page.").
LIST_ERRORS = {**ERRORS, 404: ERROR}
NAME_PARAM = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, description="The host's name.")


class CentralView:
    """Users of the central server: an API token (`Authorization: Token <key>`) or a session.
    Never the agent's bearer token: that one opens a single host's agent, not the fleet."""

    # TokenAuthentication first: its WWW-Authenticate header makes an anonymous caller a 401.
    authentication_classes = [TokenAuthentication, SessionAuthentication]
    permission_classes = [IsAuthenticated]


class CentralPagination(CheckedPageSize, PageNumberPagination):
    page_size = 100


class HostListView(CentralView, generics.ListAPIView):
    """Every host by name: its polling state, last success and error, and today's stored counts."""

    serializer_class = HostSerializer
    pagination_class = CentralPagination

    def get_queryset(self):
        return fleet.hosts_with_day(timezone.localdate())

    @extend_schema(
        tags=TAGS, operation_id="hosts_list", responses={200: HostSerializer(many=True), **LIST_ERRORS}
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class HostDayView(CentralView, APIView):
    """One host's stored day, in the agent's day object shape, with when it was fetched and
    whether that is stale."""

    @extend_schema(
        tags=TAGS,
        operation_id="host_logins_day",
        parameters=[NAME_PARAM, DAY_PARAM],
        responses={200: HostDaySerializer, **ERRORS, 404: ERROR},
    )
    def get(self, request, name: str, day: str):
        day = valid_day(day)
        # A name no host can have is not looked up (PostgreSQL refuses some, e.g. NUL bytes).
        host = Host.objects.filter(name=name).first() if host_name_validator.regex.match(name) else None
        if host is None:
            raise NotFound(f"No host is named {name[:100]!r}.")
        interval = settings.ALPHA_POLL_INTERVAL
        # Days up to polled_through were complete when polled: they never go stale.
        final = host.polled_through is not None and day <= host.polled_through
        stored = HostDay.objects.filter(host=host, day=day).first()
        if stored is not None:
            stale = not final and stored.is_stale(interval)
        else:
            # Nothing stored: zeros (what the agent answers for a day without connections), as
            # fresh as the host's last successful poll.
            never = host.last_success_at is None
            stale = never or (not final and HostDay(polled_at=host.last_success_at).is_stale(interval))
            stored = HostDay(host=host, day=day, polled_at=None)
        detail = {f: getattr(stored, f) for f in COUNT_NAMES}
        detail.update(
            host=host.name,
            date=day,
            top_sources=fleet.top_sources(host, day, day),
            top_users=stored.top_users,
            polled_at=stored.polled_at,
            stale=stale,
        )
        return Response(HostDaySerializer(detail).data)


class FleetDayView(CentralView, APIView):
    """One day across the fleet: a row per host and the totals; ?refresh=1 fetches it live first."""

    @extend_schema(
        tags=TAGS,
        operation_id="fleet_logins_day",
        parameters=[DAY_PARAM, FleetDayParamSerializer],
        responses={200: FleetDaySerializer, **ERRORS, 403: ERROR},
    )
    def get(self, request, day: str):
        day = valid_day(day)
        params = FleetDayParamSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        refresh = params.validated_data["refresh"]
        if refresh:
            if not request.user.has_perm("inventory_app.refresh_day"):
                raise PermissionDenied(
                    "Refreshing needs the permission 'Can fetch a day live from every agent'."
                )
            today = timezone.localdate()
            first = today - timedelta(days=settings.ALPHA_BACKFILL_DAYS - 1)
            if not first <= day <= today + timedelta(days=1):
                # Agents keep recent days; refreshing others would only store zeros.
                raise ValidationError({"refresh": f"Only days from {first} to tomorrow can be refreshed."})
        errors = refresh_day(day) if refresh else {}
        data = fleet.fleet_day(day)
        for row in data["hosts"]:
            row["refresh_error"] = errors.get(row.pop("pk"))
        return Response(FleetDaySerializer(data).data)


class FleetRangeView(CentralView, APIView):
    """The fleet's totals per day over a range (default the last 30 days, at most 400)."""

    @extend_schema(
        tags=TAGS,
        operation_id="fleet_logins_range",
        parameters=[FleetRangeParamSerializer],
        responses={200: FleetRangeSerializer, **ERRORS},
    )
    def get(self, request):
        params = FleetRangeParamSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        since, until = params.validated_data["since"], params.validated_data["until"]
        days = fleet.fleet_days(since, until)
        return Response(FleetRangeSerializer({"since": since, "until": until, "days": days}).data)


class FleetSourceListView(CentralView, generics.ListAPIView):
    """Source addresses seen on several hosts on one day, busiest first; flagged when one failed
    a password and also logged in (fleet.FLAGGED)."""

    serializer_class = FleetSourceSerializer
    pagination_class = CentralPagination

    def get_queryset(self):
        params = FleetSourceParamSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        self.day = valid_day(self.kwargs["day"])
        return fleet.shared_sources(self.day, params.validated_data["min_hosts"])

    def paginate_queryset(self, queryset):
        # Host names for this page's addresses only: one more query, however many pages.
        return fleet.add_host_names(self.day, super().paginate_queryset(queryset))

    @extend_schema(
        tags=TAGS,
        operation_id="fleet_sources",
        parameters=[DAY_PARAM, FleetSourceParamSerializer],
        responses={200: FleetSourceSerializer(many=True), **LIST_ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class FleetLoginListView(CentralView, generics.ListAPIView):
    """Every login (accepted connection) of a day (default today) or range across the fleet,
    newest first; filter by host, user, address and method (exact). Each says whether it came
    after failures (fleet.add_after_failures), as the dashboard's logins page marks it."""

    serializer_class = FleetLoginSerializer
    pagination_class = CentralPagination

    def get_queryset(self):
        params = FleetLoginParamSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return fleet.logins(**params.validated_data)

    def paginate_queryset(self, queryset):
        # The failures of this page's addresses only: one more query, however many pages.
        return fleet.add_after_failures(super().paginate_queryset(queryset))

    @extend_schema(
        tags=TAGS,
        operation_id="fleet_accepted_logins",
        parameters=[FleetLoginParamSerializer],
        responses={200: FleetLoginSerializer(many=True), **LIST_ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
