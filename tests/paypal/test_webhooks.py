"""PayPal webhook verification as PayPal's SDKs do it, checked on PayPal's published test vector, and the
certificate, time and webhook-id rules around it; the event envelope and what each event touches."""
import json
from datetime import UTC, datetime, timedelta

import pytest
import responses
import time_machine
from cryptography import x509
from django.core.cache import cache
from django.test import override_settings

from connectors.models import HttpExchange, InboundEvent
from connectors.paypal.webhooks import (
    PayPalWebhookVerifier,
    paypal_cert_url_problem,
    paypal_event_objects,
    paypal_signature_problem,
    paypal_signed_message,
)
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.paypal.conftest import payload, signature_vector

VECTOR = signature_vector()
HEADERS = VECTOR["headers"]
BODY = VECTOR["raw_body"].encode()
# The vector was signed on 2015-05-18 with a certificate valid 2015-03-18 … 2017-03-22.
SENT = datetime(2015, 5, 18, 15, 45, 20, tzinfo=UTC)


def _certificate() -> x509.Certificate:
    return x509.load_pem_x509_certificate(VECTOR["certificate"]["pem"].encode())


def _message(body: bytes = BODY, webhook_id: str = VECTOR["webhook_id"]) -> bytes:
    return paypal_signed_message(transmission_id=HEADERS["PAYPAL-TRANSMISSION-ID"],
                                 transmission_time=HEADERS["PAYPAL-TRANSMISSION-TIME"], webhook_id=webhook_id,
                                 body=body)


def test_the_signed_string_is_ids_time_webhook_id_and_unsigned_crc32_of_the_body():
    # then
    assert _message().decode() == VECTOR["signed_string"]


def test_paypals_published_test_vector_verifies():
    # when
    problem = paypal_signature_problem(certificate=_certificate(), message=_message(),
                                       signature=HEADERS["PAYPAL-TRANSMISSION-SIG"])

    # then
    assert problem is None


@pytest.mark.parametrize("position", [0, 100, len(VECTOR["raw_body"]) - 1])
def test_the_vector_fails_when_one_byte_of_the_body_changes(position):
    # given
    body = bytearray(BODY)
    body[position] ^= 0x01

    # when
    problem = paypal_signature_problem(certificate=_certificate(), message=_message(bytes(body)),
                                       signature=HEADERS["PAYPAL-TRANSMISSION-SIG"])

    # then
    assert problem.startswith("signature does not match")


def test_the_vector_fails_for_another_webhook_id():
    # when
    problem = paypal_signature_problem(certificate=_certificate(), message=_message(webhook_id="4JH86294D6297924H"),
                                       signature=HEADERS["PAYPAL-TRANSMISSION-SIG"])

    # then
    assert problem.startswith("signature does not match")


def test_sha1_is_refused_even_for_the_vector():
    # when
    problem = paypal_signature_problem(certificate=_certificate(), message=_message(),
                                       signature=HEADERS["PAYPAL-TRANSMISSION-SIG"], auth_algo="SHA1withRSA")

    # then
    assert problem == "PAYPAL-AUTH-ALGO 'SHA1withRSA' is not accepted (only SHA256withRSA)"


@pytest.fixture
def vector_integration(db):
    cache.clear()
    connection = ConnectionFactory(system="paypal", credentials={"client_id": "c", "client_secret": "s",
                                                                 "webhook_id": VECTOR["webhook_id"]})
    return IntegrationFactory(tenant=connection.tenant, partner_connection=connection)


@pytest.fixture
def certificate_server():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.GET, HEADERS["PAYPAL-CERT-URL"], body=VECTOR["certificate"]["pem"],
                 content_type="application/x-pem-file")
        yield mock


def _verify(integration, headers=None, body=BODY):
    return PayPalWebhookVerifier().verify(integration=integration, headers=headers or dict(HEADERS), body=body,
                                          url="https://connector.example/webhooks/paypal/x/")


def test_the_verifier_takes_the_vector_at_the_time_it_was_sent_fetching_the_certificate_once(
        vector_integration, certificate_server):
    # when
    with time_machine.travel(SENT, tick=False):
        verdicts = [_verify(vector_integration), _verify(vector_integration)]

    # then
    assert [verdict.ok for verdict in verdicts] == [True, True]
    assert len(certificate_server.calls) == 1
    assert list(HttpExchange.objects.values_list("url", "status_code")) == [(HEADERS["PAYPAL-CERT-URL"], 200)]


