"""Square refunds → reversal journals on their payment's cost center, after the payment is posted."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from connectors.pipeline import source_take, stream_poll
from connectors.square import flows
from connectors.square.flows import LEFT_TO_INVOICE_PAYMENTS, NOTHING_BOOKED

from .conftest import BERGEN, OSLO, LedgerTarget, square_payment, square_refund

pytestmark = pytest.mark.django_db


def take(world, found, cls="payments"):
    world.square.add(found)
    stream = world.payments() if cls == "payments" else world.refunds()
    return source_take(world.integration, stream, stream.read_one(found["id"]))[0]


def lines_of(posting):
    return [(line.role, line.account, line.debit, line.credit, line.dimensions) for line in posting.lines]


def test_a_partial_refund_reverses_revenue_and_clearing_on_the_same_cost_center_square_keeping_its_fee(world):
    # given: a posted sale in Bergen
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    # when: 40.00 of it is refunded
    record = take(world, square_refund(payment, amount=4000), "refunds")
    # then
    assert record.status == "posted"
    sale, refund = LedgerTarget.written
    assert refund.rule == sale.rule == "Square sales, Bergen"
    assert lines_of(refund) == [("account", "3020", Decimal("40.00"), Decimal(0), {"1": "320"}),
                                ("clearing", "1582", Decimal(0), Decimal("40.00"), {"1": "320"})]
    assert refund.facts.transaction_type == "refund"


def test_a_refund_with_the_fee_returned_credits_the_fee_account(world):
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    take(world, square_refund(payment, amount=10000, fee_returned=289), "refunds")
    refund = LedgerTarget.written[1]
    assert lines_of(refund) == [("account", "3020", Decimal("100.00"), Decimal(0), {"1": "320"}),
                                ("fee", "7770", Decimal(0), Decimal("2.89"), {"1": "320"}),
                                ("clearing", "1582", Decimal(0), Decimal("97.11"), {"1": "320"})]
    assert refund.is_balanced


def test_a_refund_before_its_payment_is_posted_waits_on_it_and_posts_when_it_posts(world):
    # given: the payment waits for its fee when the refund arrives
    payment = square_payment(location_id=BERGEN, amount=10000, fees=None)
    take(world, payment)
    refund = square_refund(payment, amount=2500)
    record = take(world, refund, "refunds")
    assert (record.status, record.waiting_on_stream, record.waiting_on_source_id) == (
        "waiting", "payments", payment["id"])
    assert len(LedgerTarget.written) == 0
    # when: the fee arrives and the payment posts
    payment.update(processing_fee=[{"effective_at": payment["updated_at"], "type": "INITIAL",
                                    "amount_money": {"amount": 289, "currency": "NOK"}}],
                   updated_at=timezone.now().isoformat())
    take(world, payment)
    # then: the refund is woken and posted right after it
    record.refresh_from_db()
    assert record.status == "posted"
    assert [posting.facts.transaction_type for posting in LedgerTarget.written] == ["payment", "refund"]


def test_a_refund_of_a_payment_not_read_yet_reads_the_payment_first(world):
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    world.square.add(payment)
    record = take(world, square_refund(payment, amount=1000), "refunds")
    assert record.status == "posted"
    assert ("payment", payment["id"]) in world.square.calls
    assert [posting.facts.transaction_type for posting in LedgerTarget.written] == ["payment", "refund"]


def test_a_refund_whose_payment_never_posts_is_flagged_after_the_wait(world):
    payment = square_payment(location_id=BERGEN, fees=None, created_at=timezone.now() - timedelta(minutes=10))
    take(world, payment)
    refund = square_refund(payment, amount=1000, created_at=timezone.now() - timedelta(hours=73))
    record = take(world, refund, "refunds")
    assert record.status == "flagged"
    assert f"its payment {payment['id']} is still not posted (waiting) 72 hours after the refund" in record.reasons[0]


def test_pending_waits_rejected_and_failed_are_booked_as_nothing(world):
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")])
    take(world, payment)
    assert take(world, square_refund(payment, amount=100, status="PENDING"), "refunds").status == "waiting"
    for status in ("REJECTED", "FAILED"):
        record = take(world, square_refund(payment, amount=100, status=status), "refunds")
        assert (record.status, record.target_kind) == ("posted", NOTHING_BOOKED)
        assert f"is {status}: no money went back, nothing booked" in record.proposed_posting["description"]
    assert len(LedgerTarget.written) == 1


def test_an_unlinked_refund_is_flagged(world):
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")])
    refund = square_refund(payment, amount=500, unlinked=True)
    record = take(world, refund, "refunds")
    assert record.status == "flagged"
    assert "is not linked to a Square payment (unlinked refund)" in record.reasons[0]
    assert LedgerTarget.written == []


def test_a_refund_larger_than_its_payment_is_flagged(world):
    payment = square_payment(location_id=BERGEN, amount=1000, tip=100, fees=[(30, "INITIAL")])
    take(world, payment)
    record = take(world, square_refund(payment, amount=1200), "refunds")
    assert record.status == "flagged"
    assert "of 12.00 NOK does not fit payment" in record.reasons[0]
    assert len(LedgerTarget.written) == 1


def test_a_refund_of_an_invoice_payment_is_left_to_the_invoice_payments_stream(world, monkeypatch):
    monkeypatch.setattr(flows, "square_invoice_of_payment", lambda stream, payment: {"id": "inv:0-7"})
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], order_id="ORD7")
    take(world, payment)
    record = take(world, square_refund(payment, amount=500), "refunds")
    assert (record.status, record.target_kind) == ("posted", LEFT_TO_INVOICE_PAYMENTS)
    assert "returns a payment of Square invoice inv:0-7" in record.proposed_posting["description"]
    assert LedgerTarget.written == []


def test_the_refunds_poll_takes_every_refund_once(world):
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    for amount in (1000, 2000):
        world.square.add(square_refund(payment, amount=amount))
    first = stream_poll(world.integration, "refunds")
    second = stream_poll(world.integration, "refunds")
    assert (first.fetched, first.posted, second.posted, second.skipped) == (2, 2, 0, 2)
    assert len(LedgerTarget.written) == 3


def test_refunds_that_together_return_more_than_was_paid_are_flagged(world):
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    assert take(world, square_refund(payment, amount=6000), "refunds").status == "posted"
    record = take(world, square_refund(payment, amount=5000), "refunds")
    assert record.status == "flagged"
    assert "of 50.00 NOK does not fit payment" in record.reasons[0]
    assert "(60.00 NOK refunded before)" in record.reasons[0]
    assert take(world, square_refund(payment, amount=4000), "refunds").status == "posted"


def test_a_refund_of_a_payment_from_before_the_integration_s_start_is_flagged_and_the_payment_not_booked(world):
    # given: a sale from before the start, refunded now (Square also sends payment.updated for the payment)
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")],
                             created_at=world.begin_time - timedelta(days=2))
    world.square.add(payment)
    # when: the refund arrives first (it reads its payment), then the payment.updated
    record = take(world, square_refund(payment, amount=4000), "refunds")
    take(world, payment)
    # then: the old sale is not booked now; the refund waits for a person
    assert record.status == "flagged"
    assert record.reasons == [f"refunds {record.source_id}: refund {record.source_id}: refund of a payment from "
                              f"before the integration's start ({payment['id']}): book it by hand"]
    assert LedgerTarget.written == []


def test_a_refund_made_before_the_integration_s_start_is_booked_as_nothing(world):
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")],
                             created_at=world.begin_time - timedelta(days=3))
    world.square.add(payment)
    record = take(world, square_refund(payment, amount=500, created_at=world.begin_time - timedelta(days=1)),
                  "refunds")
    assert (record.status, record.target_kind) == ("posted", NOTHING_BOOKED)
    assert "was made before this integration's start" in record.proposed_posting["description"]
    assert LedgerTarget.written == []


def test_a_refund_of_a_sale_whose_store_has_no_rule_any_more_is_flagged_not_booked_by_a_rule_for_any_store(world):
    # given: a sale posted in Oslo by Oslo's rule; later Oslo's rule is gone and a rule for any store exists
    payment = square_payment(location_id=OSLO, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    world.rule_oslo.delete()
    world.rule("Square sales, any store", priority=1, dimensions={"1": "320"})
    # when
    record = take(world, square_refund(payment, amount=1000), "refunds")
    # then
    assert record.status == "flagged"
    assert record.reasons[0].startswith(f"No mapping rule for store Store Oslo Sentrum ({OSLO}): add one")
    assert len(LedgerTarget.written) == 1


def test_refunds_split_between_revenue_and_tip_in_proportion_and_the_last_one_reverses_exactly_what_is_left(world):
    # given: NOK 250.00 + 25.00 tip posted in Bergen
    payment = square_payment(location_id=BERGEN, amount=25000, tip=2500, fees=[(700, "INITIAL")])
    take(world, payment)
    # when: 100.00 refunded, then the remaining 175.00
    partial = take(world, square_refund(payment, amount=10000), "refunds")
    full = take(world, square_refund(payment, amount=17500), "refunds")
    # then: 100 × 250/275 = 90.91 from revenue, 9.09 from tips; the rest leaves no cent on either account
    assert (partial.status, full.status) == ("posted", "posted")
    sale, first, last = LedgerTarget.written
    assert lines_of(first) == [("account", "3020", Decimal("90.91"), Decimal(0), {"1": "320"}),
                               ("tip", "2960", Decimal("9.09"), Decimal(0), {"1": "320"}),
                               ("clearing", "1582", Decimal(0), Decimal("100.00"), {"1": "320"})]
    assert lines_of(last) == [("account", "3020", Decimal("159.09"), Decimal(0), {"1": "320"}),
                              ("tip", "2960", Decimal("15.91"), Decimal(0), {"1": "320"}),
                              ("clearing", "1582", Decimal(0), Decimal("175.00"), {"1": "320"})]
    assert first.is_balanced and last.is_balanced

    def balance(account):
        return sum((line.debit - line.credit for posting in LedgerTarget.written for line in posting.lines
                    if line.account == account), Decimal(0))

    assert (balance("3020"), balance("2960")) == (Decimal(0), Decimal(0))


def test_a_full_refund_of_a_payment_with_a_tip_reverses_the_tip_in_full(world):
    payment = square_payment(location_id=BERGEN, amount=25000, tip=2500, fees=[(700, "INITIAL")])
    take(world, payment)
    take(world, square_refund(payment, amount=27500), "refunds")
    refund = LedgerTarget.written[1]
    assert lines_of(refund) == [("account", "3020", Decimal("250.00"), Decimal(0), {"1": "320"}),
                                ("tip", "2960", Decimal("25.00"), Decimal(0), {"1": "320"}),
                                ("clearing", "1582", Decimal(0), Decimal("275.00"), {"1": "320"})]


def test_the_developer_s_share_of_a_refund_comes_back_on_the_fee_account_and_not_out_of_clearing(world):
    # given: a sale with an application fee of 5.00
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    payment["app_fee_money"] = {"amount": 500, "currency": "NOK"}
    take(world, payment)
    # when: 40.00 refunded, of which the developer covers 2.00 (PaymentRefund.app_fee_money)
    refund = square_refund(payment, amount=4000)
    refund["app_fee_money"] = {"amount": 200, "currency": "NOK"}
    record = take(world, refund, "refunds")
    # then
    assert record.status == "posted"
    booked = LedgerTarget.written[1]
    assert lines_of(booked) == [("account", "3020", Decimal("40.00"), Decimal(0), {"1": "320"}),
                                ("fee", "7770", Decimal(0), Decimal("2.00"), {"1": "320"}),
                                ("clearing", "1582", Decimal(0), Decimal("38.00"), {"1": "320"})]
    assert booked.is_balanced


def test_a_refused_page_cursor_restarts_the_refunds_walk_once_and_each_refund_posts_once(world, monkeypatch):
    from connectors.square.client import SquareInvalidCursor

    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    world.square.add(*[square_refund(payment, amount=1000) for _ in range(3)])
    listing, calls = world.square.refunds, []

    def refunds(**query):
        calls.append(query)
        for index, found in enumerate(listing(**query)):
            if index == 2 and len(calls) == 1:
                raise SquareInvalidCursor("INVALID_CURSOR", status_code=400, system_message="INVALID_CURSOR")
            yield found

    monkeypatch.setattr(world.square, "refunds", refunds)
    run = stream_poll(world.integration, "refunds")
    assert (run.status, run.posted, len(calls)) == ("completed", 3, 2)
    assert len(LedgerTarget.written) == 4
