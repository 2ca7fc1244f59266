"""What the agent API and the central API share: the day in a path, and how errors are answered
and documented."""

from __future__ import annotations

import logging
from datetime import date

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from .serializers import DayParamSerializer

logger = logging.getLogger(__name__)

ERROR = OpenApiResponse(description='JSON error: {"detail": message} or field errors.')
DAY_PARAM = OpenApiParameter("day", OpenApiTypes.DATE, OpenApiParameter.PATH, description="YYYY-MM-DD")


def api_exception_handler(exc, context):
    """DRF's errors as usual; anything unexpected becomes a JSON 500 without details."""
    response = exception_handler(exc, context)
    if response is None:
        logger.exception("Unexpected error in %s", context.get("view"))
        response = Response({"detail": "Internal error."}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return response


def valid_day(value: str) -> date:
    params = DayParamSerializer(data={"date": value})
    if not params.is_valid():
        raise ValidationError({"date": f"{value[:40]!r} is not a date like 2026-03-01."})
    return params.validated_data["date"]
