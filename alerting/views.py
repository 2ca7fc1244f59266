"""The alerts API, under /api/v1/ with the central API's authentication (inventory_app.views)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.response import Response
from rest_framework.views import APIView

from collector.api import ERROR
from inventory_app.views import LIST_ERRORS, CentralPagination, CentralView

from .models import Alert
from .serializers import AlertListParamSerializer, AlertSerializer

TAGS = ["alerts"]
ID_PARAM = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The alert's id.")


def alerts_with_deliveries():
    return Alert.objects.select_related("rule", "acknowledged_by").prefetch_related("deliveries__channel")


class AlertListView(CentralView, generics.ListAPIView):
    """Alerts, newest activity first; filter by state, rule kind and host."""

    serializer_class = AlertSerializer
    pagination_class = CentralPagination

    def get_queryset(self):
        params = AlertListParamSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return alerts_with_deliveries().filtered(**params.validated_data)

    @extend_schema(
        tags=TAGS,
        operation_id="alerts_list",
        parameters=[AlertListParamSerializer],
        responses={200: AlertSerializer(many=True), **LIST_ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class AlertAckView(CentralView, APIView):
    """Acknowledge an alert (needs the permission "Can acknowledge alerts"); acknowledging one
    already acknowledged changes nothing."""

    @extend_schema(
        tags=TAGS,
        operation_id="alert_ack",
        parameters=[ID_PARAM],
        request=None,
        responses={200: AlertSerializer, 400: ERROR, 401: ERROR, 403: ERROR, 404: ERROR},
    )
    def post(self, request, pk: int):
        if not request.user.has_perm("alerting.acknowledge_alert"):
            raise PermissionDenied("Acknowledging needs the permission 'Can acknowledge alerts'.")
        alert = alerts_with_deliveries().filter(pk=pk).first()
        if alert is None:
            raise NotFound(f"No alert has the id {pk}.")
        alert.acknowledge(request.user)
        return Response(AlertSerializer(alerts_with_deliveries().get(pk=pk)).data)
