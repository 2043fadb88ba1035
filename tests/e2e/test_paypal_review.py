"""PayPal postings a person must look at, over real HTTP: an unmapped payer and an inactive account are flagged
with the reason and nothing reaches Visma; after the fix, a finance user approves and it is posted once."""
from decimal import Decimal

import pytest

from audit.services import TransitionRefused, record_approve
from connectors.pipeline import record_advance
from mappings.models import ExternalReference, GLAccount
from sandbox.paypal import paypal_capture_create
from tests.factories import UserFactory
from tests.paypal.world import GUEST, MIKKO, hours_ago, journal_lines, world  # noqa: F401


@pytest.fixture
def finance(world):
    return UserFactory(username="frank.finance")


def _capture(world, payer, amount: str = "89.90"):
    capture = paypal_capture_create(amount=Decimal(amount), currency="EUR", payer=payer, at=hours_ago(0))
    world.process_inbox()
    return capture


def test_a_payment_by_an_unmapped_payer_is_flagged_then_approved_after_the_fix_and_posted_once(world, finance):
    # given
    capture = _capture(world, GUEST)
    flagged = world.record("captures", capture.object_id)
    assert flagged.status == "flagged"
    assert flagged.reasons == [
        "Customer PayPal payer ZQ7N4R8K2WXPL is unknown or inactive in Visma: map the payer to a customer."
    ]
    assert world.journals() == []
    ExternalReference.objects.create(tenant=world.tenant, system="paypal", external_kind="payer",
                                     external_id=GUEST.payer_id, visma_kind="customer", visma_id="10005")

    # when
    record_approve(flagged, user=finance, corrected_posting={"customer": "10005"}, note="guest is Baltic Gear")
    posted = record_advance(flagged)

    # then
    assert (posted.status, posted.target_kind) == ("posted", "journal")
    [journal] = world.journal_with(capture.object_id)
    assert posted.target_id == journal["batchNumber"]
    assert journal_lines(journal) == [("1580", "86.37", "0.00"), ("7770", "3.53", "0.00"), ("3000", "0.00", "89.90")]
    with pytest.raises(TransitionRefused):
        record_approve(posted, user=finance)
    assert len(world.journal_with(capture.object_id)) == 1
    # and the payer's next payment needs nobody
    following = _capture(world, GUEST, "15.00")
    assert world.record("captures", following.object_id).status == "posted"


def test_a_rule_pointing_at_an_inactive_account_is_flagged_then_approved_with_the_fixed_account(world, finance):
    # given
    rule = world.rules["capture"]
    rule.gl_account = "3099"
    rule.save()
    capture = _capture(world, MIKKO, "50.00")
    flagged = world.record("captures", capture.object_id)
    assert flagged.status == "flagged"
    assert flagged.reasons == [
        "GL account 3099 on line 3 (account) is inactive in Visma (chosen by mapping rule 'PayPal captures'): "
        "activate it in Visma or point the rule at an active account."
    ]
    assert world.journals() == []
    rule.gl_account = "3000"
    rule.save()

    # when
    record_approve(flagged, user=finance, corrected_posting={"accounts": {"account": "3000"}})
    posted = record_advance(flagged)

    # then
    assert posted.status == "posted"
    [journal] = world.journal_with(capture.object_id)
    assert journal_lines(journal)[2] == ("3000", "0.00", "50.00")
    assert len(world.journals()) == 1


def test_an_account_visma_refuses_although_the_mirror_says_active_is_flagged_with_vismas_words(world, finance):
    # given: the mirror is stale (3099 was deactivated in Visma after the last refresh)
    GLAccount.objects.filter(tenant=world.tenant, number="3099").update(active=True)
    rule = world.rules["capture"]
    rule.gl_account = "3099"
    rule.save()

    # when
    capture = _capture(world, MIKKO, "20.00")

    # then
    flagged = world.record("captures", capture.object_id)
    assert flagged.status == "flagged"
    assert flagged.reasons == [
        "journal refused by the target: journalTransactionLines[2].accountNumber: Account '3099' is inactive. "
        "(IPPException 10000)"
    ]
    assert world.journals() == []
    # after the fix, approved with the corrected account, it is posted once
    record_approve(flagged, user=finance, corrected_posting={"accounts": {"account": "3000"}})
    assert record_advance(flagged).status == "posted"
    assert len(world.journal_with(capture.object_id)) == 1
