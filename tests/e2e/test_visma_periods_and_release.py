"""PayPal → Visma over real HTTP, as the books are kept: Visma's own financial periods (a July year, a closed
period approved into the next open one), the tenant's time zone, release after create (or on hold), and journals
kept off the AR/AP control accounts."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine
from django.urls import reverse

from audit.admin import record_release_state
from audit.models import AuditEntry
from audit.services import record_approve_into_open_period
from connectors.pipeline import record_advance
from mappings.models import FinancialPeriod, GLMappingRule
from mappings.reference import FINANCIAL_PERIODS, reference_data_refresh
from connectors.errors import TransientError
from connectors.models import HttpExchange
from connectors.visma import postings
from sandbox.paypal import paypal_capture_create
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.visma_periods import CalendarShape, financial_period_close, financial_periods_set
from tests.factories import UserFactory
from tests.paypal.world import MIKKO, hours_ago, journal_lines, world  # noqa: F401


def _capture_at(world, at: datetime, amount: str = "100.00", **options):
    capture = paypal_capture_create(amount=Decimal(amount), currency="EUR", payer=MIKKO, at=at, **options)
    world.process_inbox()
    return capture


def _visma_calendar(world, shape: CalendarShape, *, closed=()) -> None:
    """The company's calendar in Visma, then mirrored as the hourly refresh mirrors it."""
    financial_periods_set(VISMA_SANDBOX_COMPANY_ID, shape, range(2024, 2029), closed=closed)
    reference_data_refresh(world.tenant, kinds=[FINANCIAL_PERIODS], revalidate_rules=False)


def _visma_posts(world) -> int:
    """Documents POSTed to Visma on the tenant's connection (the token is fetched from elsewhere)."""
    return HttpExchange.objects.filter(connection=world.integration.visma_connection, method="POST",
                                       url__contains="/sandbox/visma/v").count()


def test_a_fiscal_year_starting_in_july_books_february_in_its_eighth_period(world):
    # given: financial year 2026 runs from July 2025 to June 2026
    _visma_calendar(world, CalendarShape(first_month=7))

    # when
    capture = _capture_at(world, datetime(2026, 2, 10, 10, 0, tzinfo=UTC))

    # then
    record = world.record("captures", capture.object_id)
    assert record.status == "posted"
    [journal] = world.journal_with(capture.object_id)
    assert (journal["transactionDate"][:10], journal["financialPeriod"]) == ("2026-02-10", "202608")


def test_a_thirteen_period_year_books_by_its_four_week_periods(world):
    # given: 13 periods of four weeks from 1 January; 26 February starts the third (26 February – 25 March)
    _visma_calendar(world, CalendarShape(periods=13))

    # when
    capture = _capture_at(world, datetime(2026, 2, 26, 10, 0, tzinfo=UTC))

    # then
    [journal] = world.journal_with(capture.object_id)
    assert journal["financialPeriod"] == "202603"


def test_a_capture_at_23_30_utc_on_the_last_day_of_a_month_is_booked_on_the_first_in_oslo(world):
    # given: the tenant books in Oslo (UTC+1 in winter)
    assert world.tenant.time_zone == "Europe/Oslo"

    # when
    capture = _capture_at(world, datetime(2026, 1, 31, 23, 30, tzinfo=UTC))

    # then
    [journal] = world.journal_with(capture.object_id)
    assert (journal["transactionDate"][:10], journal["financialPeriod"]) == ("2026-02-01", "202602")


def test_a_capture_in_a_closed_period_is_flagged_then_approved_into_the_next_open_period_and_posted_once(world):
    # given: February 2026 is closed in Visma
    _visma_calendar(world, CalendarShape(), closed={"202602"})
    finance = UserFactory(username="frida.finance")
    capture = _capture_at(world, datetime(2026, 2, 10, 10, 0, tzinfo=UTC))
    flagged = world.record("captures", capture.object_id)
    assert flagged.status == "flagged"
    assert flagged.reasons == [
        f"journal {world.marker(capture.object_id)}: financial period 202602 (February) of 2026-02-10 is closed "
        "in the general ledger in Visma: approve the record into the first open period, or reject it"
    ]
    assert world.journal_with(capture.object_id) == []

    # when
    record_approve_into_open_period(flagged, user=finance)
    posted = record_advance(flagged)
    again = record_advance(posted)

    # then
    assert (posted.status, again.status) == ("posted", "posted")
    [journal] = world.journal_with(capture.object_id)
    assert (journal["transactionDate"][:10], journal["financialPeriod"]) == ("2026-03-01", "202603")
    assert journal_lines(journal) == [("1580", "96.12", "0.00"), ("7770", "3.88", "0.00"), ("3000", "0.00", "100.00")]
    approval = AuditEntry.objects.get(sync_record=posted, to_status="approved")
    assert (approval.actor, approval.reason) == (
        "frida.finance", "approved into financial period 202603, booked on 2026-03-01")
    assert approval.details == {"corrected_posting": {"date": "2026-03-01"}}


