"""The one webhook view: verify, store durably, acknowledge; a worker takes the stored event from the inbox."""
from __future__ import annotations

from django.conf import settings
from django.db import transaction
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services


class RawBodyParser(BaseParser):
    """Signatures are over the exact bytes: nothing parses the body before the verifier."""

    media_type = "*/*"

    def parse(self, stream, media_type=None, parser_context=None):
        return stream.read()


class JSONOnly(BaseContentNegotiation):
    """Vendors read our status code, not our body: always JSON, without parsing their Accept header."""

    def select_parser(self, request, parsers):
        return parsers[0]

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


@method_decorator(csrf_exempt, name="dispatch")
@method_decorator(transaction.non_atomic_requests, name="dispatch")
class WebhookView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes = [RawBodyParser]
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JSONOnly
    # No OPTIONS description of the endpoint: POST is all it takes.
    metadata_class = None

    def post(self, request, kind: str, integration_id):
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        # ASCII digits only, and few of them: int() of "٣" or of 5,000 digits is no length (or a ValueError).
        if not (declared.isascii() and declared.isdigit()) or len(declared) > 20:
            return Response({"detail": "Content-Length is not a number of bytes."}, status=400)
        if int(declared) > limit:
            return self._too_large(request, kind, integration_id, limit)
        body = request._request.body
        if len(body) > limit:
            return self._too_large(request, kind, integration_id, limit)
        outcome = services.webhook_receive(
            kind=kind, integration_id=integration_id, headers=dict(request.headers), body=body,
            url=request.build_absolute_uri(), remote_addr=request.META.get("REMOTE_ADDR", ""),
        )
        return Response(outcome.body, status=outcome.status_code)

    def _too_large(self, request, kind: str, integration_id, limit: int) -> Response:
        outcome = services.webhook_oversize_refuse(kind=kind, integration_id=integration_id, limit=limit,
                                                   remote_addr=request.META.get("REMOTE_ADDR", ""))
        return Response(outcome.body, status=outcome.status_code)
