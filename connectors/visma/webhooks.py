"""Visma.net ERP webhooks: the dispatcher's HMAC signature, the notification array, and what a notification refreshes.

A verified notification about an account, customer, supplier, dimension or segment is a trigger, not the
truth: `visma_notification_apply` pulls that kind of reference data again (a delta read) into the mirror.
No stream reads Visma documents yet, so `objects_touched` names no records.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from decimal import Decimal

from connectors.models import Connection, InboundEvent, Integration
from connectors.webhooks import ParsedEvent, Refusal, Verdict, WebhookVerifier, webhook_document

# Notifications can be batched (reference: "an array ... can be batched"); a delivery larger than this is not a batch.
MAX_NOTIFICATIONS = 1000

# The Visma Webhook Dispatcher's header (documented for Business NXT; the ERP docs only say "the header").
SIGNATURE_HEADER = "x-vwd-signature-v1"

# Event names seen: "customer_changed" (VNI era), "Account Changed" (Developer Portal catalogue).
_REFERENCE_EVENT = re.compile(
    r"^(account|customer|supplier|dimension|segment)"
    r"(changed|created|updated|deleted|identitychanged|valuechanged|actiontriggered)$"
)
_REFERENCE_KIND = {
    "account": "accounts", "customer": "customers", "supplier": "suppliers",
    "dimension": "dimension_values", "segment": "dimension_values",
}


def visma_webhook_secrets(connection: Connection) -> list[str]:
    """The signature keys to accept: credentials "webhook_secrets" (a list, newest first, for rotation) or
    "webhook_secret"."""
    credentials = connection.credentials or {}
    secrets = credentials.get("webhook_secrets") or []
    if isinstance(secrets, str):
        secrets = [secrets]
    if credentials.get("webhook_secret"):
        secrets = [*secrets, credentials["webhook_secret"]]
    return [str(secret) for secret in secrets if secret]


def _header(headers: Mapping[str, str], name: str) -> str:
    wanted = name.lower()
    return next((str(value) for key, value in headers.items() if key.lower() == wanted), "")


def reference_kind_for_event(event_name: str) -> str | None:
    """The mirror kind a notification is about ("Customer Changed" → customers), or None."""
    match = _REFERENCE_EVENT.match(re.sub(r"[^a-z]", "", event_name.lower()))
    return _REFERENCE_KIND[match.group(1)] if match else None


class VismaWebhookVerifier(WebhookVerifier):
    """HMAC-SHA256 over the raw body with the subscription's signature key, base64, in x-vwd-signature-v1."""

    def verify(self, *, integration: Integration, headers: Mapping[str, str], body: bytes, url: str) -> Verdict:
        secrets = visma_webhook_secrets(integration.visma_connection)
        if not secrets:
            return Verdict.refused("no webhook secret on the Visma connection (credentials webhook_secrets)",
                                   Refusal.NO_SECRET)
        signature = _header(headers, SIGNATURE_HEADER).strip()
        if not signature:
            return Verdict.refused(f"no {SIGNATURE_HEADER} header", Refusal.UNSIGNED)
        given = signature.encode("utf-8", "replace")
        for secret in secrets:
            expected = base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest())
            if hmac.compare_digest(expected, given):
                return Verdict.genuine()
        return Verdict.refused(f"{SIGNATURE_HEADER} matches none of the {len(secrets)} configured secret(s)")

    def parse(self, *, headers: Mapping[str, str], body: bytes) -> list[ParsedEvent]:
        """One event per notification of the delivery (a JSON array; a single object is taken as one)."""
        document = webhook_document(body)
        notifications = document if isinstance(document, list) else [document]
        if len(notifications) > MAX_NOTIFICATIONS:
            raise ValueError(f"{len(notifications)} notifications in one delivery; at most {MAX_NOTIFICATIONS} taken")
        events = []
        for position, notification in enumerate(notifications):
            if not isinstance(notification, dict) or not notification.get("notificationId"):
                raise ValueError(f"notification {position} has no notificationId")
            event_name = notification.get("event")
            if event_name is not None and not isinstance(event_name, str):
                raise ValueError(f"notification {position}: event is not a string")
            try:
                events.append(ParsedEvent(
                    event_id=notification["notificationId"], event_type=event_name or "",
                    body=json.dumps(notification, sort_keys=True),
                ))
            except ValueError as exc:
                raise ValueError(f"notification {position}: {exc}") from None
        return events

    def objects_touched(self, event: InboundEvent) -> list[tuple[str, str]]:
        # No Visma stream yet: reference notifications are applied by event_apply instead.
        return []

    def event_apply(self, event: InboundEvent) -> bool:
        return visma_notification_apply(event) is not None


def visma_notification_apply(event: InboundEvent):
    """Pull again the kind of reference data a stored notification is about; None when it is about something else.

    Returns the ReferenceRefresh counts of the delta read.
    """
    # Imported here: mappings.reference imports this package (it reads Visma through it).
    from mappings.reference import reference_data_refresh

    notification = json.loads(event.body, parse_float=Decimal)
    kind = reference_kind_for_event(str(notification.get("event") or event.event_type or ""))
    if kind is None:
        return None
    return reference_data_refresh(event.integration.tenant, kinds=[kind])
