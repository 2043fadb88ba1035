"""Stripe → Visma over real HTTP, both emulators live: a paid invoice becomes a customer payment applied to the Visma
invoice with the fee in its own journal; a declined card and a dispute become notes on the Visma invoice (If-Match);
the events poll catches what a missed webhook did not bring."""
import gc
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import stripe
from django.utils import timezone

import connectors.stripe  # noqa: F401  (registers the Stripe kind until connectors/apps.py imports it)
from audit.models import SyncRecord
from connectors.models import Connection, InboundEvent, Integration, Tenant
from connectors.pipeline import stream_poll
from connectors.services import inbox_process, integration_save
from connectors.stripe.client import StripeApi
from mappings.models import GLMappingRule
from mappings.reference import reference_data_refresh
from sandbox.models import StripeAccount, VismaDocument
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_sandbox_seed,
)
from sandbox.stripe_webhooks import stripe_events_deliver
from tests.paypal.world import journal_lines, live_connections_close
from mappings.documents import posting_marker_part
from tests.factories import stream_marker
from tests.stripe.conftest import invoice_charge_id

SECRET_KEY = "sk_test_51NordlysE2E"
WEBHOOK_SECRET = "whsec_nordlys_e2e"


class StripeWorld:
    def __init__(self, url: str):
        visma_sandbox_seed()
        self.tenant = Tenant.objects.create(slug="nordlys", name="Nordlys Friluft AS")
        visma = Connection.objects.create(
            tenant=self.tenant, system="visma", base_url=f"{url}/sandbox/visma",
            token_url=f"{url}/sandbox/visma/connect/token",
            credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                         "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID})
        partner = Connection.objects.create(tenant=self.tenant, system="stripe", base_url=f"{url}/sandbox/stripe",
                                            credentials={"secret_key": SECRET_KEY,
                                                         "webhook_secrets": [WEBHOOK_SECRET]})
        self.integration = integration_save(Integration(tenant=self.tenant, kind="stripe", visma_connection=visma,
                                                        partner_connection=partner))
        self.account = StripeAccount.objects.create(
            secret_key=SECRET_KEY, webhook_secret=WEBHOOK_SECRET, default_currency="eur",
            webhook_url=f"{url}{self.integration.webhook_path}")
        reference_data_refresh(self.tenant, full=True)
        GLMappingRule.objects.create(tenant=self.tenant, system="stripe", name="Stripe payments of invoices",
                                     priority=10, transaction_type="invoice_payment", gl_account="1510",
                                     fee_account="7770", clearing_account="1580", dimensions={"1": "100"})
        self.session = requests.Session()
        self.stripe = stripe.StripeClient(SECRET_KEY, base_addresses={"api": f"{url}/sandbox/stripe"},
                                          max_network_retries=0,
                                          http_client=stripe.RequestsClient(session=self.session))

    def stripe_invoice_for(self, visma_invoice: str, amount: int, currency: str) -> str:
        customer = self.stripe.v1.customers.create({"name": "Helsinki Trail Oy"})
        invoice = self.stripe.v1.invoices.create({"customer": customer.id, "collection_method": "send_invoice",
                                                  "days_until_due": 14, "currency": currency,
                                                  "metadata": {"visma_invoice": visma_invoice}})
        self.stripe.v1.invoice_items.create({"customer": customer.id, "invoice": invoice.id, "amount": amount,
                                             "currency": currency})
        self.stripe.v1.invoices.finalize_invoice(invoice.id)
        return invoice.id

    def charge_of(self, invoice_id: str) -> str:
        """The charge that paid (or tried to pay) a Stripe invoice, through its InvoicePayment (no Invoice.charge)."""
        return invoice_charge_id(self.stripe, invoice_id)

    def deliver_and_process(self) -> tuple[int, int]:
        return stripe_events_deliver(self.account), inbox_process()

    def record(self, stream: str, source_id: str) -> SyncRecord:
        return SyncRecord.objects.get(integration=self.integration, stream=stream, source_id=source_id)

    def marker(self, stream: str, source_id: str, part: str = "") -> str:
        """The marker the pipeline gives this stream's source object (or a part of it, e.g. its "fee" journal)."""
        marker = stream_marker(self.integration, stream, source_id)
        return posting_marker_part(marker, part) if part else marker

    @staticmethod
    def visma(collection: str, key: str | None = None):
        documents = VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID, collection=collection)
        return documents.get(key=key).body if key else [document.body for document in documents.order_by("id")]


