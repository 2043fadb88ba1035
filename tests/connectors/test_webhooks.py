"""The webhook intake over HTTP: verified, stored once, acknowledged; the stored row is what a worker takes later."""
import json
import uuid
from datetime import timedelta

import pytest
import stripe
from django_q.models import OrmQ

from audit.models import AuditEntry, SyncRecord
from connectors.models import Connection, InboundEvent, WebhookRefusal
from connectors.services import inbox_process
from tests.connectors.deliveries import stripe_vendor
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory
from tests.ledger_stream import sign
from tests.wsgi_client import wsgi_request

pytestmark = pytest.mark.django_db

SECRET = "whsec-test-0123456789"


def paypal_integration(*, secret: str | None = SECRET, **fields):
    integration = IntegrationFactory(**fields)
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures")
    connection = integration.partner_connection
    if secret:
        connection.credentials = {**connection.credentials, "webhook_secret": secret}
        connection.save()
    return integration


def event_body(event_id="WH-1", resource_id="P-1") -> bytes:
    return json.dumps({"id": event_id, "type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": resource_id}).encode()


def post(client, integration, body: bytes, *, signature: str | None = None, kind: str = "paypal", **headers):
    return client.post(
        f"/webhooks/{kind}/{integration.id}/", data=body, content_type="application/json",
        HTTP_X_TEST_SIGNATURE=sign(SECRET, body) if signature is None else signature, **headers,
    )


def test_an_unknown_integration_is_not_found(client, payments_stream):
    # given
    body = event_body()

    # when
    response = client.post(f"/webhooks/paypal/{uuid.uuid4()}/", data=body, content_type="application/json",
                           HTTP_X_TEST_SIGNATURE=sign(SECRET, body))

    # then
    assert (response.status_code, response.json()) == (404, {"detail": "No such integration."})
    assert (InboundEvent.objects.count(), AuditEntry.objects.count()) == (0, 0)


@pytest.mark.parametrize("kind", ["stripe", "nonsense"])
def test_an_integration_addressed_under_another_kind_is_not_found(client, payments_stream, kind):
    # given
    integration = paypal_integration()

    # when
    response = post(client, integration, event_body(), kind=kind)

    # then
    assert response.status_code == 404
    assert (InboundEvent.objects.count(), AuditEntry.objects.count()) == (0, 0)


def test_a_delivery_without_a_configured_secret_is_refused_and_audited(client, payments_stream):
    # given
    integration = paypal_integration(secret=None)

    # when
    response = post(client, integration, event_body(), HTTP_AUTHORIZATION="Bearer abc.def")

    # then
    assert (response.status_code, response.json()) == (401, {"detail": "Signature verification failed."})
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.reason, entry.integration_id, entry.tenant_id, entry.sync_record) == (
        "webhook_rejected", "no webhook secret configured", integration.id, integration.tenant_id, None
    )
    assert entry.details["remote_addr"] == "127.0.0.1"
    assert "X-Test-Signature" in entry.details["headers"]
    assert "Authorization" not in entry.details["headers"]
    assert InboundEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("signature", "reason"),
    [(sign("another-secret", event_body()), "signature mismatch"), ("", "X-Test-Signature header missing")],
    ids=["wrong-secret", "no-signature"],
)
def test_a_delivery_with_a_bad_signature_is_refused_stored_nowhere_and_audited(
    client, payments_stream, django_capture_on_commit_callbacks, signature, reason
):
    # given
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, integration, event_body(), signature=signature)

    # then
    assert response.status_code == 401
    assert list(AuditEntry.objects.values_list("action", "reason")) == [("webhook_rejected", reason)]
    assert (InboundEvent.objects.count(), SyncRecord.objects.count(), OrmQ.objects.count(), len(callbacks)) == (
        0, 0, 0, 0
    )
    assert payments_stream.LEDGER.writes == 0


