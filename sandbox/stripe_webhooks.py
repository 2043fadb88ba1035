"""The Stripe emulator's webhook sender: each undelivered event POSTed to the account's endpoint, signed as Stripe
signs (`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "t.body" in hex>`)."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests
from django.utils import timezone

from .models import StripeAccount, StripeObject

TIMEOUT_SECONDS = (3, 10)


def stripe_signature_header(body: str, secret: str, *, timestamp: int | None = None) -> str:
    """What Stripe puts in Stripe-Signature for `body` under the endpoint secret `secret`."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def stripe_event_send(account: StripeAccount, event: StripeObject) -> int:
    """POST one event to the endpoint; the HTTP status it answered (0 when it could not be reached)."""
    body = json.dumps(event.body, indent=2)
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
               "Stripe-Signature": stripe_signature_header(body, account.webhook_secret)}
    try:
        response = requests.post(account.webhook_url, data=body.encode(), headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.RequestException:
        return 0
    return response.status_code


def stripe_events_deliver(account: StripeAccount) -> int:
    """Send every undelivered event, oldest first; an event answered with 2xx is not sent again. How many were."""
    if not (account.webhook_url and account.webhook_secret):
        return 0
    delivered = 0
    for event in StripeObject.objects.filter(account=account, object_type="event", delivered_at=None).order_by("pk"):
        if 200 <= stripe_event_send(account, event) < 300:
            event.body["pending_webhooks"] = 0
            event.delivered_at = timezone.now()
            event.save(update_fields=["body", "delivered_at"])
            delivered += 1
    return delivered
