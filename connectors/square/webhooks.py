"""Square webhooks: the x-square-hmacsha256-signature check (through the official helper), the event, what it touches.

Square signs base64(HMAC-SHA256(signature key, notification URL + raw body)) (docs/square.md §1, §4): the URL is the
subscription's `notification_url` byte for byte, so we verify over the URL configured for the integration
(settings `webhook_notification_url`), never the one the request arrived at behind a proxy. There is no timestamp,
hence no replay window: deliveries are deduplicated on `event_id`. Several keys may be configured while one is
rotated (credentials `webhook_signature_keys`, and/or `webhook_signature_key`). An event is a trigger only: its
object is re-read from the API before anything is written ("Webhooks can be sent more than once", and no order is
promised).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal

from square.utils.webhooks_helper import verify_signature

from connectors.models import Connection, InboundEvent, Integration
from connectors.webhooks import ParsedEvent, Refusal, Verdict, WebhookVerifier, webhook_document

SIGNATURE_HEADER = "x-square-hmacsha256-signature"

# Event type → the stream whose object `data.id` names (spec *Event schemas; docs/square.md §4).
PAYMENT_EVENTS = frozenset({"payment.created", "payment.updated"})
REFUND_EVENTS = frozenset({"refund.created", "refund.updated"})
INVOICE_EVENTS = frozenset({"invoice.created", "invoice.published", "invoice.payment_made", "invoice.refunded",
                            "invoice.canceled", "invoice.updated", "invoice.scheduled_charge_failed",
                            "invoice.deleted"})
VENDOR_EVENTS = frozenset({"vendor.created", "vendor.updated"})
REVOKED = "oauth.authorization.revoked"


def square_signature_keys(connection: Connection) -> list[str]:
    """The subscription signature keys to accept: credentials `webhook_signature_keys` (a list, newest first) and
    `webhook_signature_key`."""
    credentials = connection.credentials or {}
    keys = credentials.get("webhook_signature_keys") or []
    if isinstance(keys, str):
        keys = [keys]
    if credentials.get("webhook_signature_key"):
        keys = [*keys, credentials["webhook_signature_key"]]
    return [str(key) for key in keys if str(key).strip()]


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((str(value).strip() for key, value in headers.items() if key.lower() == name), "")


def square_signature_problem(*, body: bytes, header: str, keys: list[str], notification_url: str | None) -> str | None:
    """None when `header` is Square's signature of notification URL + body under any of `keys`; else why not."""
    if not notification_url:
        return "no notification URL set (setting webhook_notification_url): every delivery is refused"
    if not keys:
        return "no webhook signature key on the Square connection (credentials webhook_signature_key)"
    if not header:
        return f"no {SIGNATURE_HEADER} header"
    if not body:
        return "empty body"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    for key in keys:
        # The helper: base64(HMAC-SHA256(key, url + body)) compared in constant time (square/utils/webhooks_helper).
        if verify_signature(request_body=text, signature_header=header, signature_key=key,
                            notification_url=notification_url):
            return None
    return f"{SIGNATURE_HEADER} matches none of the {len(keys)} configured key(s) over the notification URL"


def square_event_objects(document: Mapping) -> list[tuple[str, str]]:
    """(stream, Square id) of the object an event is about, to be re-read; empty when no stream cares."""
    event_type = str(document.get("type") or "")
    data = document.get("data") if isinstance(document.get("data"), Mapping) else {}
    object_id = data.get("id")
    if not isinstance(object_id, str) or not object_id:
        return []
    if event_type in PAYMENT_EVENTS:
        return [("payments", object_id)]
    if event_type in REFUND_EVENTS:
        return [("refunds", object_id)]
    if event_type in INVOICE_EVENTS:
        return [("invoices", object_id)]
    if event_type in VENDOR_EVENTS:
        return [("vendors", object_id)]
    return []


class SquareWebhookVerifier(WebhookVerifier):
    """x-square-hmacsha256-signature under any configured key, over the integration's notification URL."""

    def verify(self, *, integration: Integration, headers: Mapping[str, str], body: bytes, url: str) -> Verdict:
        # `url` (the request's) is deliberately unused: behind a proxy it is not the URL Square signed.
        notification_url = (integration.settings or {}).get("webhook_notification_url")
        keys = square_signature_keys(integration.partner_connection)
        header = _header(headers, SIGNATURE_HEADER)
        problem = square_signature_problem(body=body, header=header, keys=keys, notification_url=notification_url)
        if problem is None:
            return Verdict.genuine()
        refusal = (Refusal.NO_SECRET if not keys or not notification_url else Refusal.UNSIGNED if not header
                   else Refusal.MALFORMED if not body or problem == "body is not UTF-8" else Refusal.BAD_SIGNATURE)
        return Verdict.refused(problem, refusal)

    def parse(self, *, headers: Mapping[str, str], body: bytes) -> list[ParsedEvent]:
        document = webhook_document(body)
        if not isinstance(document, dict):
            raise ValueError("body is not a JSON object")
        for field in ("event_id", "type"):
            if not isinstance(document.get(field), str) or not document[field]:
                raise ValueError(f"field {field} is missing")
        if "data" in document and not isinstance(document["data"], dict):
            raise ValueError("field data is not an object")
        return [ParsedEvent(event_id=document["event_id"], event_type=document["type"], body=body.decode("utf-8"))]

    def objects_touched(self, event: InboundEvent) -> list[tuple[str, str]]:
        return square_event_objects(json.loads(event.body, parse_float=Decimal))

    def event_apply(self, event: InboundEvent) -> bool:
        """oauth.authorization.revoked: the seller (or Square) revoked our access; mark the connection."""
        if event.event_type != REVOKED:
            return False
        from .auth import REAUTHORIZE, square_authorization_mark

        document = json.loads(event.body)
        data = document.get("data") if isinstance(document.get("data"), dict) else {}
        obj = data.get("object") if isinstance(data.get("object"), dict) else {}
        revocation = obj.get("revocation") if isinstance(obj.get("revocation"), dict) else {}
        who = str(revocation.get("revoker_type") or "someone").lower()
        when = str(revocation.get("revoked_at") or document.get("created_at") or "")
        problem = f"access was revoked in Square (by the {who}{f' at {when}' if when else ''}): {REAUTHORIZE}"
        square_authorization_mark(event.integration.partner_connection, problem)
        return True


__all__ = ["SquareWebhookVerifier", "square_event_objects", "square_signature_keys", "square_signature_problem"]