def test_a_genuine_delivery_is_stored_raw_and_its_row_is_the_only_write(
    client, payments_stream, django_capture_on_commit_callbacks
):
    # given
    integration = paypal_integration()
    body = event_body()

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, integration, body, HTTP_AUTHORIZATION="Bearer abc.def", HTTP_COOKIE="sessionid=s3")

    # then acknowledged, stored, waiting in the inbox for a worker; no second write to a queue, nothing processed
    assert (response.status_code, response.json()) == (200, {"received": 1, "duplicates": 0})
    event = InboundEvent.objects.get()
    assert (event.event_id, event.event_type, event.status, event.attempts, event.dispatched_at) == (
        "WH-1", "PAYMENT.CAPTURE.COMPLETED", "pending", 0, None
    )
    assert event.body == body.decode()
    assert event.headers["X-Test-Signature"] == sign(SECRET, body)
    assert {"Authorization", "Cookie"}.isdisjoint(event.headers)
    assert (len(callbacks), OrmQ.objects.count()) == (0, 0)
    assert SyncRecord.objects.count() == 0
    assert payments_stream.LEDGER.writes == 0


def test_a_duplicate_event_is_acknowledged_but_stored_once(client, payments_stream):
    # given
    integration = paypal_integration()
    post(client, integration, event_body())

    # when
    response = post(client, integration, event_body())

    # then
    assert (response.status_code, response.json()) == (200, {"received": 0, "duplicates": 1})
    assert (InboundEvent.objects.count(), OrmQ.objects.count()) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_outside_a_test_transaction_a_duplicate_is_one_failed_insert_and_stored_once(client, payments_stream):
    # given (as in production: no transaction around the request, the insert is its own)
    integration = paypal_integration()
    first = post(client, integration, event_body())

    # when
    second = post(client, integration, event_body())

    # then
    assert (first.json(), second.json()) == ({"received": 1, "duplicates": 0}, {"received": 0, "duplicates": 1})
    assert InboundEvent.objects.count() == 1


def test_a_body_over_the_limit_is_refused_before_anything_is_stored(client, payments_stream, settings):
    # given
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    integration = paypal_integration()
    body = json.dumps({"id": "WH-1", "type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": "P-1", "pad": "x" * 17})
    assert len(body) == 101

    # when
    response = post(client, integration, body.encode())

    # then refused, nothing stored, and counted for the integration it was sent to
    assert (response.status_code, response.json()) == (413, {"detail": "Body larger than 100 bytes."})
    assert (InboundEvent.objects.count(), OrmQ.objects.count()) == (0, 0)
    assert list(WebhookRefusal.objects.values_list("reason", "deliveries")) == [("too_large", 1)]
    assert list(AuditEntry.objects.values_list("action", "reason")) == [
        ("webhook_rejected", "Body larger than 100 bytes.")]


def test_a_body_at_the_limit_is_accepted(client, payments_stream, settings, django_capture_on_commit_callbacks):
    # given
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    integration = paypal_integration()
    body = json.dumps({"id": "WH-1", "type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": "P-1", "pad": "x" * 16})
    assert len(body) == 100

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, integration, body.encode())

    # then
    assert response.status_code == 200
    assert InboundEvent.objects.count() == 1


def test_a_malformed_body_with_a_good_signature_is_refused_naming_the_field(client, payments_stream):
    # given
    integration = paypal_integration()
    body = json.dumps({"type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": "P-1"}).encode()

    # when
    response = post(client, integration, body)

    # then
    assert response.status_code == 400
    assert response.json() == {"detail": "Malformed paypal webhook: field 'id' missing or body not JSON"}
    assert InboundEvent.objects.count() == 0
    assert list(WebhookRefusal.objects.values_list("reason", "deliveries")) == [("malformed", 1)]
    assert AuditEntry.objects.get().reason == "Malformed paypal webhook: field 'id' missing or body not JSON"


def test_a_stored_event_is_processed_by_the_inbox_into_one_posting(
    client, payments_stream, django_capture_on_commit_callbacks
):
    # given
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    with django_capture_on_commit_callbacks(execute=True):
        post(client, integration, event_body())

    # when
    processed = inbox_process()

    # then
    record = SyncRecord.objects.get()
    assert (processed, record.source_id, record.status, record.target_id) == (1, "P-1", "posted", "JT-00001")
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts, event.error) == ("processed", 1, "")
    assert payments_stream.LEDGER.writes == 1
    assert inbox_process() == 0