def test_the_vector_is_refused_today_because_its_certificate_expired(vector_integration, certificate_server):
    # given
    headers = dict(HEADERS, **{"PAYPAL-TRANSMISSION-TIME": "2026-03-02T10:15:00Z"})

    # when
    with time_machine.travel(datetime(2026, 3, 2, 10, 15, 30, tzinfo=UTC), tick=False):
        verdict = _verify(vector_integration, headers)

    # then
    assert (verdict.ok, verdict.reason) == (False, "certificate expired 2017-03-22 12:00 UTC")


@pytest.mark.parametrize("offset", [timedelta(minutes=-5, seconds=-1), timedelta(minutes=5, seconds=1)])
def test_a_transmission_time_outside_five_minutes_is_refused_before_any_fetch(vector_integration,
                                                                               certificate_server, offset):
    # when
    with time_machine.travel(datetime(2015, 5, 18, 15, 45, 13, tzinfo=UTC) - offset, tick=False):
        verdict = _verify(vector_integration)

    # then
    assert not verdict.ok
    assert verdict.reason == ("transmission time 2015-05-18T15:45:13Z is outside the 300 s tolerance "
                              "(replayed or delayed delivery)")
    assert len(certificate_server.calls) == 0


def test_the_tolerance_is_a_setting_of_the_integration(vector_integration, certificate_server):
    # given
    vector_integration.settings = {"webhook_max_age_seconds": 900}

    # when
    with time_machine.travel(datetime(2015, 5, 18, 15, 55, 13, tzinfo=UTC), tick=False):
        verdict = _verify(vector_integration)

    # then
    assert verdict.ok


def test_a_connection_without_webhook_id_refuses_every_delivery(db):
    # given
    connection = ConnectionFactory(system="paypal", credentials={"client_id": "c", "client_secret": "s"})
    integration = IntegrationFactory(tenant=connection.tenant, partner_connection=connection)

    # when
    verdict = _verify(integration)

    # then
    assert verdict.reason == "no webhook_id on the PayPal connection: deliveries cannot be verified"


def test_a_delivery_missing_a_header_is_refused(vector_integration):
    # given
    headers = {name: value for name, value in HEADERS.items() if name != "PAYPAL-TRANSMISSION-SIG"}

    # when
    verdict = _verify(vector_integration, headers)

    # then
    assert verdict.reason == "missing header(s) PAYPAL-TRANSMISSION-SIG"


def test_headers_are_found_whatever_their_case(vector_integration, certificate_server):
    # given: Django hands headers over title-cased
    headers = {name.title(): value for name, value in HEADERS.items()}

    # when
    with time_machine.travel(SENT, tick=False):
        verdict = _verify(vector_integration, headers)

    # then
    assert verdict.ok


def test_a_redirecting_certificate_url_is_refused(vector_integration):
    # given
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, HEADERS["PAYPAL-CERT-URL"], status=302,
                 headers={"Location": "https://evil.example/cert.pem"})

        # when
        with time_machine.travel(SENT, tick=False):
            verdict = _verify(vector_integration)

    # then
    assert not verdict.ok
    assert verdict.reason.startswith("certificate could not be fetched")


@pytest.mark.parametrize("url, problem", [
    ("http://api.paypal.com/v1/notifications/certs/CERT-1", "certificate URL must be https, not http"),
    ("https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
     "certificate host api.paypal.com.evil.example is not allowed (allowed: api.paypal.com, api-m.paypal.com, "
     "api.sandbox.paypal.com, api-m.sandbox.paypal.com)"),
    ("https://api.paypal.com/v1/oauth2/token", "certificate URL path /v1/oauth2/token is not under "
                                               "/v1/notifications/certs/"),
    ("https://api.paypal.com:8443/v1/notifications/certs/CERT-1", "certificate URL port 8443 is not 443"),
    ("https://user:pw@api.paypal.com/v1/notifications/certs/CERT-1", "certificate URL carries credentials"),
    ("https://api-m.paypal.com/v1/notifications/certs/CERT-1", None),
    ("https://api.sandbox.paypal.com/v1/notifications/certs/CERT-1", None),
])
def test_certificate_urls_must_be_https_on_paypals_hosts(url, problem):
    # then
    assert paypal_cert_url_problem(url) == problem


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/sandbox/paypal/certs/CERT-1",
    "https://127.0.0.1/v1/notifications/certs/CERT-1",
    "http://localhost:8000/sandbox/paypal/certs/CERT-1",
    "http://[::1]:8000/sandbox/paypal/certs/CERT-1",
    "http://127.0.0.2:8000/sandbox/paypal/certs/CERT-1",
])
def test_a_loopback_certificate_url_off_the_allow_list_is_refused_even_with_the_sandbox_on(url):
    # then
    with override_settings(SANDBOX_ENABLED=True):
        assert paypal_cert_url_problem(url).startswith("certificate host ")
        assert "is not allowed (allowed: api.paypal.com, " in paypal_cert_url_problem(url)


