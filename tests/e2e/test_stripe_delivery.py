"""Stripe → Visma over real HTTP when delivery misbehaves: events sent twice and newest first end in the final state
once, and a Visma invoice edited by someone else while a note is written is read again and noted once."""
from decimal import Decimal

import pytest
import stripe
from django.utils import timezone

from audit.models import SyncRecord
from mappings.models import GLMappingRule
from connectors.models import HttpExchange, InboundEvent
from connectors.services import inbox_process
from sandbox.models import StripeObject, VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID, visma_fault_stale_puts
from sandbox.stripe_api import dispute_open, object_get
from sandbox.stripe_webhooks import stripe_event_send
from tests.e2e.test_stripe_payments import world  # noqa: F401


def _deliver_newest_first_twice(world) -> list[int]:  # noqa: F811
    """Every event the emulator holds, newest first, the whole run sent twice: what each delivery was answered."""
    events = list(StripeObject.objects.filter(account=world.account, object_type="event").order_by("-pk"))
    return [stripe_event_send(world.account, event) for _ in range(2) for event in events]


def _puts(path_end: str) -> list[int]:
    return list(HttpExchange.objects.filter(method="PUT", url__endswith=path_end).order_by("id")
                .values_list("status_code", flat=True))


def test_dispute_events_sent_twice_newest_first_end_in_one_payment_and_the_final_dispute_note(world):  # noqa: F811
    # given: a charge for Visma invoice 100001 (SEK 1250.00), disputed, then the dispute lost; nothing delivered yet
    GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe disputes", priority=30,
                                 transaction_type="dispute", gl_account="1510", fee_account="7770",
                                 clearing_account="1580", disputes_account="1590")
    world.account.webhook_url, webhook_url = "", world.account.webhook_url
    world.account.save()
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_createDispute",
                                             "metadata": {"visma_invoice": "100001"}})
    [dispute] = world.stripe.v1.disputes.list({"charge": charge.id}).data
    world.stripe.v1.disputes.close(dispute.id)
    world.account.webhook_url = webhook_url
    world.account.save()

    # when
    answers = _deliver_newest_first_twice(world)
    processed = inbox_process()

    # then
    assert answers == [200] * 8
    assert list(InboundEvent.objects.order_by("received_at").values_list("event_type", flat=True)) == [
        "charge.dispute.closed", "charge.dispute.funds_withdrawn", "charge.dispute.created", "charge.succeeded"]
    assert processed == 4
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"processed"}
    # each event re-reads the dispute as it is now (lost): the superseded status is never written; the money Stripe
    # took, named by every dispute event, is one record and one journal
    [withdrawn] = dispute.balance_transactions
    assert sorted(SyncRecord.objects.filter(integration=world.integration).values_list("stream", "source_id",
                                                                                         "status")) == sorted([
        ("charges", charge.id, "posted"), ("disputes", f"{dispute.id}:lost", "posted"),
        ("disputes", f"{dispute.id}:{withdrawn.id}", "posted")])
    assert len([journal for journal in world.visma("journal") if journal["journalTransactionLines"][0]
                ["referenceNumber"] == world.marker("disputes", f"{dispute.id}:{withdrawn.id}")]) == 1
    assert world.visma("customer_invoice", "100001")["note"] == (
        f"[{world.marker('disputes', dispute.id + ':lost')}] Stripe dispute {dispute.id} of 1250.00 SEK (fraudulent), "
        f"charge {charge.id}: "
        "lost: the money was taken back")
    [payment] = world.visma("customer_payment")
    assert (payment["paymentRef"], payment["customer"]["number"], Decimal(str(payment["paymentAmount"]))) == (
        world.marker("charges", charge.id), "10001", Decimal("1250.00"))
    fee_journals = [journal for journal in world.visma("journal")
                    if journal["journalTransactionLines"][0]["referenceNumber"]
                    == world.marker("charges", charge.id, "fee")]
    assert len(fee_journals) == 1


def test_a_failed_then_paid_invoice_sent_twice_newest_first_ends_in_one_note_and_one_payment(world):  # noqa: F811
    # given: Visma invoice 100002 (EUR 120.00); the first card is declined, the second pays
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    with pytest.raises(stripe.CardError):
        world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_chargeDeclined"})
    failed_charge = world.charge_of(invoice_id)
    paid = world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})

    # when
    answers = _deliver_newest_first_twice(world)
    inbox_process()

    # then
    assert set(answers) == {200}
    assert InboundEvent.objects.count() == len(answers) // 2
    assert sorted(SyncRecord.objects.filter(integration=world.integration).values_list("source_id", "status",
                                                                                         "target_kind")) == sorted([
        (failed_charge, "posted", "invoice_note"), (world.charge_of(paid.id), "posted", "customer_payment")])
    today = timezone.now().date()
    assert world.visma("customer_invoice", "100002")["note"] == (
        f"[{world.marker('charges', failed_charge)}] Stripe charge {failed_charge} of 120.00 EUR failed on {today}: "
        "Your card was declined. (card_declined)")
    [payment] = world.visma("customer_payment")
    assert (payment["paymentRef"], [line["refNbr"] for line in payment["paymentLines"]]) == (
        world.marker("charges", world.charge_of(paid.id)), ["100002"])


def test_an_invoice_edited_meanwhile_is_read_again_and_the_failed_charge_noted_once(world):  # noqa: F811
    # given: a colleague has noted a phone call on Visma invoice 100002, and saves it again just before our PUT
    invoice = VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_invoice",
                                        key="100002")
    invoice.body["note"] = "Called the customer 12 May"
    invoice.save(update_fields=["body"])
    invoice_id = world.stripe_invoice_for("100002", 12000, "eur")
    with pytest.raises(stripe.CardError):
        world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_chargeDeclined"})
    charge_id = world.charge_of(invoice_id)
    visma_fault_stale_puts(1)

    # when
    world.deliver_and_process()

    # then
    record = world.record("charges", charge_id)
    assert (record.status, record.target_id) == ("posted", "100002")
    assert _puts("/customerinvoice/100002") == [412, 204]
    today = timezone.now().date()
    assert world.visma("customer_invoice", "100002")["note"].splitlines() == [
        "Called the customer 12 May",
        f"[{world.marker('charges', charge_id)}] Stripe charge {charge_id} of 120.00 EUR failed on {today}: "
        "Your card was declined. (card_declined)"]


def test_an_invoice_edited_on_every_attempt_flags_the_dispute_note_and_writes_nothing(world):  # noqa: F811
    # given: a charge for Visma invoice 100001, posted; then disputed while Visma refuses every PUT as stale
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100001"}})
    world.deliver_and_process()
    note_before = world.visma("customer_invoice", "100001").get("note")
    visma_fault_stale_puts(3)
    dispute = dispute_open(world.account, object_get(world.account, "charge", charge.id))

    # when
    world.deliver_and_process()

    # then
    record = world.record("disputes", f"{dispute['id']}:needs_response")
    assert record.status == "flagged"
    assert record.reasons == [("invoice_note refused by the target: Changed in Visma while we updated it, 3 times: "
                               "Invoice version does not match with If-Match header. (IPPException 10003)")]
    assert _puts("/customerinvoice/100001") == [412, 412, 412]
    assert world.visma("customer_invoice", "100001").get("note") == note_before
