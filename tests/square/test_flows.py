"""Square payments → journals on the store's cost center: sale, tip, fee, net; waits, flags, fee adjustments and
reversals, against a fake SquareApi and Visma as a list (tests/square/conftest.py)."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from audit.models import SyncRecord
from connectors.dates import tenant_date
from connectors.pipeline import source_take, stream_poll
from connectors.square import flows
from connectors.square.flows import LEFT_TO_INVOICE_PAYMENTS, NOTHING_BOOKED
from mappings.documents import posting_marker_part
from mappings.models import SquareLocation
from tests.factories import stream_marker

from .conftest import BERGEN, OSLO, TRONDHEIM, LedgerTarget, square_location, square_payment

pytestmark = pytest.mark.django_db


def take(world, payment):
    world.square.add(payment)
    stream = world.payments()
    return source_take(world.integration, stream, stream.read_one(payment["id"]))[0]


def lines_of(posting):
    return [(line.role, line.account, line.debit, line.credit, line.dimensions) for line in posting.lines]


def test_a_card_payment_at_a_non_main_store_posts_gross_tip_fee_and_net_on_that_store_s_cost_center(world):
    # given: NOK 100.00 + 15.00 tip at Bergen, Square's fee 2.89
    payment = square_payment(location_id=BERGEN, amount=10000, tip=1500, fees=[(289, "INITIAL")])
    # when
    record = take(world, payment)
    # then: one balanced journal, the Bergen rule (it names the location) over the any-store rule's priority
    assert record.status == "posted"
    [journal] = LedgerTarget.written
    assert journal.document == "journal" and journal.is_balanced
    assert journal.rule == "Square sales, Bergen"
    assert lines_of(journal) == [
        ("clearing", "1582", Decimal("112.11"), Decimal(0), {"1": "320"}),
        ("fee", "7770", Decimal("2.89"), Decimal(0), {"1": "320"}),
        ("account", "3020", Decimal(0), Decimal("100.00"), {"1": "320"}),
        ("tip", "2960", Decimal(0), Decimal("15.00"), {"1": "320"}),
    ]
    assert journal.marker == stream_marker(world.integration, "payments", payment["id"])
    assert payment["id"] in journal.description and "Store Bergen" in journal.description
    assert all(payment["id"] in line.description for line in journal.lines)
    assert journal.date == tenant_date(world.tenant, timezone.now() - timedelta(minutes=5))
    assert journal.facts.payment_method == "CARD" and journal.facts.location == BERGEN


def test_a_store_without_a_rule_of_its_own_is_flagged_even_when_a_rule_for_any_store_matches(world):
    # given: Oslo has no rule of its own; a rule for any store (with Bergen's cost center) would match
    world.rule_oslo.delete()
    world.rule("Square sales, any store", priority=1, dimensions={"1": "320"})
    # when
    record = take(world, square_payment(location_id=OSLO, amount=5000, fees=[(145, "INITIAL")]))
    # then: never booked on another store's cost center
    assert record.status == "flagged"
    assert record.reasons == [f"No mapping rule for store Store Oslo Sentrum ({OSLO}): add one (a rule for any store "
                              "is not used for Square payments, so that no store's sales land on another store's "
                              "cost center)"]
    assert LedgerTarget.written == []


def test_a_store_with_its_own_rule_takes_it(world):
    record = take(world, square_payment(location_id=OSLO, amount=5000, fees=[(145, "INITIAL")]))
    assert record.status == "posted"
    [journal] = LedgerTarget.written
    assert journal.rule == "Square sales, Oslo"
    assert {line.account for line in journal.lines} == {"1582", "7770", "3000"}
    assert {tuple(line.dimensions.items()) for line in journal.lines} == {(("1", "310"),)}


def test_a_source_type_rule_matches_through_the_payment_method(world):
    # given: cash in Bergen goes to its own account
    world.rule("Square cash, Bergen", priority=10, location=BERGEN, payment_method="CASH", gl_account="3000",
               dimensions={"1": "320"})
    # when: cash posts without a fee (Square does not process cash)
    record = take(world, square_payment(location_id=BERGEN, amount=2000, source_type="CASH"))
    # then
    assert record.status == "posted"
    [journal] = LedgerTarget.written
    assert journal.rule == "Square cash, Bergen"
    assert lines_of(journal) == [("clearing", "1582", Decimal("20.00"), Decimal(0), {"1": "320"}),
                                 ("account", "3000", Decimal(0), Decimal("20.00"), {"1": "320"})]


def test_a_card_payment_waits_for_its_fee_and_posts_once_the_update_brings_it(world):
    # given: Square has not filled processing_fee yet
    payment = square_payment(location_id=BERGEN, amount=10000, fees=None)
    record = take(world, payment)
    assert record.status == "waiting"
    assert "no processing fee from Square yet" in record.last_error
    assert LedgerTarget.written == []
    # when: the payment.updated brings the fee
    payment.update(processing_fee=[{"effective_at": payment["updated_at"], "type": "INITIAL",
                                    "amount_money": {"amount": 275, "currency": "NOK"}}],
                   updated_at=(timezone.now()).isoformat())
    record = take(world, payment)
    # then
    assert record.status == "posted"
    [journal] = LedgerTarget.written
    assert lines_of(journal)[:2] == [("clearing", "1582", Decimal("97.25"), Decimal(0), {"1": "320"}),
                                     ("fee", "7770", Decimal("2.75"), Decimal(0), {"1": "320"})]


def test_a_card_payment_whose_fee_never_comes_is_flagged_after_the_wait(world):
    payment = square_payment(location_id=BERGEN, fees=None, created_at=timezone.now() - timedelta(minutes=121))
    record = take(world, payment)
    assert record.status == "flagged"
    assert record.reasons == [f"payments {payment['id']}: Square has not reported the processing fee of payment "
                              f"{payment['id']} (CARD) 120 minutes after it was taken: book the fee by hand and "
                              "approve, or wait for Square and replay"]
    assert LedgerTarget.written == []


def test_a_payment_in_another_currency_than_its_store_is_flagged(world):
    payment = square_payment(location_id=BERGEN, currency="EUR", fees=[(30, "INITIAL")])
    record = take(world, payment)
    assert record.status == "flagged"
    assert "is in EUR, but its location Store Bergen (LBERGEN00000002) takes NOK" in record.reasons[0]
    assert LedgerTarget.written == []


def test_a_payment_at_a_store_not_mirrored_yet_reads_the_locations_again_once(world):
    # given: the mirror knows the three stores; Square opened a web shop since
    world.payments().locations_refresh()
    world.square.location_rows.append(square_location("LWEBSHOP0000004", "Web shop"))
    world.rule("Square web shop", priority=5, location="LWEBSHOP0000004", dimensions={"1": "330"})
    world.square.calls.clear()
    # when
    record = take(world, square_payment(location_id="LWEBSHOP0000004", fees=[(100, "INITIAL")]))
    # then
    assert record.status == "posted"
    assert world.square.calls.count(("locations",)) == 1
    assert SquareLocation.objects.get(location_id="LWEBSHOP0000004").name == "Web shop"
    assert {line.dimensions["1"] for line in LedgerTarget.written[0].lines} == {"330"}


def test_a_payment_at_a_location_square_does_not_list_is_flagged(world):
    record = take(world, square_payment(location_id="LNOWHERE", fees=[(100, "INITIAL")]))
    assert record.status == "flagged"
    assert "location LNOWHERE is not one of this seller's Square locations" in record.reasons[0]


def test_an_approved_payment_waits_and_a_canceled_one_is_booked_as_nothing(world):
    payment = square_payment(location_id=BERGEN, status="APPROVED", fees=None)
    assert take(world, payment).status == "waiting"
    payment.update(status="CANCELED", updated_at=timezone.now().isoformat())
    record = take(world, payment)
    assert (record.status, record.target_kind) == ("posted", NOTHING_BOOKED)
    assert record.proposed_posting["description"] == f"payment {payment['id']} is CANCELED: no sale, nothing booked"
    assert LedgerTarget.written == []


def test_a_payment_of_a_square_invoice_is_left_to_the_invoice_payments_stream(world, monkeypatch):
    # given: connectors/square/invoices.py finds the invoice the payment's order belongs to
    asked = []
    monkeypatch.setattr(flows, "square_invoice_of_payment", lambda stream, payment: asked.append(payment["id"])
                        or {"id": "inv:0-7", "invoice_number": "000007"})
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], order_id="ORD1")
    # when
    record = take(world, payment)
    # then: settled without a journal, saying where it went; not flagged
    assert asked == [payment["id"]]
    assert (record.status, record.target_kind, record.target_id) == (
        "posted", LEFT_TO_INVOICE_PAYMENTS, f"invoice_payments {payment['id']}")
    assert "pays Square invoice 000007" in record.proposed_posting["description"]
    assert LedgerTarget.written == []


def test_no_rule_for_the_store_flags_the_payment_naming_the_store(world):
    world.rule_oslo.delete()
    payment = square_payment(location_id=OSLO, fees=[(145, "INITIAL")])
    record = take(world, payment)
    assert record.status == "flagged"
    assert record.reasons == ["No active square mapping rule matches payment of 100.00 NOK paid by CARD at location "
                              f"Store Oslo Sentrum ({OSLO}): add a GL mapping rule for it, or approve with the "
                              "accounts to use."]
    assert LedgerTarget.written == []


def test_an_inactive_cost_center_or_account_flags_the_payment_and_writes_nothing(world):
    world.rule("Square Trondheim (closed)", priority=5, location=TRONDHEIM, dimensions={"1": "390"},
               tip_account="3099")
    record = take(world, square_payment(location_id=TRONDHEIM, tip=500, fees=[(100, "INITIAL")]))
    assert record.status == "flagged"
    assert "Dimension value 390 of segment 1 on line 1 is inactive in Visma (chosen by mapping rule " \
           "'Square Trondheim (closed)'): fix the rule's dimensions or the value in Visma." in record.reasons
    assert "GL account 3099 on line 4 (tip) is inactive in Visma (chosen by mapping rule 'Square Trondheim " \
           "(closed)'): activate it in Visma or point the rule at an active account." in record.reasons
    assert LedgerTarget.written == []


def test_a_fee_adjustment_after_posting_is_its_own_fee_journal_and_the_sale_is_not_posted_again(world):
    # given: the sale is posted with its initial fee
    payment = square_payment(location_id=BERGEN, amount=10000, fees=[(289, "INITIAL")])
    take(world, payment)
    # when: Square adjusts the fee by 0.50 and the poll reads the payment again (twice)
    adjustment = {"effective_at": "2026-12-06T12:00:00Z", "type": "ADJUSTMENT",
                  "amount_money": {"amount": 50, "currency": "NOK"}}
    payment.update(processing_fee=[*payment["processing_fee"], adjustment], updated_at=timezone.now().isoformat())
    stream_poll(world.integration, "payments")
    stream_poll(world.integration, "payments")
    # then: one more journal, fee to the fee account against clearing on the same cost center
    assert len(LedgerTarget.written) == 2
    sale, fee = LedgerTarget.written
    assert lines_of(fee) == [("fee", "7770", Decimal("0.50"), Decimal(0), {"1": "320"}),
                             ("clearing", "1582", Decimal(0), Decimal("0.50"), {"1": "320"})]
    assert fee.marker == posting_marker_part(sale.marker, "fee:2026-12-06T12:00:00Z")
    assert fee.rule == "Square sales, Bergen"
    assert dict(SyncRecord.objects.filter(stream="payments").values_list("source_id", "status")) == {
        payment["id"]: "posted", f"{payment['id']}:fee:2026-12-06T12:00:00Z": "posted"}


def test_a_payment_canceled_after_posting_is_reversed_once(world):
    payment = square_payment(location_id=BERGEN, amount=10000, tip=1000, fees=[(289, "INITIAL")])
    take(world, payment)
    payment.update(status="CANCELED", updated_at=timezone.now().isoformat())
    take(world, payment)
    take(world, payment)
    sale, reversal = LedgerTarget.written
    assert reversal.marker == posting_marker_part(sale.marker, "reversal")
    assert [(role, account, credit, debit, dims) for role, account, debit, credit, dims in lines_of(reversal)] \
        == lines_of(sale)
    assert reversal.is_balanced


def test_a_poll_reads_every_location_inactive_ones_too_each_payment_once(world):
    for location in (OSLO, BERGEN, TRONDHEIM, OSLO):
        world.square.add(square_payment(location_id=location, fees=[(100, "INITIAL")]))
    world.rule("Square Trondheim", priority=5, location=TRONDHEIM, dimensions={"1": "310"})
    run = stream_poll(world.integration, "payments")
    assert (run.fetched, run.posted) == (4, 4)
    assert sorted(call[1] for call in world.square.calls if call[0] == "payments") == sorted([OSLO, BERGEN, TRONDHEIM])
    again = stream_poll(world.integration, "payments")
    assert (again.posted, again.skipped) == (0, 4)
    assert len(LedgerTarget.written) == 4


def test_a_poll_reads_the_locations_first_so_a_store_opened_since_is_polled_too(world):
    # given: the mirror knows the three stores; a web shop opened since, with a payment
    world.payments().locations_refresh()
    world.square.location_rows.append(square_location("LWEBSHOP0000004", "Web shop"))
    world.rule("Square web shop", priority=5, location="LWEBSHOP0000004", dimensions={"1": "330"})
    payment = square_payment(location_id="LWEBSHOP0000004", fees=[(100, "INITIAL")])
    world.square.add(payment)
    # when
    run = stream_poll(world.integration, "payments")
    # then
    assert (run.fetched, run.posted) == (1, 1)
    assert ("payments", "LWEBSHOP0000004") in world.square.calls


@pytest.mark.parametrize(("source_type", "status"), [("EXTERNAL", "posted"), ("CASH", "posted"), ("WALLET", "waiting"),
                                                     ("BUY_NOW_PAY_LATER", "waiting"), ("CRYPTO_NEW", "waiting")])
def test_only_payments_square_does_not_process_post_without_a_fee_an_unknown_source_type_waits_for_one(
        world, source_type, status):
    record = take(world, square_payment(location_id=OSLO, source_type=source_type, fees=None))
    assert record.status == status
    assert len(LedgerTarget.written) == (1 if status == "posted" else 0)


def test_a_payment_from_before_the_integration_s_start_is_booked_as_nothing_from_a_webhook_and_a_poll(world):
    # given: two payments taken the day before the integration's start, one reaching us by webhook (read_one),
    # one by a poll (read_window; the fake ignores begin_time, like a payment.updated of an old payment would)
    before = world.begin_time - timedelta(days=1)
    by_webhook = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], created_at=before,
                                updated_at=timezone.now() - timedelta(minutes=1))
    by_poll = square_payment(location_id=OSLO, fees=[(145, "INITIAL")], created_at=before,
                             updated_at=timezone.now() - timedelta(minutes=1))
    # when
    record = take(world, by_webhook)
    world.square.add(by_poll)
    run = stream_poll(world.integration, "payments")
    # then: both settled as nothing booked, saying why; no journal
    assert run.fetched == 2
    for payment in (by_webhook, by_poll):
        record = SyncRecord.objects.get(stream="payments", source_id=payment["id"])
        assert (record.status, record.target_kind) == ("posted", NOTHING_BOOKED)
        assert record.proposed_posting["description"].startswith(
            f"payment {payment['id']} was taken before this integration's start on "
            f"{tenant_date(world.tenant, world.begin_time):%Y-%m-%d}")
        assert "booked by hand before" in record.proposed_posting["description"]
    assert LedgerTarget.written == []


def test_an_application_fee_is_its_own_fee_line_and_leaves_the_net(world):
    # given: NOK 100.00 + 10.00 tip; Square's fee 2.89; the developer's application fee 5.00 (app_fee_money)
    payment = square_payment(location_id=BERGEN, amount=10000, tip=1000, fees=[(289, "INITIAL")])
    payment["app_fee_money"] = {"amount": 500, "currency": "NOK"}
    # when
    record = take(world, payment)
    # then: clearing gets what reaches the seller: 110.00 − 2.89 − 5.00
    assert record.status == "posted"
    [journal] = LedgerTarget.written
    assert lines_of(journal) == [
        ("clearing", "1582", Decimal("102.11"), Decimal(0), {"1": "320"}),
        ("fee", "7770", Decimal("2.89"), Decimal(0), {"1": "320"}),
        ("fee", "7770", Decimal("5.00"), Decimal(0), {"1": "320"}),
        ("account", "3020", Decimal(0), Decimal("100.00"), {"1": "320"}),
        ("tip", "2960", Decimal(0), Decimal("10.00"), {"1": "320"}),
    ]
    assert journal.lines[2].description == f"Square {payment['id']} application fee"
    assert journal.is_balanced


def test_an_application_fee_larger_than_the_payment_is_flagged(world):
    payment = square_payment(location_id=BERGEN, amount=1000, fees=[(29, "INITIAL")])
    payment["app_fee_money"] = {"amount": 1500, "currency": "NOK"}
    record = take(world, payment)
    assert record.status == "flagged"
    assert "application fee 15.00 NOK is more than the payment's total 10.00 NOK" in record.reasons[0]


def _hand_overs(world, monkeypatch):
    """The invoice payments stream's intake as a list: (payment id, invoice id, the payments record's status then)."""
    taken = []
    monkeypatch.setattr(flows, "square_invoice_of_payment", lambda stream, payment: {
        "id": "inv:0-7", "invoice_number": "000007"} if payment.get("order_id") else None)
    monkeypatch.setattr(flows, "square_invoice_payment_take", lambda integration, *, payment, invoice: taken.append(
        (payment["id"], invoice["id"], SyncRecord.objects.get(stream="payments", source_id=payment["id"]).status)))
    return taken


def test_a_payment_of_an_invoice_is_handed_to_the_invoice_payments_stream_once_settled_by_webhook(world, monkeypatch):
    taken = _hand_overs(world, monkeypatch)
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], order_id="ORD1")
    record = take(world, payment)
    assert (record.status, record.target_kind) == ("posted", LEFT_TO_INVOICE_PAYMENTS)
    assert taken == [(payment["id"], "inv:0-7", "posted")]
    assert LedgerTarget.written == []


def test_a_payment_of_an_invoice_is_handed_to_the_invoice_payments_stream_once_settled_by_a_poll(world, monkeypatch):
    taken = _hand_overs(world, monkeypatch)
    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], order_id="ORD1")
    pos_sale = square_payment(location_id=BERGEN, fees=[(100, "INITIAL")])  # no order: never an invoice's
    world.square.add(payment, pos_sale)
    run = stream_poll(world.integration, "payments")
    assert (run.fetched, run.posted) == (2, 2)
    assert taken == [(payment["id"], "inv:0-7", "posted")]
    assert len(LedgerTarget.written) == 1


def test_a_sale_journal_that_may_be_in_visma_stays_a_sale_when_its_payment_is_later_found_to_pay_an_invoice(
        world, monkeypatch):
    # given: the sale journal was written, but its answer was lost and the record failed (write attempted)
    from audit.services import record_replay

    payment = square_payment(location_id=BERGEN, fees=[(289, "INITIAL")], order_id="ORD1")
    record = take(world, payment)
    assert record.target_kind == "journal"
    SyncRecord.objects.filter(pk=record.pk).update(status="failed", target_id="", target_kind="")
    # when: the invoice is found now, and the record is replayed
    taken = _hand_overs(world, monkeypatch)
    replayed = source_take(world.integration, world.payments(), world.payments().read_one(payment["id"]))[0]
    assert replayed.status == "failed"
    from connectors.pipeline import record_advance
    record = record_advance(record_replay(SyncRecord.objects.get(pk=record.pk)))
    # then: found in Visma by its marker and kept as the sale; nothing handed to the invoice payments stream
    assert (record.status, record.target_kind) == ("posted", "journal")
    assert len(LedgerTarget.written) == 1
    assert taken == []


def _cursor_refused(listing, *, times):
    """A list call whose walk Square breaks with INVALID_CURSOR after the first object, the first `times` times
    the same query is walked."""
    from connectors.square.client import SquareInvalidCursor

    calls = []

    def walk(**query):
        calls.append(query)
        for index, found in enumerate(listing(**query)):
            if index == 1 and calls.count(query) <= times:
                raise SquareInvalidCursor("GET /v2/payments: INVALID_CURSOR: The cursor is invalid",
                                          status_code=400, system_message="INVALID_CURSOR: The cursor is invalid",
                                          errors=[{"code": "INVALID_CURSOR"}])
            yield found
    return walk, calls


def test_a_refused_page_cursor_restarts_the_walk_once_and_every_payment_posts_once(world, monkeypatch):
    ids = [square_payment(location_id=BERGEN, amount=1000 + index, fees=[(30, "INITIAL")]) for index in range(3)]
    world.square.add(*ids)
    walk, calls = _cursor_refused(world.square.payments, times=1)
    monkeypatch.setattr(world.square, "payments", walk)
    run = stream_poll(world.integration, "payments")
    assert (run.status, run.fetched, run.posted) == ("completed", 3, 3)
    assert [query["location_id"] for query in calls].count(BERGEN) == 2
    assert len(LedgerTarget.written) == 3


def test_a_page_cursor_refused_again_after_the_restart_fails_the_run_saying_so(world, monkeypatch):
    from connectors.models import SyncRun
    from connectors.square.client import SquareInvalidCursor

    world.square.add(*[square_payment(location_id=BERGEN, fees=[(30, "INITIAL")]) for _ in range(3)])
    walk, _calls = _cursor_refused(world.square.payments, times=2)
    monkeypatch.setattr(world.square, "payments", walk)
    with pytest.raises(SquareInvalidCursor, match="refused the page cursor again after the walk was restarted"):
        stream_poll(world.integration, "payments")
    run = SyncRun.objects.get(stream="payments")
    assert run.status == "failed"
    assert f"payments of location {BERGEN}: Square refused the page cursor again" in run.error