def test_the_same_event_delivered_three_times_is_posted_once(client, payments_stream):
    # given
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}

    # when
    statuses = [post(client, integration, event_body()).status_code for _ in range(3)]
    inbox_process()

    # then
    assert statuses == [200, 200, 200]
    assert (InboundEvent.objects.count(), SyncRecord.objects.count(), OrmQ.objects.count()) == (1, 1, 0)
    assert payments_stream.LEDGER.writes == 1


def test_three_events_about_one_payment_post_it_once(client, payments_stream, django_capture_on_commit_callbacks):
    # given
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    with django_capture_on_commit_callbacks(execute=True):
        for event_id in ("WH-1", "WH-2", "WH-3"):
            post(client, integration, event_body(event_id=event_id))

    # when
    processed = inbox_process()

    # then
    assert processed == 3
    assert list(InboundEvent.objects.values_list("status", flat=True)) == ["processed"] * 3
    record = SyncRecord.objects.get()
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert payments_stream.LEDGER.writes == 1


def test_a_delivery_for_a_disabled_integration_is_stored_but_not_enqueued(
    client, payments_stream, django_capture_on_commit_callbacks
):
    # given
    integration = paypal_integration(enabled=False)
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}

    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, integration, event_body())
    processed = inbox_process()

    # then
    assert response.status_code == 200
    assert (InboundEvent.objects.get().status, len(callbacks), OrmQ.objects.count(), processed) == (
        "pending", 0, 0, 0
    )
    assert SyncRecord.objects.count() == 0


def test_an_event_whose_processing_fails_is_marked_failed_and_retried_by_the_inbox(
    client, payments_stream, django_capture_on_commit_callbacks
):
    # given an event about a payment whose amount the source cannot give
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"currency": "EUR"}
    with django_capture_on_commit_callbacks(execute=True):
        post(client, integration, event_body())

    # when
    inbox_process()

    # then
    event = InboundEvent.objects.get()
    assert (event.status, event.attempts, event.error) == ("failed", 1, "KeyError: 'amount'")

    # when the source is readable again
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    inbox_process()

    # then
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 2)
    assert SyncRecord.objects.get().status == "posted"


def test_the_sweep_processes_an_event_no_worker_was_handed_once_it_is_a_minute_old(client, payments_stream):
    # given an event stored while no cluster was running
    integration = paypal_integration()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    post(client, integration, event_body())
    event = InboundEvent.objects.get()

    # when the sweep runs at once, then a minute later
    from connectors.tasks import inbox_sweep

    swept_now = inbox_sweep()
    InboundEvent.objects.filter(pk=event.pk).update(received_at=event.received_at - timedelta(minutes=2))
    swept_later = inbox_sweep()

    # then
    assert (swept_now, swept_later) == (0, 1)
    assert SyncRecord.objects.get().status == "posted"
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("processed", 1)
    assert event.dispatched_at is not None


def test_a_changed_secret_counts_from_the_next_delivery_however_it_was_changed():
    # given a Stripe integration whose deliveries have been verified (and its rows kept by this process)
    vendor = stripe_vendor()
    connection = vendor.integration.partner_connection

    def deliver(secret: str, event_id: str) -> int:
        body = vendor.envelope(event_id_json=f'"{event_id}"')
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), secret)
        return wsgi_request(vendor.path, body, headers={"Stripe-Signature": header}).status_code

    first = deliver("whsec_fuzz_s3cr3t", "evt_1")

    # when the secret is rolled through save(), then through an update() that leaves updated_at as it was
    connection.credentials = {**connection.credentials, "webhook_secrets": ["whsec_second"]}
    connection.save()
    after_save = (deliver("whsec_fuzz_s3cr3t", "evt_2"), deliver("whsec_second", "evt_3"))
    Connection.objects.filter(pk=connection.pk).update(
        credentials={**connection.credentials, "webhook_secrets": ["whsec_third"]}, updated_at=connection.updated_at)
    after_update = (deliver("whsec_second", "evt_4"), deliver("whsec_third", "evt_5"))

    # then
    assert (first, after_save, after_update) == (200, (401, 200), (401, 200))
    assert list(InboundEvent.objects.order_by("id").values_list("event_id", flat=True)) == ["evt_1", "evt_3", "evt_5"]
