"""Square webhook signatures (the SDK's test vector; the configured notification URL only), the event, what each
event type touches, the revocation, and deliveries through the real webhook view."""
import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from audit.models import AuditEntry
from connectors import registry
from connectors.models import Connection, InboundEvent, WebhookRefusal
from connectors.pipeline import inbound_event_process
from connectors.square.webhooks import (
    SquareWebhookVerifier,
    square_event_objects,
    square_signature_problem,
)
from tests.factories import ConnectionFactory, IntegrationFactory

PAYLOADS = Path(__file__).parent / "payloads"
# The reference's test vector (shared/reference/paypal-stripe-square.md §3.1; SDK tests/integration/
# test_webhooks_helper.py).
VECTOR_KEY = "Ibxx_5AKakO-3qeNVR61Dw"
VECTOR_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9"
VECTOR_BODY = (PAYLOADS / "test_vector.json").read_bytes()
VECTOR_SIGNATURE = "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4="
# Where Square delivers for the tests' integration: not the host the test client posts to.
NOTIFICATION_URL = "https://connector.example.no/webhooks/square/configured/"
KEY = "sq-signature-key-s3cr3t"


def sign(body: bytes, key: str = KEY, url: str = NOTIFICATION_URL) -> str:
    """Square's signature, computed here independently of the helper under test."""
    digest = hmac.new(key.encode(), url.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def payload_bytes(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes().strip()


def square_integration(*, keys=None, url=NOTIFICATION_URL, **credentials):
    connection = ConnectionFactory(system="square", base_url="http://sandbox.test/sandbox/square",
                                   credentials={"access_token": "EAAA-s3cr3t", **credentials,
                                                **({"webhook_signature_keys": keys} if keys is not None else {})})
    return IntegrationFactory(tenant=connection.tenant, kind="square", partner_connection=connection,
                              settings={"webhook_notification_url": url} if url else {})


# --- the signature ---------------------------------------------------------------------------------------------


def test_the_reference_test_vector_verifies():
    assert square_signature_problem(body=VECTOR_BODY, header=VECTOR_SIGNATURE, keys=[VECTOR_KEY],
                                    notification_url=VECTOR_URL) is None


@pytest.mark.parametrize(("body", "key", "url"), [
    (VECTOR_BODY, VECTOR_KEY, VECTOR_URL.replace("679a", "679b")),
    (VECTOR_BODY, VECTOR_KEY, VECTOR_URL + "/"),
    (VECTOR_BODY.replace(b"MLEFBHHSJGVHD", b"MLEFBHHSJGVHE"), VECTOR_KEY, VECTOR_URL),
    (VECTOR_BODY + b" ", VECTOR_KEY, VECTOR_URL),
    (VECTOR_BODY, VECTOR_KEY[:-1] + "x", VECTOR_URL),
], ids=["other-url", "url-with-slash", "one-body-byte", "body-with-space", "other-key"])
def test_the_test_vector_fails_when_the_url_one_body_byte_or_the_key_changes(body, key, url):
    problem = square_signature_problem(body=body, header=VECTOR_SIGNATURE, keys=[key], notification_url=url)
    assert problem == ("x-square-hmacsha256-signature matches none of the 1 configured key(s) over the "
                       "notification URL")


def test_any_configured_key_may_match_during_rotation():
    assert square_signature_problem(body=VECTOR_BODY, header=VECTOR_SIGNATURE, keys=["new-key", VECTOR_KEY],
                                    notification_url=VECTOR_URL) is None


@pytest.mark.parametrize(("body", "header", "keys", "url", "expected"), [
    (VECTOR_BODY, VECTOR_SIGNATURE, [VECTOR_KEY], None, "no notification URL set"),
    (VECTOR_BODY, VECTOR_SIGNATURE, [VECTOR_KEY], "", "no notification URL set"),
    (VECTOR_BODY, VECTOR_SIGNATURE, [], VECTOR_URL, "no webhook signature key"),
    (VECTOR_BODY, "", [VECTOR_KEY], VECTOR_URL, "no x-square-hmacsha256-signature header"),
    (b"", VECTOR_SIGNATURE, [VECTOR_KEY], VECTOR_URL, "empty body"),
    (b"\xff\xfe{}", VECTOR_SIGNATURE, [VECTOR_KEY], VECTOR_URL, "body is not UTF-8"),
], ids=["no-url", "empty-url", "no-key", "no-header", "empty-body", "not-utf8"])
def test_what_cannot_be_verified_is_refused_with_a_reason(body, header, keys, url, expected):
    problem = square_signature_problem(body=body, header=header, keys=keys, notification_url=url)
    assert problem is not None and problem.startswith(expected)


def test_the_verifier_uses_the_configured_notification_url_never_the_requests(db):
    # given: signed over the configured URL; the request arrived at another (behind a proxy)
    integration = square_integration(keys=[KEY])
    body = payload_bytes("payment_updated.json")
    verifier = SquareWebhookVerifier()

    # when
    genuine = verifier.verify(integration=integration, headers={"X-Square-HmacSha256-Signature": sign(body)},
                              body=body, url="http://10.0.0.7:8000/webhooks/square/x/")
    signed_over_request_url = verifier.verify(
        integration=integration, body=body, url="http://10.0.0.7:8000/webhooks/square/x/",
        headers={"x-square-hmacsha256-signature": sign(body, url="http://10.0.0.7:8000/webhooks/square/x/")})

    # then
    assert genuine.ok
    assert not signed_over_request_url.ok and signed_over_request_url.refusal == WebhookRefusal.Reason.BAD_SIGNATURE


def test_the_verifier_reads_the_single_key_credential_and_refuses_without_url(db):
    # given
    with_key = square_integration(webhook_signature_key=KEY)
    without_url = square_integration(webhook_signature_key=KEY, url=None)
    body = payload_bytes("payment_updated.json")
    headers = {"x-square-hmacsha256-signature": sign(body)}
    verifier = SquareWebhookVerifier()

    # when
    verdict = verifier.verify(integration=with_key, headers=headers, body=body, url="")
    refused = verifier.verify(integration=without_url, headers=headers, body=body, url="")

    # then
    assert verdict.ok
    assert not refused.ok and refused.refusal == WebhookRefusal.Reason.NO_SECRET
    assert "no notification URL set" in refused.reason


# --- the event -------------------------------------------------------------------------------------------------


def test_parse_gives_one_event_with_its_id_and_type():
    # when
    events = SquareWebhookVerifier().parse(headers={}, body=payload_bytes("payment_updated.json"))

    # then
    assert [(event.event_id, event.event_type) for event in events] == [
        ("6a8f5f28-54a1-4eb0-a98a-3111513fd4fc", "payment.updated")]


@pytest.mark.parametrize(("body", "field"), [
    (b'{"type": "payment.updated", "data": {"id": "p"}}', "event_id"),
    (b'{"event_id": "", "type": "payment.updated"}', "event_id"),
    (b'{"event_id": "e-1", "data": {"id": "p"}}', "type"),
    (b'{"event_id": "e-1", "type": "payment.updated", "data": []}', "data"),
    (b'[{"event_id": "e-1"}]', "JSON object"),
    (b"not json", "not JSON"),
])
def test_a_malformed_event_is_refused_naming_the_field(body, field):
    with pytest.raises(ValueError, match=field):
        SquareWebhookVerifier().parse(headers={}, body=body)


@pytest.mark.parametrize(("event_type", "stream"), [
    ("payment.created", "payments"), ("payment.updated", "payments"),
    ("refund.created", "refunds"), ("refund.updated", "refunds"),
    *[(f"invoice.{name}", "invoices") for name in (
        "created", "published", "payment_made", "refunded", "canceled", "updated", "scheduled_charge_failed",
        "deleted")],
    ("vendor.created", "vendors"), ("vendor.updated", "vendors"),
])
def test_each_event_type_touches_its_stream_by_data_id(event_type, stream):
    assert square_event_objects({"type": event_type, "data": {"id": "X1", "object": {}}}) == [(stream, "X1")]


@pytest.mark.parametrize("document", [
    {"type": "customer.created", "data": {"id": "C1"}},
    {"type": "order.updated", "data": {"id": "O1"}},
    {"type": "oauth.authorization.revoked", "data": {"id": ""}},
    {"type": "payment.updated", "data": {}},
    {"type": "payment.updated"},
])
def test_other_events_touch_nothing(document):
    assert square_event_objects(document) == []


def test_a_revocation_marks_the_connection_and_every_call_then_says_re_authorize(db):
    # given
    integration = square_integration(keys=[KEY], refresh_token="r", client_id="sq0idp-app", client_secret="s")
    body = payload_bytes("oauth_authorization_revoked.json")
    event = InboundEvent.objects.create(integration=integration, kind="square", event_id="e-revoked",
                                        event_type="oauth.authorization.revoked", body=body.decode())

    # when
    processed = inbound_event_process(event)

    # then
    assert processed.status == InboundEvent.Status.PROCESSED
    connection = Connection.objects.get(pk=integration.partner_connection.pk)
    assert connection.authorization_problem == (
        "access was revoked in Square (by the merchant at 2026-03-06T07:59:58Z): "
        "the seller must re-authorize in Square")
    from connectors.square.client import SquareApi, SquareReauthorizationRequired

    with pytest.raises(SquareReauthorizationRequired, match="re-authorize"):
        SquareApi(connection).locations()


# --- through the webhook view ----------------------------------------------------------------------------------


def test_through_the_view_a_genuine_delivery_is_stored_once_and_a_forged_one_refused_and_audited(db, client):
    # given
    assert isinstance(registry.kind_spec("square").verifier, SquareWebhookVerifier)
    integration = square_integration(keys=[KEY])
    body = payload_bytes("payment_updated.json")
    forged = body.replace(b"45000", b"4500")

    def post(content: bytes, signature: str):
        return client.post(integration.webhook_path, content, content_type="application/json",
                           headers={"X-Square-HmacSha256-Signature": signature})

    # when
    first = post(body, sign(body))
    again = post(body, sign(body))
    tampered = post(forged, sign(body))
    other_key = post(forged, sign(forged, key="attacker"))

    # then
    assert (first.status_code, first.json()) == (200, {"received": 1, "duplicates": 0})
    assert (again.status_code, again.json()) == (200, {"received": 0, "duplicates": 1})
    assert tampered.status_code == other_key.status_code == 401
    assert list(InboundEvent.objects.values_list("event_id", "event_type")) == [
        ("6a8f5f28-54a1-4eb0-a98a-3111513fd4fc", "payment.updated")]
    refusals = WebhookRefusal.objects.filter(integration=integration, reason=WebhookRefusal.Reason.BAD_SIGNATURE)
    assert refusals.get().deliveries >= 1
    assert AuditEntry.objects.filter(action=AuditEntry.Action.WEBHOOK_REJECTED, integration=integration).exists()


def test_through_the_view_an_unsigned_delivery_is_refused_and_nothing_stored(db, client):
    # given
    integration = square_integration(keys=[KEY])
    body = payload_bytes("payment_updated.json")

    # when
    answer = client.post(integration.webhook_path, body, content_type="application/json")

    # then
    assert answer.status_code == 401
    assert not InboundEvent.objects.exists()
    assert json.loads(answer.content) == {"detail": "Signature verification failed."}