@pytest.fixture
def world(transactional_db, live_server):
    built = StripeWorld(live_server.url)
    yield built
    built.session.close()
    gc.collect()
    # type(), not isinstance(): that would wake lazy objects, and django-csp's spent request.csp_nonce raises.
    for api in [found for found in gc.get_objects() if issubclass(type(found), StripeApi)]:
        api.close()
    live_connections_close()


def test_a_paid_stripe_invoice_becomes_a_customer_payment_with_the_fee_journal(world):
    # given: Visma invoice 100002 is EUR 120.00 for customer 10004
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    paid = world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})

    # when
    delivered, _ = world.deliver_and_process()

    # then
    charge_id = world.charge_of(paid.id)
    record = world.record("charges", charge_id)
    assert (record.status, record.target_kind) == ("posted", "customer_payment")
    [payment] = world.visma("customer_payment")
    assert record.target_id.startswith(f"payment {payment['refNbr']} + journal ")
    assert (payment["customer"]["number"], payment["paymentRef"], Decimal(str(payment["paymentAmount"])),
            payment["currency"]) == ("10004", world.marker("charges", charge_id), Decimal("120.00"), "EUR")
    assert [(line["refNbr"], Decimal(str(line["amountPaid"]))) for line in payment["paymentLines"]] == [
        ("100002", Decimal("120.00"))]
    # released (the tenant's default), so it settled the invoice: balance 0, and the record says so in Visma's words
    assert (payment["status"], record.target_status) == ("Closed", "Closed")
    invoice = world.visma("customer_invoice", "100002")
    assert (Decimal(str(invoice["balanceInCurrency"])), invoice["status"]) == (Decimal("0.00"), "Closed")
    # 2.9 % of 120.00 = 3.48, plus 0.25
    [fee_journal] = [journal for journal in world.visma("journal")
                     if journal["journalTransactionLines"][0]["referenceNumber"]
                     == world.marker("charges", charge_id, "fee")]
    assert journal_lines(fee_journal) == [("7770", "3.73", "0.00"), ("1580", "0.00", "3.73")]
    # charge.succeeded names the charge; invoice.paid cannot (no Invoice.charge, payments not included): one record
    assert SyncRecord.objects.filter(integration=world.integration).count() == 1
    assert [(event.event_type, event.status) for event in InboundEvent.objects.filter(
        event_type__in=("charge.succeeded", "invoice.paid")).order_by("id")] == [
        ("charge.succeeded", "processed"), ("invoice.paid", "ignored")]
    assert delivered == 5


def test_a_declined_card_is_noted_on_the_visma_invoice(world):
    # given
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    with pytest.raises(stripe.CardError):
        world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_chargeDeclined"})
    charge_id = world.charge_of(invoice_id)

    # when
    world.deliver_and_process()

    # then
    record = world.record("charges", charge_id)
    assert (record.status, record.target_kind, record.target_id) == ("posted", "invoice_note", "100002")
    today = timezone.now().date()
    assert world.visma("customer_invoice", "100002")["note"] == (
        f"[{world.marker('charges', charge_id)}] Stripe charge {charge_id} of 120.00 EUR failed on {today}: "
        "Your card was declined. (card_declined)")
    assert world.visma("customer_payment") == []


def test_a_dispute_is_noted_on_the_invoice_its_charge_paid_once_per_status(world):
    # given: a charge for Visma invoice 100001 (SEK 1250.00, customer 10001), disputed at once
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_createDispute",
                                             "metadata": {"visma_invoice": "100001"}})
    world.deliver_and_process()
    [dispute] = world.stripe.v1.disputes.list({"charge": charge.id}).data

    # when
    world.stripe.v1.disputes.close(dispute.id)
    world.deliver_and_process()

    # then
    assert world.record("charges", charge.id).status == "posted"
    assert world.record("disputes", f"{dispute.id}:needs_response").status == "posted"
    assert world.record("disputes", f"{dispute.id}:lost").status == "posted"
    due = (timezone.now() + timedelta(days=7)).date()
    assert world.visma("customer_invoice", "100001")["note"].splitlines() == [
        (f"[{world.marker('disputes', dispute.id + ':needs_response')}] Stripe dispute {dispute.id} of 1250.00 SEK "
         "(fraudulent), "
         f"charge {charge.id}: evidence due {due}"),
        (f"[{world.marker('disputes', dispute.id + ':lost')}] Stripe dispute {dispute.id} of 1250.00 SEK (fraudulent), "
         f"charge {charge.id}: "
         "lost: the money was taken back"),
    ]


