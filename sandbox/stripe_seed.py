"""The Stripe emulator's seed: an account (secret key, webhook endpoint and secret), demo customers and, when the
Visma sandbox holds its demo invoices, Stripe invoices for them: paid, failed, disputed and refunded."""
from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from . import stripe_api
from .models import StripeAccount, StripeObject, VismaDocument
from .stripe_api import DECLINED_TOKEN, DISPUTE_TOKEN, StripeApiError, ZERO_DECIMAL

STRIPE_SANDBOX_SECRET_KEY = "sk_test_51NordlysSandbox0000000000"
STRIPE_SANDBOX_WEBHOOK_SECRET = "whsec_nordlys_sandbox_0000000000"
# Demo customers, each naming the Visma customer it stands for (see sandbox/visma_seed.py).
DEMO_CUSTOMERS = (("Nordic Outdoor AB", "orders@nordic-outdoor.example", "10001"),
                  ("Fjordline Sport AS", "post@fjordline-sport.example", "10002"),
                  ("Helsinki Trail Oy", "info@helsinki-trail.example", "10004"))
# Demo Stripe invoices for the Visma sandbox's invoices (visma_seed._seed_documents), and what happens to each:
# one of Helsinki Trail's is paid (a Visma invoice of its own, STRIPE_PAID_REFERENCE: the PayPal demo pays 100002,
# and an invoice takes one payment); 100001 is paid, then part of it refunded; 100003's first card is declined, the
# second pays and is disputed.
STRIPE_PAID_REFERENCE = "STRIPE-DEMO-1"
DEMO_INVOICES = ((STRIPE_PAID_REFERENCE, "paid"), ("100001", "refunded"), ("100003", "failed, then disputed"))
DEMO_REFUND_SHARE = Decimal("0.2")


def stripe_sandbox_seed(*, secret_key: str = STRIPE_SANDBOX_SECRET_KEY, webhook_url: str = "",
                        webhook_secret: str = STRIPE_SANDBOX_WEBHOOK_SECRET, demo: bool = True) -> tuple[StripeAccount, int]:
    """The account (updated in place when it exists) and how many demo customers were created; twice changes nothing."""
    with transaction.atomic():
        account, _ = StripeAccount.objects.update_or_create(
            secret_key=secret_key, defaults={"name": "Nordlys AS (sandbox)", "webhook_url": webhook_url,
                                             "webhook_secret": webhook_secret, "default_currency": "nok"})
        created = 0
        if demo and not StripeObject.objects.filter(account=account, object_type="customer").exists():
            customers = {}
            for name, email, visma_customer in DEMO_CUSTOMERS:
                customers[visma_customer] = stripe_api.customer_create(
                    account, {"name": name, "email": email, "metadata": {"visma_customer": visma_customer}})
                created += 1
            stripe_demo_invoices(account, customers)
    return account, created


def _visma_stripe_invoice() -> str:
    """The number of the Visma sandbox invoice the demo pays only through Stripe (EUR 120.00 for Helsinki Trail, a tent
    on 3010, released): found by its externalReference, or written and released once."""
    from .services import VISMA_SANDBOX_COMPANY_ID
    from .visma_erp import customer_invoice_create, customer_invoice_release

    found = VismaDocument.objects.filter(collection="customer_invoice",
                                         body__externalReference=STRIPE_PAID_REFERENCE).first()
    if found is not None:
        return found.key
    value = lambda v: {"value": v}  # noqa: E731
    created = customer_invoice_create(VISMA_SANDBOX_COMPANY_ID, {
        "customerNumber": value("10004"), "currencyId": value("EUR"), "externalReference": value(STRIPE_PAID_REFERENCE),
        "paymentMethodId": value("STRIPE"), "invoiceText": value("Tent, paid by card"),
        "invoiceLines": [{"operation": "Insert", "description": value("Tent"), "quantity": value(1),
                          "unitPriceInCurrency": value(120.0), "accountNumber": value("3010"),
                          "subaccount": [{"segmentId": 1, "segmentValue": "100"}, {"segmentId": 2, "segmentValue": "P-200"}]}]})
    customer_invoice_release(VISMA_SANDBOX_COMPANY_ID, created.key)
    return created.key


def _visma_open_amount(number: str) -> tuple[str, str, Decimal] | None:
    """(Visma customer, currency, open amount) of a Visma sandbox invoice, or None when it is not there."""
    document = VismaDocument.objects.filter(collection="customer_invoice", key=number).first()
    if document is None:
        return None
    body = document.body
    return (str(body["customer"]["number"]), str(body["currencyId"]).lower(),
            Decimal(str(body.get("balanceInCurrency", body.get("amountInCurrency")))))


def stripe_demo_invoices(account: StripeAccount, customers: dict[str, dict]) -> list[str]:
    """The demo's Stripe invoices (DEMO_INVOICES), each naming its Visma invoice and customer in metadata; those whose
    Visma invoice or Stripe customer is missing are left out. Returns the Stripe invoice ids."""
    made = []
    for number, story in DEMO_INVOICES:
        if number == STRIPE_PAID_REFERENCE:
            if not VismaDocument.objects.filter(collection="customer", key="10004").exists():
                continue  # the Visma sandbox is not seeded
            number = _visma_stripe_invoice()
        found = _visma_open_amount(number)
        if found is None or found[0] not in customers:
            continue
        visma_customer, currency, amount = found
        minor = int(amount.scaleb(0 if currency in ZERO_DECIMAL else 2))
        customer = customers[visma_customer]["id"]
        invoice = stripe_api.invoice_create(account, {
            "customer": customer, "collection_method": "send_invoice", "days_until_due": "14", "currency": currency,
            "description": f"Invoice {number}",
            "metadata": {"visma_invoice": number, "visma_customer": visma_customer}})
        stripe_api.invoice_item_create(account, {"customer": customer, "invoice": invoice["id"], "amount": str(minor),
                                                 "currency": currency, "description": f"Visma invoice {number}"})
        stripe_api.invoice_send(account, invoice["id"], {})
        if story.startswith("failed"):
            try:
                stripe_api.invoice_pay(account, invoice["id"], {"source": DECLINED_TOKEN})
            except StripeApiError:
                pass  # the declined charge and its events stay, as on Stripe
        token = DISPUTE_TOKEN if story.endswith("disputed") else "tok_visa"
        stripe_api.invoice_pay(account, invoice["id"], {"source": token})
        if story == "refunded":
            intent = StripeObject.objects.get(account=account, object_type="invoice_payment",
                                              body__invoice=invoice["id"]).body["payment"]["payment_intent"]
            charge = stripe_api.object_get(account, "payment_intent", intent)["latest_charge"]
            stripe_api.refund_create(account, {"charge": charge, "amount": str(int(minor * DEMO_REFUND_SHARE)),
                                               "reason": "requested_by_customer"})
        made.append(invoice["id"])
    return made
