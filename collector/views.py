"""The agent API: this host's counts as JSON behind a bearer token. Thin views over counts.py."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from rest_framework import generics, renderers
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from .api import DAY_PARAM, ERROR, valid_day
from .authentication import BearerTokenAuthentication, HasAgentTokenOrIsStaff
from .counts import day_detail, health, range_rows
from .metrics import AgentCollector
from .models import AcceptedLogin, DailySource
from .pagination import LoginPagination, SourcePagination
from .serializers import (
    AcceptedLoginSerializer,
    DayDetailSerializer,
    DayRangeSerializer,
    HealthSerializer,
    RangeParamSerializer,
    SourceSerializer,
)

ERRORS = {400: ERROR, 401: ERROR, 403: ERROR, 503: ERROR}


# Who may use the agent API: the agent's token (or, on a central server, a logged-in staff user
# browsing it), declared here since the project-wide defaults let nobody in. (A comment, not a
# docstring: the schema would take it for every endpoint's description.)
class AgentView:
    authentication_classes = [
        BearerTokenAuthentication,
        *([SessionAuthentication] if settings.CENTRAL else []),
    ]
    permission_classes = [HasAgentTokenOrIsStaff]


class DayView(AgentView, APIView):
    @extend_schema(
        operation_id="logins_day", parameters=[DAY_PARAM], responses={200: DayDetailSerializer, **ERRORS}
    )
    def get(self, request, day: str):
        # day_detail already has the documented shape: serializing it again cost a third of
        # this hot request's CPU (bench/bench_api.py).
        return Response(day_detail(valid_day(day)))


class DayRangeView(AgentView, APIView):
    @extend_schema(
        operation_id="logins_range",
        parameters=[RangeParamSerializer],
        responses={200: DayRangeSerializer, **ERRORS},
    )
    def get(self, request):
        params = RangeParamSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        days = range_rows(params.validated_data["since"], params.validated_data["until"])
        return Response(DayRangeSerializer({"host": settings.ALPHA_HOST_NAME, "days": days}).data)


class SourceListView(AgentView, generics.ListAPIView):
    serializer_class = SourceSerializer
    pagination_class = SourcePagination

    def get_queryset(self):
        return DailySource.objects.filter(day=valid_day(self.kwargs["day"]))

    @extend_schema(parameters=[DAY_PARAM], responses={200: SourceSerializer(many=True), **ERRORS})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AcceptedLoginListView(AgentView, generics.ListAPIView):
    serializer_class = AcceptedLoginSerializer
    pagination_class = LoginPagination

    def get_queryset(self):
        return AcceptedLogin.objects.filter(day=valid_day(self.kwargs["day"]))

    @extend_schema(
        operation_id="logins_accepted",
        parameters=[DAY_PARAM],
        responses={200: AcceptedLoginSerializer(many=True), **ERRORS},
        description="Every accepted connection (login) that began that day, in time order.",
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class HealthView(AgentView, APIView):
    @extend_schema(responses={200: HealthSerializer, **ERRORS})
    def get(self, request):
        return Response(HealthSerializer(health()).data)


class PrometheusRenderer(renderers.BaseRenderer):
    media_type = "text/plain"
    format = "txt"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class MetricsView(AgentView, APIView):
    renderer_classes = [PrometheusRenderer]

    def handle_exception(self, exc):
        # Errors are JSON like everywhere else in the API, not Prometheus text.
        response = super().handle_exception(exc)
        self.request.accepted_renderer = renderers.JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return response

    @extend_schema(responses={(200, "text/plain"): OpenApiTypes.STR, **ERRORS})
    def get(self, request):
        registry = CollectorRegistry(auto_describe=False)
        registry.register(AgentCollector())
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
