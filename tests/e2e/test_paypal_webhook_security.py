"""PayPal webhooks over real HTTP: only deliveries PayPal signed for this webhook, recently, with a certificate from
an allowed host, are taken; anything else gets 401 and leaves no event, no record and no journal behind."""
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from audit.models import AuditEntry, SyncRecord
from connectors.models import HttpExchange, InboundEvent
from sandbox.paypal import paypal_capture_create
from sandbox.paypal_webhooks import paypal_delivery_build
from tests.paypal.world import MIKKO, hours_ago, post_raw, world  # noqa: F401


def _refused(world, response, reason_start: str) -> None:
    assert response.status_code == 401
    assert response.json() == {"detail": "Signature verification failed."}
    assert InboundEvent.objects.count() == 0
    world.process_inbox()
    assert SyncRecord.objects.count() == 0
    assert world.journals() == []
    [rejection] = AuditEntry.objects.filter(action=AuditEntry.Action.WEBHOOK_REJECTED)
    assert rejection.reason.startswith(reason_start), rejection.reason
    assert rejection.integration_id == world.integration.pk


@pytest.fixture
def capture_event(world):
    paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0), notify=False)
    return world.last_event("PAYMENT.CAPTURE.COMPLETED")


def _webhook_url(world) -> str:
    return f"{world.url}{world.integration.webhook_path}"


def test_a_genuine_delivery_is_taken(world, capture_event):
    # given
    delivery = paypal_delivery_build(capture_event, webhook_id=world.subscription.webhook_id)

    # when
    response = post_raw(_webhook_url(world), delivery.body, delivery.headers)

    # then
    assert (response.status_code, response.json()) == (200, {"received": 1, "duplicates": 0})
    assert InboundEvent.objects.count() == 1


def test_a_forged_signature_is_refused(world, capture_event):
    # given: a delivery whose body was changed after PayPal signed it (the amount)
    delivery = paypal_delivery_build(capture_event, webhook_id=world.subscription.webhook_id)
    forged = delivery.body.replace(b'"value":"100.00"', b'"value":"900.00"', 1)
    assert forged != delivery.body

    # when
    response = post_raw(_webhook_url(world), forged, delivery.headers)

    # then
    _refused(world, response, "signature does not match")


def test_a_delivery_signed_for_another_webhook_id_is_refused(world, capture_event):
    # given
    delivery = paypal_delivery_build(capture_event, webhook_id="1JE4291016473214C")

    # when
    response = post_raw(_webhook_url(world), delivery.body, delivery.headers)

    # then
    _refused(world, response, "signature does not match")


def test_a_certificate_from_a_host_not_allowed_is_refused_without_fetching_it(world, capture_event):
    # given
    cert_url = "https://certs.evil.example/v1/notifications/certs/CERT-360caa42-fca2a594-a5cafa77"
    delivery = paypal_delivery_build(capture_event, webhook_id=world.subscription.webhook_id, cert_url=cert_url)

    # when
    response = post_raw(_webhook_url(world), delivery.body, delivery.headers)

    # then
    _refused(world, response, "certificate host certs.evil.example is not allowed")
    assert HttpExchange.objects.filter(url__contains="evil").count() == 0


def test_a_certificate_from_another_loopback_address_is_refused_without_fetching_it(world, capture_event):
    # given: the sandbox's own host is on the allow-list; another port on this machine is not
    host, port = urlsplit(world.url).hostname, urlsplit(world.url).port
    cert_url = f"http://{host}:{port + 1}/sandbox/paypal/certs/CERT-360caa42-fca2a594-a5cafa77"
    delivery = paypal_delivery_build(capture_event, webhook_id=world.subscription.webhook_id, cert_url=cert_url)

    # when
    response = post_raw(_webhook_url(world), delivery.body, delivery.headers)

    # then
    _refused(world, response, f"certificate host {host}:{port + 1} is not allowed")
    assert HttpExchange.objects.filter(url__contains="/certs/").count() == 0


def test_a_stale_transmission_time_is_refused_as_a_replay(world, capture_event):
    # given: a delivery recorded ten minutes ago and sent again now
    delivery = paypal_delivery_build(capture_event, webhook_id=world.subscription.webhook_id,
                                     transmission_time=timezone.now() - timedelta(minutes=10))

    # when
    response = post_raw(_webhook_url(world), delivery.body, delivery.headers)

    # then
    _refused(world, response, f"transmission time {delivery.headers['PAYPAL-TRANSMISSION-TIME']} is outside")
