"""Stripe refunds → Visma over real HTTP, both emulators live: each refund of a charge that paid a Visma invoice is a
journal marked with its refund id (debit sales, credit Stripe clearing: a journal never touches the receivable
control account), partial refunds add up to what was returned, and a refund whose charge is not posted yet waits for
it."""

from audit.models import AuditEntry, SyncRecord
from connectors.pipeline import stream_poll
from mappings.models import GLMappingRule
from sandbox.models import StripeObject
from sandbox.stripe_webhooks import stripe_event_send
from tests.e2e.test_stripe_payments import world  # noqa: F401
from tests.paypal.world import journal_lines


def _refund_rule(world) -> GLMappingRule:  # noqa: F811
    return GLMappingRule.objects.create(tenant=world.tenant, system="stripe", name="Stripe refunds", priority=20,
                                        transaction_type="refund", gl_account="3000", clearing_account="1580",
                                        dimensions={"1": "100"})


def _journals_marked(world, refund_id: str) -> list[dict]:  # noqa: F811
    marker = world.marker("refunds", refund_id)
    return [journal for journal in world.visma("journal")
            if journal["journalTransactionLines"][0]["referenceNumber"] == marker]


def test_two_partial_refunds_are_two_journals_adding_up_to_what_was_returned(world):  # noqa: F811
    # given: a charge of SEK 1250.00 for Visma invoice 100001 (customer 10001), posted
    _refund_rule(world)
    charge = world.stripe.v1.charges.create({"amount": 125000, "currency": "sek", "source": "tok_visa",
                                             "metadata": {"visma_invoice": "100001"}})
    world.deliver_and_process()
    first = world.stripe.v1.refunds.create({"charge": charge.id, "amount": 30000})
    world.deliver_and_process()

    # when
    second = world.stripe.v1.refunds.create({"charge": charge.id})
    delivered, processed = world.deliver_and_process()

    # then
    assert (delivered, processed) == (1, 1)
    for refund, amount in ((first, "300.00"), (second, "950.00")):
        record = world.record("refunds", refund.id)
        assert (record.status, record.target_kind) == ("posted", "journal")
        [journal] = _journals_marked(world, refund.id)
        assert record.target_id == journal["batchNumber"]
        assert journal_lines(journal) == [("3000", amount, "0.00"), ("1580", "0.00", amount)]
        assert journal["currencyId"] == "SEK"
    assert SyncRecord.objects.filter(integration=world.integration, stream="refunds").count() == 2
    assert len(world.visma("customer_payment")) == 1


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
    [journal] = _journals_marked(world, refund.id)
    assert journal_lines(journal) == [("3000", "120.00", "0.00"), ("1580", "0.00", "120.00")]


def test_a_refund_without_a_refund_mapping_rule_is_flagged_and_not_journalled(world):  # noqa: F811
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
    assert _journals_marked(world, refund.id) == []


def test_the_events_poll_journals_a_refund_whose_webhook_never_came(world):  # noqa: F811
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
    [journal] = _journals_marked(world, refund.id)
    assert journal_lines(journal) == [("3000", "45.50", "0.00"), ("1580", "0.00", "45.50")]
