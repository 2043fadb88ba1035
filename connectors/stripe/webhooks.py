"""Stripe webhooks: the Stripe-Signature check (through the official library), the event envelope, what it touches.

Stripe signs "<t>.<raw body>" with HMAC-SHA256 under the endpoint's signing secret and sends
`Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]`; during a secret roll it sends one v1 per live secret,
and we may hold several secrets (credentials "webhook_secrets", newest first). An event is a trigger only: its
object is re-read from the API before anything is written, since Stripe does not deliver events in order.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from decimal import Decimal

# Bound once: the stripe package resolves its attributes lazily, through an import, on every access.
from stripe import SignatureVerificationError, WebhookSignature

from connectors.models import Connection, InboundEvent, Integration
from connectors.webhooks import ParsedEvent, Refusal, Verdict, WebhookVerifier, webhook_document

SIGNATURE_HEADER = "stripe-signature"
DEFAULT_TOLERANCE_SECONDS = 300

# Event type → the stream whose object the event names (data.object is that object).
CHARGE_EVENTS = frozenset({"charge.succeeded", "charge.failed"})
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
DISPUTE_EVENTS = frozenset({"charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
                            "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated"})
# Events about money (charges, refunds, disputes, payouts...) of a type no stream takes: each is recorded by the
# "unhandled" stream and flagged with its type, never dropped. Other families (customers, our own invoices) are not
# money moving and are ignored.
MONEY_EVENT_FAMILIES = ("charge.", "refund.", "payout.", "topup.", "transfer.", "issuing_dispute.")
# Money events that change nothing the books need: an update of a charge's description or metadata.
MONEY_EVENTS_WITHOUT_MONEY = frozenset({"charge.updated"})
INVOICE_EVENTS = frozenset({"invoice.paid", "invoice.payment_failed"})


def stripe_webhook_secrets(connection: Connection) -> list[str]:
    """The endpoint signing secrets to accept: credentials "webhook_secrets" (a list, newest first) or
    "webhook_secret"."""
    credentials = connection.credentials or {}
    secrets = credentials.get("webhook_secrets") or []
    if isinstance(secrets, str):
        secrets = [secrets]
    if credentials.get("webhook_secret"):
        secrets = [*secrets, credentials["webhook_secret"]]
    return [str(secret) for secret in secrets if str(secret).strip()]


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((str(value).strip() for key, value in headers.items() if key.lower() == name), "")


def stripe_signature_problem(*, body: bytes, header: str, secrets: list[str],
                             tolerance: int = DEFAULT_TOLERANCE_SECONDS, now: float | None = None) -> str | None:
    """None when any v1 signature in `header` is the HMAC of "t.body" under any of `secrets`, sent within tolerance."""
    if not secrets:
        return "no webhook signing secret on the Stripe connection (credentials webhook_secrets)"
    if not header:
        return "no Stripe-Signature header"
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        return "body is not UTF-8"
    try:
        timestamp, _ = WebhookSignature._get_timestamp_and_signatures(header, "v1")
    except (IndexError, ValueError):
        return "Stripe-Signature has no t=<unix time>"
    now = time.time() if now is None else now
    # The library only refuses old timestamps; one from the future is as suspect (a replay prepared in advance).
    # Whole seconds in int arithmetic: a t= of 400 digits is far off, not an OverflowError against a float.
    if abs(int(now) - timestamp) > tolerance:
        digits = str(timestamp)
        shown = digits if len(digits) <= 20 else f"{digits[:12]}… ({len(digits)} digits)"
        return f"timestamp {shown} is outside the {tolerance} s tolerance (replayed or delayed delivery)"
    reasons = []
    for secret in secrets:
        try:
            # Tolerance is checked above against our clock; the library checks t, the v1 list and the HMAC.
            WebhookSignature.verify_header(payload, header, secret, tolerance=None)
            return None
        except SignatureVerificationError as exc:
            reasons.append(str(exc.user_message or exc))
    if reasons and all(reason.startswith("No signatures found with expected scheme") for reason in reasons):
        return "Stripe-Signature has no v1 signature"
    return f"Stripe-Signature matches none of the {len(secrets)} configured secret(s)"


def stripe_event_objects(document: Mapping) -> list[tuple[str, str]]:
    """(stream, Stripe id) of the object an event is about, to be re-read from the API; empty when no stream cares."""
    event_type = str(document.get("type") or "")
    data = document.get("data") if isinstance(document.get("data"), Mapping) else {}
    obj = data.get("object") if isinstance(data.get("object"), Mapping) else {}
    object_id = str(obj.get("id") or "")
    if not object_id:
        return []
    if event_type in CHARGE_EVENTS:
        return [("charges", object_id)]
    if event_type == "charge.refunded":
        # Each refund of the charge is its own journal; the charge itself was carried by charge.succeeded.
        refunds = obj.get("refunds") if isinstance(obj.get("refunds"), Mapping) else {}
        return [("refunds", str(refund["id"])) for refund in refunds.get("data") or []
                if isinstance(refund, Mapping) and refund.get("id")]
    if event_type in REFUND_EVENTS:
        return [("refunds", object_id)]
    if event_type in DISPUTE_EVENTS:
        # The dispute's status is a note on the invoice; each balance transaction of it (the amount and fee
        # withdrawn, the amount reinstated: spec3.yaml dispute.balance_transactions) a journal of its own.
        moved = obj.get("balance_transactions") if isinstance(obj.get("balance_transactions"), list) else []
        return [("disputes", object_id)] + [
            ("disputes", f"{object_id}:{balance['id']}") for balance in moved
            if isinstance(balance, Mapping) and balance.get("id")]
    if event_type in INVOICE_EVENTS:
        # The pinned API version has no Invoice.charge: a charge is named only by an InvoicePayment of type "charge"
        # in `payments` (includable, so mostly absent); a payment intent's charge comes with its own charge.* event.
        payments = obj.get("payments") if isinstance(obj.get("payments"), Mapping) else {}
        charges = []
        for payment in payments.get("data") or []:
            paid_by = payment.get("payment") if isinstance(payment, Mapping) else None
            charge = paid_by.get("charge") if isinstance(paid_by, Mapping) and paid_by.get("type") == "charge" else None
            charge = charge.get("id") if isinstance(charge, Mapping) else charge
            if isinstance(charge, str) and charge:
                charges.append(("charges", charge))
        return charges
    if event_type.startswith(MONEY_EVENT_FAMILIES) and event_type not in MONEY_EVENTS_WITHOUT_MONEY:
        event_id = str(document.get("id") or "")
        return [("unhandled", event_id)] if event_id else []
    return []


class StripeWebhookVerifier(WebhookVerifier):
    """Stripe-Signature under any configured secret, within the integration's tolerance (default 300 s)."""

    def verify(self, *, integration: Integration, headers: Mapping[str, str], body: bytes, url: str) -> Verdict:
        tolerance = int((integration.settings or {}).get("webhook_tolerance_seconds") or DEFAULT_TOLERANCE_SECONDS)
        header, secrets = _header(headers, SIGNATURE_HEADER), stripe_webhook_secrets(integration.partner_connection)
        problem = stripe_signature_problem(body=body, header=header, secrets=secrets, tolerance=tolerance)
        if problem is None:
            return Verdict.genuine()
        refusal = (Refusal.NO_SECRET if not secrets else Refusal.UNSIGNED if not header
                   else Refusal.STALE if problem.startswith("timestamp ") else Refusal.BAD_SIGNATURE)
        return Verdict.refused(problem, refusal)

    def parse(self, *, headers: Mapping[str, str], body: bytes) -> list[ParsedEvent]:
        document = webhook_document(body)
        if not isinstance(document, dict):
            raise ValueError("body is not a JSON object")
        if document.get("object") != "event":
            raise ValueError(f"object is {document.get('object')!r}, not 'event'")
        for field in ("id", "type"):
            if not isinstance(document.get(field), str) or not document[field]:
                raise ValueError(f"field {field} is missing")
        return [ParsedEvent(event_id=document["id"], event_type=document["type"], body=body.decode("utf-8"))]

    def objects_touched(self, event: InboundEvent) -> list[tuple[str, str]]:
        return stripe_event_objects(json.loads(event.body, parse_float=Decimal))


__all__ = ["StripeWebhookVerifier", "stripe_event_objects", "stripe_signature_problem", "stripe_webhook_secrets"]
