"""Stripe refunds → Visma over real HTTP, both emulators live: each refund of a charge that paid a Visma invoice is a
credit note for the refunded share of the invoice (its accounts, subaccounts and VAT codes) and a customer refund
paying it out of Stripe clearing, so the customer's AR nets to zero; a fee Stripe returns goes back to the fee
account; a refund whose charge is not posted yet waits for it."""
from decimal import Decimal

from audit.models import AuditEntry, SyncRecord
from connectors.pipeline import stream_poll
from mappings.models import GLMappingRule
from sandbox.models import StripeObject
from sandbox.stripe_webhooks import stripe_event_send
from tests.e2e.test_stripe_payments import world  # noqa: F401
from tests.paypal.world import journal_lines


def _refund_rule(world) -> GLMappingRule:  # noqa: F811
    return GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe refunds", priority=20,
                                        transaction_type="refund", gl_account="1510", fee_account="7770",
                                        clearing_account="1580", dimensions={"1": "100"})


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _credit_note_of(world, refund_id: str) -> dict:  # noqa: F811
    [note] = [note for note in world.visma("customer_credit_note")
              if note["externalReference"] == world.marker("refunds", refund_id)]
    return note


def _refund_of(world, refund_id: str) -> dict:  # noqa: F811
    [paid_out] = [payment for payment in world.visma("customer_payment")
                  if payment["paymentRef"] == world.marker("refunds", refund_id, "refund")]
    return paid_out


def _receivable(world, invoice_number: str) -> Decimal:  # noqa: F811
    """What a customer still owes on one invoice in Visma, from the AR documents about it: the invoice, less the
    payments applied to it and the credit notes crediting it, plus the refunds paying those credit notes out."""
    owed = _money(world.visma("customer_invoice", invoice_number)["amountInCurrency"])
    notes = {note["referenceNumber"]: _money(note["amountInCurrency"]) for note in world.visma("customer_credit_note")
             if note["customerRefNumber"] == invoice_number}
    owed -= sum(notes.values(), Decimal(0))
    for payment in world.visma("customer_payment"):
        for line in payment["paymentLines"]:
            if (line["documentType"], line["refNbr"]) == ("Invoice", invoice_number):
                owed -= _money(line["amountPaid"])
            if line["documentType"] == "CreditNote" and line["refNbr"] in notes:
                owed += _money(line["amountPaid"])
    return owed


def test_two_partial_refunds_of_a_paid_invoice_are_credit_notes_paid_out_and_ar_nets_to_zero(world):  # noqa: F811
    # given: a charge of SEK 1250.00 paying Visma invoice 100001 (customer 10001: 2 × 500.00 boots, 250.00 jacket,
    # on account 3000, subaccount 100-P-100), posted as a customer payment
    _refund_rule(world)
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100001"}})
    world.deliver_and_process()
    first = world.stripe.v1.refunds.create({"charge": charge.id, "amount": 30000})
    world.deliver_and_process()

    # when
    second = world.stripe.v1.refunds.create({"charge": charge.id})
    delivered, processed = world.deliver_and_process()

    # then: each refund is a credit note with the invoice's lines in proportion, paid out by a customer refund
    assert (delivered, processed) == (1, 1)
    for refund, boots, jacket in ((first, "240.00", "60.00"), (second, "760.00", "190.00")):
        record = world.record("refunds", refund.id)
        note, paid_out = _credit_note_of(world, refund.id), _refund_of(world, refund.id)
        assert (record.status, record.target_kind) == ("posted", "credit_note")
        assert record.target_id == f"credit note {note['referenceNumber']} + refund {paid_out['refNbr']}"
        assert [(line["description"], line["account"]["number"], line["subaccount"]["subaccountNumber"],
                 f"{_money(line['amountInCurrency'])}") for line in note["lines"]] == [
            ("Hiking boots", "3000", "100-P-100", boots), ("Rain jacket", "3000", "100-P-100", jacket)]
        assert (note["documentType"], note["customer"]["number"], note["currencyId"], note["customerRefNumber"],
                _money(note["balanceInCurrency"]), note["status"]) == (
            "CreditNote", "10001", "SEK", "100001", Decimal("0.00"), "Closed")
        assert (paid_out["type"], paid_out["cashAccount"], paid_out["currency"]) == ("Refund", "1580", "SEK")
        assert [(line["documentType"], line["refNbr"], f"{_money(line['amountPaid'])}")
                for line in paid_out["paymentLines"]] == [("CreditNote", note["referenceNumber"],
                                                           f"{_money(note['amountInCurrency'])}")]
    invoice = world.visma("customer_invoice", "100001")
    assert (_money(invoice["balanceInCurrency"]), invoice["status"]) == (Decimal("0.00"), "Closed")
    assert _receivable(world, "100001") == Decimal("0.00")
    # Stripe kept its fee: no fee journal beside the payment's own
    fee_journals = [world.marker(stream, source_id, "fee") for stream, source_id in
                    (("charges", charge.id), ("refunds", first.id), ("refunds", second.id))]
    assert [journal_lines(journal) for journal in world.visma("journal")
            if journal["journalTransactionLines"][0]["referenceNumber"] in fee_journals] == [
        [("7770", "38.05", "0.00"), ("1580", "0.00", "38.05")]]
    assert SyncRecord.objects.filter(integration=world.integration, stream="refunds").count() == 2


