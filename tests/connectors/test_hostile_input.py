"""Hostile input at the webhook intake: each request the fuzzing of issue 8 found to end in a 500 gets a 4xx with
its reason, stores nothing, and is counted as a refused delivery. Through config.wsgi.application, as gunicorn calls
it, for Stripe, PayPal and Visma deliveries signed the way each vendor signs them."""
import json

import pytest
import responses

from audit.models import AuditEntry
from connectors.models import InboundEvent, WebhookRefusal
from tests.connectors.deliveries import paypal_vendor, stored_events_readable, stripe_vendor, visma_vendor
from tests.wsgi_client import wsgi_request

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["stripe", "paypal", "visma"])
def vendor(request):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield {"stripe": stripe_vendor, "visma": visma_vendor}.get(request.param, lambda: paypal_vendor(mock))()


def deliver(vendor, body: bytes, headers: dict[str, str] | None = None):
    return wsgi_request(vendor.path, body, headers=vendor.signed(body) if headers is None else headers)


def assert_refused(vendor, response, status_code: int, refusal: str, detail_fragment: str) -> None:
    assert response.status_code == status_code, response.content
    assert InboundEvent.objects.count() == 0
    [counted] = WebhookRefusal.objects.all()
    assert (counted.integration_id, counted.reason, counted.deliveries) == (vendor.integration.pk, refusal, 1)
    assert detail_fragment in counted.last_detail, counted.last_detail
    assert AuditEntry.objects.get().reason == counted.last_detail
    if status_code == 400:
        assert detail_fragment in json.loads(response.content)["detail"]


@pytest.mark.parametrize("case, build, fragment", [
    ("json nested 2,000 deep", lambda v: v.envelope(inside="[" * 2000 + "]" * 2000), "nests deeper than 64 levels"),
    ("an event id with a lone surrogate", lambda v: v.envelope(event_id_json='"evt_\\ud800"'), "lone surrogate"),
    ("an event id longer than its column", lambda v: v.envelope(event_id_json=json.dumps("e" * 256)),
     "event id is longer than 255 characters"),
    ("an event id holding NUL", lambda v: v.envelope(event_id_json='"evt_\\u0000"'), "NUL"),
    ("a body starting with a UTF-8 byte order mark", lambda v: b"\xef\xbb\xbf" + v.envelope(), "byte order mark"),
])
def test_a_validly_signed_delivery_that_could_not_be_stored_and_read_back_is_refused(vendor, case, build, fragment):
    # given
    body = build(vendor)

    # when
    response = deliver(vendor, body)

    # then
    assert_refused(vendor, response, 400, "malformed", fragment)


def test_an_event_id_as_long_as_its_column_is_taken_and_reads_back(vendor):
    # given
    body = vendor.envelope(event_id_json=json.dumps("e" * 255))

    # when
    response = deliver(vendor, body)

    # then
    assert response.status_code == 200
    assert InboundEvent.objects.get().event_id == "e" * 255
    stored_events_readable(vendor)


@pytest.mark.parametrize("digits, detail", [
    (400, "timestamp 999999999999… (400 digits) is outside the 300 s tolerance"),
    (5000, "Stripe-Signature has no t=<unix time>"),
])
def test_a_stripe_signature_timestamp_of_hundreds_of_digits_is_refused(digits, detail):
    # given
    vendor = stripe_vendor()
    body = vendor.envelope()

    # when
    response = deliver(vendor, body, {"Stripe-Signature": f"t={'9' * digits},v1={'0' * 64}"})

    # then
    assert_refused(vendor, response, 401, "stale" if digits == 400 else "bad_signature", detail)


@pytest.mark.parametrize("sent", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_paypal_transmission_time_outside_the_calendar_in_utc_is_refused(sent):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # given
        vendor = paypal_vendor(mock)
        body = vendor.envelope()
        headers = {**vendor.signed(body), "PAYPAL-TRANSMISSION-TIME": sent}

        # when
        response = deliver(vendor, body, headers)

        # then nothing fetched, nothing stored
        assert len(mock.calls) == 0
    assert_refused(vendor, response, 401, "bad_signature", f"PAYPAL-TRANSMISSION-TIME '{sent}' is not a time")


@pytest.mark.parametrize("value", ["a\x00b", "a\rb", "snow\u2603man"])
def test_a_header_no_http_server_would_pass_is_refused(vendor, value):
    # given
    body = vendor.envelope()

    # when
    response = deliver(vendor, body, {**vendor.signed(body), "X-Extra": value})

    # then
    assert_refused(vendor, response, 400, "malformed", "header 'X-Extra' holds a character HTTP does not allow")


@pytest.mark.parametrize("declared", ["abc", "9" * 5000, "\u0663", "-1"])
def test_a_content_length_that_is_no_number_of_bytes_is_refused(declared):
    # given
    vendor = stripe_vendor()

    # when
    response = wsgi_request(vendor.path, vendor.envelope(), content_length=declared)

    # then
    assert response.status_code == 400
    assert json.loads(response.content) == {"detail": "Content-Length is not a number of bytes."}
    assert InboundEvent.objects.count() == 0


def test_a_body_declared_over_the_limit_is_refused_unread_and_counted(settings):
    # given
    settings.WEBHOOK_MAX_BODY_BYTES = 100
    vendor = stripe_vendor()

    # when
    response = wsgi_request(vendor.path, b"{}", content_length="101")

    # then
    assert_refused(vendor, response, 413, "too_large", "Body larger than 100 bytes.")


@pytest.mark.parametrize("method", ["GET", "PUT", "OPTIONS"])
def test_only_post_is_answered(method):
    # given
    vendor = stripe_vendor()

    # when
    response = wsgi_request(vendor.path, method=method)

    # then
    assert response.status_code == 405
    assert (InboundEvent.objects.count(), WebhookRefusal.objects.count()) == (0, 0)