def test_the_sandbox_host_on_the_allow_list_is_the_one_loopback_address_accepted():
    # given the allow-list the sandbox sets up: PayPal's hosts and its own host:port
    hosts = ["api.paypal.com", "127.0.0.1:8000"]

    # then
    with override_settings(SANDBOX_ENABLED=True):
        assert paypal_cert_url_problem("http://127.0.0.1:8000/sandbox/paypal/certs/CERT-1", allowed_hosts=hosts) is None
        assert paypal_cert_url_problem("http://127.0.0.1:8001/sandbox/paypal/certs/CERT-1", allowed_hosts=hosts) == (
            "certificate host 127.0.0.1:8001 is not allowed (allowed: api.paypal.com, 127.0.0.1:8000)")
        assert paypal_cert_url_problem("http://localhost:8000/sandbox/paypal/certs/CERT-1", allowed_hosts=hosts) == (
            "certificate host localhost:8000 is not allowed (allowed: api.paypal.com, 127.0.0.1:8000)")


def test_plain_http_from_the_sandbox_host_is_refused_once_the_sandbox_is_off():
    # then
    with override_settings(SANDBOX_ENABLED=False):
        assert paypal_cert_url_problem("http://127.0.0.1:8000/sandbox/paypal/certs/CERT-1",
                                       allowed_hosts=["127.0.0.1:8000"]) == "certificate URL must be https, not http"


def test_plain_http_is_refused_from_an_allowed_host_that_is_not_loopback():
    # then
    with override_settings(SANDBOX_ENABLED=True):
        assert paypal_cert_url_problem("http://certs.internal.example:8000/pp.pem",
                                       allowed_hosts=["certs.internal.example:8000"]) == (
            "certificate URL must be https, not http")


def test_an_integration_may_allow_its_own_certificate_hosts():
    # then
    assert paypal_cert_url_problem("https://certs.internal.example/pp.pem",
                                   allowed_hosts=["certs.internal.example"]) is None
    assert paypal_cert_url_problem("https://api.paypal.com/v1/notifications/certs/CERT-1",
                                   allowed_hosts=["certs.internal.example"]).startswith(
        "certificate host api.paypal.com is not allowed")


def test_the_envelope_gives_the_event_id_and_type():
    # when
    [event] = PayPalWebhookVerifier().parse(headers={}, body=json.dumps(payload("webhook_capture_completed.json"))
                                            .encode())

    # then
    assert (event.event_id, event.event_type) == ("WH-58D329510W468432D-8HN650336L201105X",
                                                  "PAYMENT.CAPTURE.COMPLETED")


@pytest.mark.parametrize("body, problem", [
    (b"not json", "body is not JSON"),
    (b"[]", "body is not a JSON object"),
    (b'{"event_type": "PAYMENT.CAPTURE.COMPLETED"}', "field id is missing"),
])
def test_a_malformed_envelope_is_refused_naming_the_problem(body, problem):
    # when
    with pytest.raises(ValueError) as raised:
        PayPalWebhookVerifier().parse(headers={}, body=body)

    # then
    assert str(raised.value).startswith(problem)


@pytest.mark.parametrize("name, touched", [
    ("webhook_capture_completed.json", [("captures", "2GG279541U471931P")]),
    ("webhook_capture_refunded.json", [("refunds", "1JU08902781691411")]),
    ("webhook_capture_reversed.json", [("reversals", "09E71677NS257044M")]),
    ("webhook_invoice_paid.json", [("invoices", "INV2-Z56S-5LLA-Q52L-CPZ5"), ("captures", "6HN14583PX8471043")]),
])
def test_each_event_names_the_objects_to_read_again(name, touched):
    # then
    assert paypal_event_objects(payload(name)) == touched


def test_an_event_no_stream_cares_about_touches_nothing(db):
    # given
    event = InboundEvent(event_id="WH-1", event_type="PAYMENT.AUTHORIZATION.CREATED",
                         body=json.dumps({"id": "WH-1", "event_type": "PAYMENT.AUTHORIZATION.CREATED",
                                          "resource": {"id": "0VF52814937998046"}}))

    # when
    touched = PayPalWebhookVerifier().objects_touched(event)

    # then
    assert touched == []