def test_a_charge_in_another_currency_than_the_visma_invoice_is_flagged(world):
    # given: Visma invoice 100002 is in EUR
    charge = world.stripe.v1.charges.create({"amount": 120000, "currency": "nok", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100002"}})

    # when
    world.deliver_and_process()

    # then
    record = world.record("charges", charge.id)
    assert record.status == "flagged"
    assert record.reasons == [f"charges {charge.id}: charge {charge.id} is in NOK; Visma invoice 100002 is in EUR"]
    assert world.visma("customer_payment") == []


def test_the_events_poll_posts_a_payment_whose_webhook_never_came(world):
    # given: no webhook endpoint, so nothing is delivered
    world.account.webhook_url = ""
    world.account.save()
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    paid = world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})

    # when
    run = stream_poll(world.integration, "charges")

    # then
    assert InboundEvent.objects.count() == 0
    assert world.record("charges", world.charge_of(paid.id)).status == "posted"
    assert len(world.visma("customer_payment")) == 1
    assert run.status == "completed"


def test_a_eur_invoice_paid_through_an_account_settling_in_sek_moves_clearing_by_stripes_net(world):
    # given: the Stripe account settles in SEK (the sandbox Visma company's base currency) and converts at 11.42;
    # Visma's EUR rate is 11.50. Visma invoice 100002 is EUR 120.00 for customer 10004
    world.account.settlement_currency = "sek"
    world.account.save()
    GLMappingRule.objects.filter(tenant=world.tenant).update(exchange_difference_account="7960")
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})
    charge_id = world.charge_of(invoice_id)

    # when
    world.deliver_and_process()

    # then: Stripe: 120.00 EUR × 11.42 = 1370.40 SEK, fee 2.9 % + 1.80 = 41.54, net 1328.86 SEK
    record = world.record("charges", charge_id)
    assert (record.status, record.target_kind) == ("posted", "customer_payment")
    [payment] = world.visma("customer_payment")
    assert (Decimal(str(payment["paymentAmount"])), payment["currency"]) == (Decimal("120.00"), "EUR")
    # applied in full to the invoice (the sandbox lowers its balance once the payment is released: ledger's item 6)
    assert [(line["refNbr"], Decimal(str(line["amountPaid"]))) for line in payment["paymentLines"]] == [
        ("100002", Decimal("120.00"))]
    [journal] = [journal for journal in world.visma("journal")
                 if journal["journalTransactionLines"][0]["referenceNumber"]
                 == world.marker("charges", charge_id, "fee")]
    assert journal["currencyId"] == "SEK"
    # the sale at Visma's rate is 1380.00 SEK; Stripe's rate gave 1370.40: 9.60 SEK exchange difference
    assert journal_lines(journal) == [("7770", "41.54", "0.00"), ("7960", "9.60", "0.00"), ("1580", "0.00", "51.14")]
    # the clearing account: the payment at Visma's rate, less the journal, is exactly what Stripe credited
    payment_in_sek = Decimal("120.00") * Decimal("11.50")
    assert payment_in_sek - Decimal("51.14") == Decimal("1328.86")


def test_a_refund_of_a_charge_stripe_converted_is_flagged_not_booked_in_the_wrong_currency(world):
    # given: a EUR invoice paid through an account settling in SEK, posted
    world.account.settlement_currency = "sek"
    world.account.save()
    GLMappingRule.objects.filter(tenant=world.tenant).update(exchange_difference_account="7960")
    GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe refunds", priority=20,
                                 transaction_type="refund", gl_account="3000", clearing_account="1580")
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})
    charge_id = world.charge_of(invoice_id)
    world.deliver_and_process()
    journals = len(world.visma("journal"))

    # when
    refund = world.stripe.v1.refunds.create({"charge": charge_id, "amount": 2000})
    world.deliver_and_process()

    # then
    record = world.record("refunds", refund.id)
    assert record.status == "flagged"
    assert record.reasons == [f"refunds {refund.id}: refund {refund.id} returns part of charge {charge_id}, which "
                              "Stripe settled in SEK: a converted refund is not booked automatically yet"]
    assert len(world.visma("journal")) == journals
