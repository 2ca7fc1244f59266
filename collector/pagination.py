"""Paging of the agent API's source lists (and the page-size rule the central API shares)."""

from __future__ import annotations

from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class CheckedPageSize:
    """DRF falls back to the default page size when page_size is not a number (`page_size=null`);
    the schema says an integer, so anything else is a 400. Larger than the maximum is capped."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is not None and not (value.isascii() and value.isdigit() and int(value) > 0):
            raise ValidationError(
                {"page_size": f"Give a whole number from 1 to {self.max_page_size}, or leave it out."}
            )
        return super().get_page_size(request)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Rows per page, 1 to {self.max_page_size} (default {self.page_size}; more is capped, "
                    "anything but a whole number is a 400)."
                )
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters


class SourcePagination(CheckedPageSize, CursorPagination):
    # Ordered by address: stable while today's counts still grow, so no page skips or repeats.
    ordering = "ip"
    page_size = 500

    def decode_cursor(self, request):
        # A cursor the caller mangled is bad input (400), not a missing page (DRF says 404).
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise ValidationError({"cursor": "Invalid cursor: use the 'next' link as given."}) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.cursor_query_param:
                parameter["description"] = (
                    "The cursor of a `next` or `previous` link, as given (400 otherwise)."
                )
        return parameters


class LoginPagination(SourcePagination):
    # In time order; a login's row never changes its time, so pages stay stable as the day grows.
    ordering = ("at", "id")
