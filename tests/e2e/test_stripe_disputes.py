"""Stripe disputes move money in Visma, over real HTTP with both emulators live: the amount and dispute fee Stripe
takes leave Stripe clearing for the disputes account (the fee to the fee account); a dispute won brings the amount
back; a money event no stream takes is recorded and flagged with its type."""
from audit.models import SyncRecord
from connectors.pipeline import stream_poll
from sandbox import stripe_api
from sandbox.models import StripeObject
from tests.e2e.test_stripe_payments import world  # noqa: F401
from tests.paypal.world import journal_lines
from mappings.models import GLMappingRule


def _dispute_rule(world) -> GLMappingRule:  # noqa: F811
    return GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe disputes", priority=30,
                                        transaction_type="dispute", gl_account="1510", fee_account="7770",
                                        clearing_account="1580", disputes_account="1590")


def _journal_of(world, dispute_id: str, balance_transaction: str) -> dict:  # noqa: F811
    marker = world.marker("disputes", f"{dispute_id}:{balance_transaction}")
    [journal] = [journal for journal in world.visma("journal")
                 if journal["journalTransactionLines"][0]["referenceNumber"] == marker]
    return journal


def _disputed_charge(world):  # noqa: F811
    """A SEK 1250.00 charge for Visma invoice 100001, disputed at once: Stripe takes 1250.00 and a 150.00 fee."""
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_createDispute",
                                             "metadata": {"visma_invoice": "100001"}})
    world.deliver_and_process()
    [dispute] = world.stripe.v1.disputes.list({"charge": charge.id}).data
    return charge, dispute


def test_a_lost_dispute_moves_the_amount_and_fee_out_of_clearing_once(world):  # noqa: F811
    # given
    _dispute_rule(world)
    charge, dispute = _disputed_charge(world)
    [withdrawn] = dispute.balance_transactions

    # when
    world.stripe.v1.disputes.close(dispute.id)
    world.deliver_and_process()

    # then: one journal for the money Stripe took, though three dispute events named it
    record = world.record("disputes", f"{dispute.id}:{withdrawn.id}")
    journal = _journal_of(world, dispute.id, withdrawn.id)
    assert (record.status, record.target_kind, record.target_id) == ("posted", "journal", journal["batchNumber"])
    assert journal_lines(journal) == [("1590", "1250.00", "0.00"), ("7770", "150.00", "0.00"),
                                      ("1580", "0.00", "1400.00")]
    assert journal["currencyId"] == "SEK"
    # the notes on the invoice are as before: one per status
    assert world.record("disputes", f"{dispute.id}:lost").status == "posted"
    assert len(world.visma("customer_invoice", "100001")["note"].splitlines()) == 2
    assert sorted(SyncRecord.objects.filter(integration=world.integration, stream="disputes")
                  .values_list("source_id", flat=True)) == sorted([f"{dispute.id}:needs_response",
                                                                   f"{dispute.id}:lost", f"{dispute.id}:{withdrawn.id}"])


def test_a_won_dispute_brings_the_amount_back_into_clearing(world):  # noqa: F811
    # given
    _dispute_rule(world)
    charge, dispute = _disputed_charge(world)

    # when
    won = world.stripe.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "winning_evidence"}})
    world.deliver_and_process()

    # then: Stripe kept its dispute fee; the amount went back
    withdrawn, reinstated = won.balance_transactions
    assert journal_lines(_journal_of(world, dispute.id, withdrawn.id)) == [
        ("1590", "1250.00", "0.00"), ("7770", "150.00", "0.00"), ("1580", "0.00", "1400.00")]
    assert journal_lines(_journal_of(world, dispute.id, reinstated.id)) == [
        ("1590", "0.00", "1250.00"), ("1580", "1250.00", "0.00")]
    assert world.record("disputes", f"{dispute.id}:won").status == "posted"


def test_a_won_dispute_whose_fee_stripe_returns_returns_it_to_the_fee_account(world, settings):  # noqa: F811
    # given
    settings.SANDBOX_STRIPE_FEES_RETURNED = True
    _dispute_rule(world)
    charge, dispute = _disputed_charge(world)

    # when
    won = world.stripe.v1.disputes.update(dispute.id, {"evidence": {"uncategorized_text": "winning_evidence"}})
    world.deliver_and_process()

    # then
    assert journal_lines(_journal_of(world, dispute.id, won.balance_transactions[1].id)) == [
        ("1590", "0.00", "1250.00"), ("7770", "0.00", "150.00"), ("1580", "1400.00", "0.00")]


def test_a_dispute_without_a_disputes_account_is_flagged_and_nothing_is_journalled(world):  # noqa: F811
    # given: the dispute rule names no disputes account
    GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe disputes", priority=30,
                                 transaction_type="dispute", gl_account="1510", fee_account="7770",
                                 clearing_account="1580")

    # when
    charge, dispute = _disputed_charge(world)

    # then
    [withdrawn] = dispute.balance_transactions
    record = world.record("disputes", f"{dispute.id}:{withdrawn.id}")
    assert record.status == "flagged"
    assert record.reasons == ["Mapping rule 'Stripe disputes' has no disputes account but the posting has a "
                              "disputes line: set the disputes account on the rule.",
                              "Line 1 (disputes) has no GL account (chosen by mapping rule 'Stripe disputes'): set "
                              "one on the rule or approve with a corrected account."]
    assert [journal for journal in world.visma("journal") if journal["journalTransactionLines"][0]
            ["referenceNumber"] == world.marker("disputes", f"{dispute.id}:{withdrawn.id}")] == []


def test_a_money_event_no_stream_takes_is_recorded_and_flagged_with_its_type(world):  # noqa: F811
    # given: Stripe sends a payout event (docs.stripe.com/api/events/types: payout.paid), which no stream takes
    payout = {"id": "po_1NordlysPayout", "object": "payout", "amount": 50000, "currency": "eur",
              "created": stripe_api.now(), "status": "paid"}
    event = stripe_api.event_emit(world.account, "payout.paid", payout)

    # when
    world.deliver_and_process()

    # then
    record = world.record("unhandled", event["id"])
    assert record.status == "flagged"
    assert record.reasons == [f"unhandled {event['id']}: Stripe event type payout.paid ({event['id']}, payout "
                              "po_1NordlysPayout) is not handled by this integration: book it by hand, then reject "
                              "this record"]
    assert (record.amount, record.currency) == (500, "EUR")
    assert StripeObject.objects.filter(object_type="payout").count() == 0


def test_the_events_poll_flags_a_money_event_no_stream_takes_whose_webhook_never_came(world):  # noqa: F811
    # given: no webhook endpoint; Stripe holds a payout event
    world.account.webhook_url = ""
    world.account.save()
    payout = {"id": "po_1NordlysPayout2", "object": "payout", "amount": 1999, "currency": "eur",
              "created": stripe_api.now(), "status": "paid"}
    event = stripe_api.event_emit(world.account, "payout.paid", payout)
    world.stripe.v1.customers.create({"name": "Not about money AS"})

    # when
    run = stream_poll(world.integration, "unhandled")

    # then: the payout is flagged, the customer.created event is not money and is left alone
    assert (run.status, run.fetched) == ("completed", 1)
    assert world.record("unhandled", event["id"]).status == "flagged"
    assert SyncRecord.objects.filter(integration=world.integration).count() == 1
