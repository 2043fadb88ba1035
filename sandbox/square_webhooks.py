"""The Square emulator's webhook sender: each queued event POSTed to the subscription's notification URL with
`x-square-hmacsha256-signature` = base64(HMAC-SHA256(signature key, notification URL + body)) (docs/square.md §1 and
§4; checked in tests with squareup's `verify_signature`), and the switches tests use to misbehave like the network
does (each event twice, in reverse order) or to forge (another URL signed, another key, a byte changed)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json

import requests
from django.utils import timezone

from .models import SquareMerchant, SquareObject

SIGNATURE_HEADER = "x-square-hmacsha256-signature"
# Square wants a 2xx within 10 seconds (docs/square.md §4 "Delivery").
TIMEOUT_SECONDS = (3, 10)


def square_signature(signature_key: str, notification_url: str, body: str) -> str:
    """What Square puts in x-square-hmacsha256-signature: base64(HMAC-SHA256(key, URL + body)), UTF-8 bytes, padded."""
    digest = hmac.new(signature_key.encode("utf-8"), (notification_url + body).encode("utf-8"), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def square_event_body(event: dict) -> str:
    """The event as Square sends it: compact JSON (the reference's test vector body has no spaces)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


def square_event_post(merchant: SquareMerchant, event: dict, *, url: str | None = None,
                      signed_url: str | None = None, signature_key: str | None = None,
                      tamper: bool = False) -> int:
    """POST one event; the HTTP status answered (0 when unreachable). `url` overrides where it goes, `signed_url`
    the URL the signature is computed over, `signature_key` the key; `tamper` changes one body byte after signing."""
    body = square_event_body(event)
    target = url or merchant.notification_url
    signature = square_signature(signature_key or merchant.signature_key, signed_url or merchant.notification_url,
                                 body)
    if tamper:
        body = body.replace(event["event_id"], event["event_id"][:-1] + ("0" if event["event_id"][-1] != "0"
                                                                          else "1"), 1)
    headers = {"Content-Type": "application/json", "User-Agent": "Square Connect v2", SIGNATURE_HEADER: signature}
    try:
        response = requests.post(target, data=body.encode("utf-8"), headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.RequestException:
        return 0
    return response.status_code


def square_events_deliver(merchant: SquareMerchant, *, duplicate: bool = False, reverse: bool = False,
                          again: bool = False, types: tuple[str, ...] | None = None, signed_url: str | None = None,
                          signature_key: str | None = None, tamper: bool = False) -> int:
    """Send the merchant's undelivered events (with `again`, every event) oldest first, or newest first with
    `reverse`; with `duplicate` the whole run is sent twice ("Webhooks can be sent more than once":
    docs/square.md §4). An event answered 2xx counts as delivered. How many posts were answered 2xx."""
    if not (merchant.notification_url and merchant.signature_key):
        return 0
    rows = SquareObject.objects.filter(merchant=merchant, object_type="event").order_by("pk")
    if not again:
        rows = rows.filter(delivered_at=None)
    events = [row for row in rows if types is None or row.body["type"] in types]
    if reverse:
        events.reverse()
    delivered = 0
    for row in events * (2 if duplicate else 1):
        status = square_event_post(merchant, row.body, signed_url=signed_url, signature_key=signature_key,
                                   tamper=tamper)
        if 200 <= status < 300:
            delivered += 1
            if row.delivered_at is None:
                row.delivered_at = timezone.now()
                row.save(update_fields=["delivered_at"])
    return delivered