def test_a_fee_stripe_returns_with_a_refund_goes_back_to_the_fee_account(world, settings):  # noqa: F811
    # given: this account gets Stripe's fee back on refunds; EUR 120.00 paid Visma invoice 100002 (fee 3.73)
    settings.SANDBOX_STRIPE_FEES_RETURNED = True
    _refund_rule(world)
    charge = world.stripe.v1.charges.create({"amount": 12000, "currency": "eur", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100002"}})
    world.deliver_and_process()

    # when: half is refunded, and half of the fee comes back (1.865 → 1.87)
    refund = world.stripe.v1.refunds.create({"charge": charge.id, "amount": 6000})
    world.deliver_and_process()

    # then
    record = world.record("refunds", refund.id)
    note, paid_out = _credit_note_of(world, refund.id), _refund_of(world, refund.id)
    [fee_back] = [journal for journal in world.visma("journal")
                  if journal["journalTransactionLines"][0]["referenceNumber"]
                  == world.marker("refunds", refund.id, "fee")]
    assert record.target_id == (f"credit note {note['referenceNumber']} + refund {paid_out['refNbr']} + journal "
                                f"{fee_back['batchNumber']}")
    assert journal_lines(fee_back) == [("7770", "0.00", "1.87"), ("1580", "1.87", "0.00")]
    assert _money(paid_out["paymentAmount"]) == Decimal("60.00")
    assert [(line["documentType"], f"{_money(line['amountPaid'])}") for line in paid_out["paymentLines"]] == [
        ("CreditNote", "60.00")]


def test_a_refund_delivered_before_its_charge_is_posted_waits_then_posts(world):  # noqa: F811
    # given: the charge and its full refund happened before any webhook came; they arrive newest first
    _refund_rule(world)
    world.account.webhook_url, webhook_url = "", world.account.webhook_url
    world.account.save()
    charge = world.stripe.v1.charges.create({"amount": 12000, "currency": "eur", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100002"}})
    refund = world.stripe.v1.refunds.create({"charge": charge.id})
    world.account.webhook_url = webhook_url
    world.account.save()
    [refunded, succeeded] = StripeObject.objects.filter(account=world.account, object_type="event").order_by("-pk")

    # when: the refund first, then the charge (one inbox run, no sweep)
    stripe_event_send(world.account, refunded)
    world.deliver_and_process()

    # then: the refund waited for its charge, and was woken and posted as soon as the charge posted
    waiting = AuditEntry.objects.filter(sync_record=world.record("refunds", refund.id), to_status="waiting").get()
    assert waiting.reason == (f"waiting: refund {refund.id} waits for its charge {charge.id} to be posted "
                              "(charge record: not received yet)")
    assert list(AuditEntry.objects.filter(sync_record=waiting.sync_record).order_by("id").values_list(
        "from_status", "to_status")) == [("", "received"), ("received", "waiting"), ("waiting", "ready"),
                                         ("ready", "posting"), ("posting", "posted")]

    # then
    assert succeeded.body["type"] == "charge.succeeded"
    assert world.record("charges", charge.id).status == "posted"
    assert world.record("refunds", refund.id).status == "posted"
    note = _credit_note_of(world, refund.id)
    assert (_money(note["amountInCurrency"]), _money(note["balanceInCurrency"])) == (Decimal("120.00"),
                                                                                     Decimal("0.00"))
    assert _receivable(world, "100002") == Decimal("0.00")


def test_a_refund_without_a_refund_mapping_rule_is_flagged_and_nothing_is_written(world):  # noqa: F811
    # given
    charge = world.stripe.v1.charges.create({"amount": 12000, "currency": "eur", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100002"}})
    world.deliver_and_process()
    refund = world.stripe.v1.refunds.create({"charge": charge.id, "amount": 2000})

    # when
    world.deliver_and_process()

    # then
    record = world.record("refunds", refund.id)
    assert record.status == "flagged"
    assert record.reasons == [("No active stripe mapping rule matches refund of 20.00 EUR for customer group "
                               "'STANDARD': add a GL mapping rule for it, or approve with the accounts to use.")]
    assert world.visma("customer_credit_note") == []
    assert [payment["type"] for payment in world.visma("customer_payment")] == ["Payment"]


def test_the_events_poll_credits_a_refund_whose_webhook_never_came(world):  # noqa: F811
    # given: no webhook endpoint; the charge is posted by the poll first
    _refund_rule(world)
    world.account.webhook_url = ""
    world.account.save()
    charge = world.stripe.v1.charges.create({"amount": 12000, "currency": "eur", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100002"}})
    refund = world.stripe.v1.refunds.create({"charge": charge.id, "amount": 4550})
    stream_poll(world.integration, "charges")

    # when
    run = stream_poll(world.integration, "refunds")

    # then
    assert (run.status, run.fetched, run.posted) == ("completed", 1, 1)
    note = _credit_note_of(world, refund.id)
    assert [f"{_money(line['amountInCurrency'])}" for line in note["lines"]] == ["45.50"]
    assert _money(_refund_of(world, refund.id)["paymentAmount"]) == Decimal("45.50")