def test_a_period_closed_in_visma_but_not_yet_in_the_mirror_is_refused_by_visma_and_flagged_with_its_words(world):
    # given: Visma closed February after the last refresh
    financial_period_close(VISMA_SANDBOX_COMPANY_ID, "202602")
    assert FinancialPeriod.objects.get(tenant=world.tenant, period_id="202602").closed_in_general_ledger is False

    # when
    capture = _capture_at(world, datetime(2026, 2, 10, 10, 0, tzinfo=UTC))

    # then
    record = world.record("captures", capture.object_id)
    assert record.status == "flagged"
    assert "The 02-2026 financial period of the company is closed in General ledger." in record.reasons[0]
    assert world.journal_with(capture.object_id) == []


def test_a_paid_invoice_becomes_one_released_customer_payment_and_the_invoice_balance_is_0(world):
    # given: Visma invoice 100002 (customer 10004, 120.00 EUR, open) has externalReference WEB-1002
    assert world.customer_invoice("100002")["balanceInCurrency"] == 120.0

    # when
    capture = _capture_at(world, hours_ago(0), amount="120.00", invoice_id="WEB-1002")

    # then
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_kind, record.target_status) == ("posted", "customer_payment", "Closed")
    assert record_release_state(record) == "released (Closed)"
    [payment] = world.customer_payments()
    assert (payment["status"], payment["hold"]) == ("Closed", False)
    invoice = world.customer_invoice("100002")
    assert (invoice["balanceInCurrency"], invoice["status"]) == (0.0, "Closed")
    [fee_journal] = world.journal_with(capture.object_id, "fee")
    assert fee_journal["status"] == "Posted"


def test_with_release_off_the_payment_is_left_on_hold_and_the_admin_says_created_awaiting_release(world, client):
    # given
    world.tenant.visma_release = False
    world.tenant.save(update_fields=["visma_release"])
    finance = UserFactory(username="fred.finance", is_superuser=True)
    finance.save()  # UserFactory saves the password only when it adds groups

    # when
    capture = _capture_at(world, hours_ago(0), amount="120.00", invoice_id="WEB-1002")

    # then
    record = world.record("captures", capture.object_id)
    assert (record.status, record.target_status) == ("posted", "Hold")
    [payment] = world.customer_payments()
    assert (payment["status"], payment["hold"]) == ("Hold", True)
    invoice = world.customer_invoice("100002")
    assert (invoice["balanceInCurrency"], invoice["status"]) == (120.0, "Open")
    [fee_journal] = world.journal_with(capture.object_id, "fee")
    assert fee_journal["status"] == "Hold"
    client.force_login(finance)
    page = client.get(reverse("admin:audit_syncrecord_change", args=[record.pk]))
    assert "created, awaiting release (Hold)" in page.content.decode()


def test_a_journal_on_the_receivable_control_account_is_refused_before_any_write(world):
    # given: the capture rule's revenue line points at 1510, Visma's AR control account
    GLMappingRule.objects.filter(tenant=world.tenant, name="PayPal captures").update(gl_account="1510")
    posts_before = _visma_posts(world)

    # when
    capture = _capture_at(world, hours_ago(0))

    # then
    record = world.record("captures", capture.object_id)
    assert record.status == "flagged"
    assert record.reasons == [
        "Line 3 (account): GL account 1510 is a control account of the AR ledger in Visma (chosen by mapping rule "
        "'PayPal captures'): a journal must not post to it (only AR documents do); a payment of an invoice is a "
        "customer payment, and the rule must point this line at another account."
    ]
    assert world.journal_with(capture.object_id) == []
    assert not world.integration.records.filter(write_attempted=True).exists()
    assert _visma_posts(world) == posts_before


def test_a_payment_whose_release_answer_was_lost_is_found_by_its_marker_and_released_not_created_again(
        world, monkeypatch):
    # given: Visma took the payment, then the answer to its release was lost
    release = postings.visma_document_release
    calls = []

    def release_lost_once(client, kind, number, **options):
        calls.append((kind, number))
        if len(calls) == 1:
            raise TransientError("read timed out", status_code=None)
        return release(client, kind, number, **options)

    monkeypatch.setattr(postings, "visma_document_release", release_lost_once)
    capture = _capture_at(world, hours_ago(0), amount="120.00", invoice_id="WEB-1002")
    waiting = world.record("captures", capture.object_id)
    assert (waiting.status, waiting.write_attempted) == ("retrying", True)
    [unreleased] = world.customer_payments()
    assert unreleased["status"] == "Balanced"

    # when
    with time_machine.travel(waiting.next_attempt_at + timedelta(seconds=1), tick=False):
        posted = record_advance(waiting)

    # then
    assert (posted.status, posted.target_status) == ("posted", "Closed")
    [payment] = world.customer_payments()
    assert (payment["refNbr"], payment["status"]) == (unreleased["refNbr"], "Closed")
    assert world.customer_invoice("100002")["balanceInCurrency"] == 0.0
    assert len(world.journal_with(capture.object_id, "fee")) == 1
