"""The one webhook view: verify, store durably, acknowledge, and let a worker process it after commit."""
from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from rest_framework import status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services

log = logging.getLogger(__name__)


class RawBodyParser(BaseParser):
    """Signatures are over the exact bytes: nothing parses the body before the verifier."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class WebhookView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    parser_classes = [RawBodyParser]

    def post(self, request, kind: str, integration_id):
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        if not declared.isdigit() or int(declared) > limit:
            return Response({"detail": f"Body larger than {limit} bytes."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        body = request._request.body
        if len(body) > limit:
            return Response({"detail": f"Body larger than {limit} bytes."}, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        outcome = services.webhook_receive(
            kind=kind, integration_id=integration_id, headers=dict(request.headers), body=body,
            url=request.build_absolute_uri(), remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
        return Response(outcome.body, status=outcome.status_code)
