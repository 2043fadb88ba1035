"""The demo shows Stripe working: the sandbox Stripe's demo invoices (paid, failed, disputed, refunded) become
Visma documents through the example tenant's rules, every record posted, none flagged."""
import gc

import pytest

from audit.models import SyncRecord
from connectors.provisioning import demo_tenant_load
from connectors.stripe.client import StripeApi
from sandbox.models import VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID, visma_sandbox_seed
from tests.paypal.world import live_connections_close

from .helpers import run


@pytest.fixture
def demo(transactional_db, live_server):
    visma_sandbox_seed()
    # what demo_setup loads (its logins need the permission groups a transactional test's flush removes)
    demo_tenant_load(live_server.url)
    run("stripe_sandbox_seed", "--base-url", live_server.url, "--tenant", "nordlys-friluft")
    run("refresh_reference", "nordlys-friluft", "--full")
    yield live_server.url
    gc.collect()
    for api in [found for found in gc.get_objects() if issubclass(type(found), StripeApi)]:
        api.close()
    live_connections_close()


def test_the_demos_stripe_records_are_all_posted(demo):
    # when
    run("sync", "nordlys-friluft", "stripe")

    # then
    records = SyncRecord.objects.filter(integration__kind="stripe")
    by_stream = sorted((record.stream, record.status, record.target_kind) for record in records)
    assert [(record.stream, record.source_id, record.reasons) for record in records
            if record.status != "posted"] == []
    assert by_stream == [
        ("charges", "posted", "customer_payment"), ("charges", "posted", "customer_payment"),
        ("charges", "posted", "customer_payment"), ("charges", "posted", "invoice_note"),
        ("disputes", "posted", "invoice_note"), ("disputes", "posted", "journal"),
        ("refunds", "posted", "credit_note"),
    ]
    payments = VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_payment")
    # Three payments of invoices, and the refund paying out the credit note of 100001's refunded share.
    assert sorted((payment.body["type"], line["documentType"], line["refNbr"]) for payment in payments
                  for line in payment.body["paymentLines"]) == [
        ("Payment", "Invoice", "100001"), ("Payment", "Invoice", "100003"), ("Payment", "Invoice", "100005"),
        ("Refund", "CreditNote", "500001")]
    notes = VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_invoice",
                                      key="100003").body["note"]
    assert "declined" in notes and "dispute" in notes


def test_after_the_paypal_demo_every_stripe_record_is_still_posted(demo):
    # given: the PayPal demo first, as scripts/start runs it (its webshop capture pays Visma invoice 100002)
    run("paypal_sandbox_seed", "--base-url", demo, "--tenant", "nordlys-friluft")
    run("sync", "nordlys-friluft", "paypal")

    # when
    run("sync", "nordlys-friluft", "stripe")

    # then: no invoice is paid twice (Visma takes no payment on a closed invoice), so no Stripe record is flagged
    assert [(record.stream, record.source_id, record.reasons) for record in
            SyncRecord.objects.filter(integration__kind="stripe").exclude(status="posted")] == []
    paid = VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_payment")
    paid_invoices = [line["refNbr"] for payment in paid for line in payment.body["paymentLines"]
                     if line["documentType"] == "Invoice"]
    assert len(paid_invoices) == len(set(paid_invoices))


def test_the_example_tenants_payment_rules_carry_the_exchange_difference_account(demo):
    # then: a converted payment finds its account (docs/currencies.md); Square payments are in their location's
    # currency, one in another is flagged (docs/square.md §6), so its rules need none
    from mappings.models import GLMappingRule

    assert sorted(GLMappingRule.objects.filter(transaction_type__in=("invoice_payment", "capture")).exclude(
        system="square").values_list(
        "system", "transaction_type", "exchange_difference_account")) == [
        ("paypal", "capture", "7960"), ("paypal", "capture", "7960"), ("paypal", "invoice_payment", "7960"),
        ("stripe", "invoice_payment", "7960")]
