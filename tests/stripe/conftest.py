"""Stripe test helpers: recorded payloads and Stripe-Signature headers made with the official library's helper."""
import json
import time
from pathlib import Path

import pytest
import requests
import stripe

PAYLOADS = Path(__file__).parent / "payloads"


def payload_text(name: str) -> str:
    return (PAYLOADS / name).read_text()


def payload(name: str) -> dict:
    return json.loads(payload_text(name))


def stripe_signature(body: str, secret: str, *, timestamp: int | None = None) -> str:
    """The Stripe-Signature header Stripe would send, from the library's own test helper."""
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp or int(time.time()))


SECRET_KEY = "sk_test_51Nordlys0Sandbox"
WEBHOOK_SECRET = "whsec_sandbox_s3cr3t"


@pytest.fixture
def stripe_account(db):
    from sandbox.models import StripeAccount

    return StripeAccount.objects.create(secret_key=SECRET_KEY, name="Nordlys AS", default_currency="nok")


@pytest.fixture
def sandbox_stripe(live_server, stripe_account):
    """The official library, unchanged, pointed at the emulator over real HTTP."""
    session = requests.Session()
    yield stripe.StripeClient(SECRET_KEY, base_addresses={"api": f"{live_server.url}/sandbox/stripe"},
                              max_network_retries=0, http_client=stripe.RequestsClient(session=session))
    session.close()


def invoice_charge_id(client: stripe.StripeClient, invoice_id: str) -> str:
    """The charge that paid (or tried to pay) a Stripe invoice, found as the pinned API version allows: the invoice's
    InvoicePayment names its payment intent, whose latest_charge is the charge (no Invoice.charge any more)."""
    [payment] = client.v1.invoice_payments.list({"invoice": invoice_id}).data
    assert payment.payment.type == "payment_intent"
    return client.v1.payment_intents.retrieve(payment.payment.payment_intent).latest_charge
