"""The PayPal emulator's seed: an app, the signing certificate, a webhook subscription and demo money movements."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from django.db import transaction

from .models import PayPalApp, PayPalObject
from .paypal import (
    PAYPAL_SANDBOX_APP_ID,
    PAYPAL_SANDBOX_CLIENT_ID,
    PAYPAL_SANDBOX_CLIENT_SECRET,
    Payer,
    paypal_capture_create,
    paypal_invoice_create,
    paypal_invoice_pay,
    paypal_invoice_send,
    paypal_now,
    paypal_refund_create,
)
from .paypal_webhooks import paypal_certificate_ensure, paypal_webhook_subscribe

# The webhook id of examples/tenant.json, so the demo tenant verifies the sandbox's deliveries.
PAYPAL_SANDBOX_WEBHOOK_ID = "8PT597110X687430LKGECATA"

# Demo buyers; the last has no Visma customer on purpose (its payments are flagged for review).
ANNA = Payer("QYR5Z8XDVJNXQ", "orders@nordic-outdoor.example", "Anna", "Lindqvist", "SE")
OLA = Payer("7E9KPHR2Z4WQA", "post@fjordline-sport.example", "Ola", "Nordmann", "NO")
MIKKO = Payer("M3XK8D2QJRB5P", "info@helsinki-trail.example", "Mikko", "Virtanen", "FI")
GUEST = Payer("ZQ7N4R8K2WXPL", "guest.buyer@example.com", "Guest", "Buyer", "DE")
# Payer id → the seed Visma company's customer it stands for (see sandbox/visma_seed.py).
DEMO_PAYER_CUSTOMERS = {ANNA.payer_id: "10001", OLA.payer_id: "10002", MIKKO.payer_id: "10004"}


@dataclass(frozen=True)
class PayPalSeed:
    app: PayPalApp
    webhook_id: str
    webhook_url: str
    cert_id: str
    demo_created: bool


def paypal_app_ensure(*, base_url: str, client_id: str = PAYPAL_SANDBOX_CLIENT_ID,
                      client_secret: str = PAYPAL_SANDBOX_CLIENT_SECRET) -> PayPalApp:
    app, _ = PayPalApp.objects.update_or_create(
        client_id=client_id,
        defaults={"client_secret": client_secret, "app_id": PAYPAL_SANDBOX_APP_ID, "base_url": base_url.rstrip("/")},
    )
    return app


def paypal_demo_data_create() -> bool:
    """Captures with fees in EUR and NOK, a partial and a two-part full refund, a payment of Visma invoice WEB-1002,
    a payment by a buyer no customer is mapped to, and a PayPal invoice sent and paid. Once only."""
    if PayPalObject.objects.filter(kind="capture").exists():
        return False
    now = paypal_now()
    days = lambda count, hours=0: now - timedelta(days=count, hours=hours)  # noqa: E731
    with transaction.atomic():
        paypal_capture_create(amount=Decimal("149.00"), currency="EUR", payer=MIKKO, at=days(6), notify=False)
        boots = paypal_capture_create(amount=Decimal("1250.00"), currency="NOK", payer=OLA, at=days(5), notify=False)
        paypal_refund_create(boots.object_id, amount=Decimal("250.00"), at=days(4), notify=False)
        paypal_capture_create(amount=Decimal("89.90"), currency="EUR", payer=GUEST, at=days(3), notify=False)
        paypal_capture_create(amount=Decimal("120.00"), currency="EUR", payer=MIKKO, invoice_id="WEB-1002",
                              at=days(2, 6), notify=False)
        tent = paypal_capture_create(amount=Decimal("499.00"), currency="NOK", payer=OLA, at=days(2), notify=False)
        paypal_refund_create(tent.object_id, amount=Decimal("199.00"), at=days(1, 12), notify=False)
        paypal_refund_create(tent.object_id, at=days(1, 6), notify=False)
        invoice = paypal_invoice_create({
            "detail": {"currency_code": "EUR", "invoice_number": "PP-2026-0001", "note": "Thank you for your order.",
                       "payment_term": {"term_type": "NET_14"}},
            "primary_recipients": [{"billing_info": {"name": {"given_name": "Mikko", "surname": "Virtanen"},
                                                     "email_address": MIKKO.email}}],
            "items": [
                {"name": "Guided trail day", "quantity": "2", "unit_amount": {"currency_code": "EUR", "value": "85.00"},
                 "unit_of_measure": "QUANTITY"},
                {"name": "Trail map set", "quantity": "1", "unit_amount": {"currency_code": "EUR", "value": "24.50"},
                 "unit_of_measure": "QUANTITY"},
            ],
        }, at=days(3, 2), notify=False)
        paypal_invoice_send(invoice.object_id, at=days(3, 1), notify=False)
        paypal_invoice_pay(invoice.object_id, payer=MIKKO, at=days(1), notify=False)
    return True


def paypal_sandbox_seed(*, base_url: str, client_id: str = PAYPAL_SANDBOX_CLIENT_ID,
                        client_secret: str = PAYPAL_SANDBOX_CLIENT_SECRET, webhook_id: str = PAYPAL_SANDBOX_WEBHOOK_ID,
                        webhook_url: str = "", demo: bool = True) -> PayPalSeed:
    """The app (client credentials), the signing certificate, a webhook subscription when a listener URL is given,
    and the demo data. `base_url` is where the emulator answers, e.g. http://127.0.0.1:8000/sandbox/paypal.
    Running it twice changes nothing."""
    with transaction.atomic():
        app = paypal_app_ensure(base_url=base_url, client_id=client_id, client_secret=client_secret)
        certificate = paypal_certificate_ensure()
        if webhook_url:
            paypal_webhook_subscribe(webhook_url, webhook_id=webhook_id)
    created = paypal_demo_data_create() if demo else False
    return PayPalSeed(app=app, webhook_id=webhook_id, webhook_url=webhook_url, cert_id=certificate.cert_id,
                      demo_created=created)


def paypal_sandbox_seed_for_tenant(slug: str, *, origin: str, demo: bool = True) -> PayPalSeed:
    """Seed the emulator for a tenant whose PayPal connection points at it: the app takes the connection's client
    id and secret, the subscription its webhook id and the integration's webhook address, and the demo payers are
    mapped to the seed company's customers (all but the guest)."""
    from connectors.models import Integration
    from mappings.models import ExternalReference

    integration = Integration.objects.select_related("tenant", "partner_connection").get(
        tenant__slug=slug, kind="paypal"
    )
    credentials = integration.partner_connection.credentials or {}
    origin = origin.rstrip("/")
    base_url = integration.partner_connection.base_url.rstrip("/")
    if urlsplit(base_url).netloc != urlsplit(origin).netloc:
        base_url = f"{origin}/sandbox/paypal"
    seed = paypal_sandbox_seed(
        base_url=base_url, client_id=str(credentials["client_id"]), client_secret=str(credentials["client_secret"]),
        webhook_id=str(credentials.get("webhook_id") or PAYPAL_SANDBOX_WEBHOOK_ID),
        webhook_url=f"{origin}{integration.webhook_path}", demo=demo,
    )
    for payer_id, customer in DEMO_PAYER_CUSTOMERS.items():
        ExternalReference.objects.update_or_create(
            tenant=integration.tenant, system="paypal", external_kind="payer", external_id=payer_id,
            defaults={"visma_kind": "customer", "visma_id": customer},
        )
    return seed
