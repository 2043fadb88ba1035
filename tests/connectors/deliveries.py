"""Webhook deliveries signed the way each vendor signs them, for the intake's hostile-input and fuzz tests.

Stripe with the official library's helper; PayPal with the sandbox's certificate, over the string PayPal documents
(served to the verifier from an allow-listed host by `responses`); Visma with the dispatcher's HMAC-SHA256, base64.
Each vendor also knows its envelope, so a test can put anything at the event id or inside the event.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass, field

import responses
import stripe
from django.core.cache import cache
from django.utils import timezone

from connectors.models import Integration
from connectors.paypal.webhooks import PAYPAL_CERT_HOSTS, paypal_signed_message
from sandbox.paypal import paypal_time_format
from sandbox.paypal_webhooks import paypal_certificate_ensure, paypal_sign
from tests.factories import ConnectionFactory, IntegrationFactory

STRIPE_SECRET = "whsec_fuzz_s3cr3t"
PAYPAL_WEBHOOK_ID = "8PT597110X687430LKGECATA"
VISMA_SECRET = "vwd-fuzz-key"
SANDBOX_HOST = "127.0.0.1:8000"


@dataclass
class Vendor:
    kind: str
    integration: Integration
    sign_headers: object = field(repr=False)
    envelope_text: str = ""

    @property
    def path(self) -> str:
        return f"/webhooks/{self.kind}/{self.integration.pk}/"

    def envelope(self, *, event_id_json: str = '"evt_1"', inside: str = "{}") -> bytes:
        """A delivery with the event id written as the JSON text given, and `inside` as the event's object."""
        return (self.envelope_text % {"id": event_id_json, "inside": inside}).encode("utf-8")

    def signed(self, body: bytes) -> dict[str, str]:
        return self.sign_headers(body)


def stripe_vendor() -> Vendor:
    connection = ConnectionFactory(system="stripe", credentials={"secret_key": "sk_test_fuzz",
                                                                 "webhook_secrets": [STRIPE_SECRET]})
    integration = IntegrationFactory(kind="stripe", tenant=connection.tenant, partner_connection=connection,
                                     settings={})

    def sign(body: bytes) -> dict[str, str]:
        header = stripe.WebhookSignature.generate_signature_header(body.decode("utf-8"), STRIPE_SECRET,
                                                                   timestamp=int(time.time()))
        return {"Stripe-Signature": header}

    return Vendor("stripe", integration, sign,
                  '{"id": %(id)s, "object": "event", "type": "charge.succeeded", "data": {"object": %(inside)s}}')


def paypal_vendor(mock: responses.RequestsMock) -> Vendor:
    """PayPal, its certificate served at the sandbox's allow-listed host through `mock`."""
    cache.clear()
    certificate = paypal_certificate_ensure()
    cert_url = f"http://{SANDBOX_HOST}/sandbox/paypal/certs/{certificate.cert_id}"
    mock.add(responses.GET, cert_url, body=certificate.certificate_pem, content_type="application/x-pem-file")
    connection = ConnectionFactory(system="paypal", credentials={"client_id": "c", "client_secret": "s",
                                                                 "webhook_id": PAYPAL_WEBHOOK_ID})
    integration = IntegrationFactory(kind="paypal", tenant=connection.tenant, partner_connection=connection,
                                     settings={"cert_hosts": [*PAYPAL_CERT_HOSTS, SANDBOX_HOST]})

    def sign(body: bytes) -> dict[str, str]:
        transmission_id, sent = str(uuid.uuid1()), paypal_time_format(timezone.now())
        message = paypal_signed_message(transmission_id=transmission_id, transmission_time=sent,
                                        webhook_id=PAYPAL_WEBHOOK_ID, body=body)
        return {"PAYPAL-TRANSMISSION-ID": transmission_id, "PAYPAL-TRANSMISSION-TIME": sent,
                "PAYPAL-TRANSMISSION-SIG": paypal_sign(message, certificate), "PAYPAL-CERT-URL": cert_url,
                "PAYPAL-AUTH-ALGO": "SHA256withRSA"}

    return Vendor("paypal", integration, sign,
                  '{"id": %(id)s, "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": %(inside)s}')


def visma_vendor() -> Vendor:
    visma = ConnectionFactory(system="visma")
    visma.credentials = {**visma.credentials, "webhook_secrets": [VISMA_SECRET]}
    visma.save()
    integration = IntegrationFactory(tenant=visma.tenant, visma_connection=visma)

    def sign(body: bytes) -> dict[str, str]:
        digest = hmac.new(VISMA_SECRET.encode(), body, hashlib.sha256).digest()
        return {"x-vwd-signature-v1": base64.b64encode(digest).decode()}

    return Vendor("visma", integration, sign, '[{"notificationId": %(id)s, "event": "customer_changed", '
                                              '"contextId": "1234567", "resource": %(inside)s}]')


def stored_events_readable(vendor: Vendor) -> None:
    """Every stored event reads back as JSON: what the worker will do with it."""
    for event in vendor.integration.inbound_events.all():
        json.loads(event.body)
