"""The duplicate check over real HTTP: documents in the sandbox Visma that share a marker are shown on their record."""
from __future__ import annotations

import pytest

from audit.models import AuditEntry, RecordStatus
from audit.selectors import record_posting
from connectors.visma import postings
from connectors.visma.client import VismaClient
from mappings.periods import FinancialCalendar
from tests.commands.helpers import run
from tests.e2e.test_visma_documents import poll_sales, sales  # noqa: F401  (sales is a fixture)
from tests.e2e.test_visma_pipeline import SOURCE, books, poll, record  # noqa: F401  (books is a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_second_journal_with_a_records_marker_is_shown_as_a_possible_duplicate(books):  # noqa: F811
    # given a capture posted as journal, and the same journal written again (by hand, or a write that slipped)
    books.source["CAP-1"] = {"amount": "100.00", "fee": "3.40", "currency": "SEK"}
    poll(books)
    posted = record("CAP-1")
    client = VismaClient(books.connection)
    with postings.visma_financial_calendar(FinancialCalendar(books.tenant).period_id):
        second = postings.visma_journal_post(client, record_posting(posted))
    client.close()

    # when
    stdout, _ = run("check_duplicates", books.tenant.slug)

    # then
    checked = record("CAP-1")
    assert (checked.status, checked.target_id, checked.duplicate_targets) == (
        RecordStatus.POSTED, posted.target_id, [second])
    assert stdout == (f"{books.tenant.slug}: visma_payments CAP-1 (marker {posted.posting_marker}, journal "
                      f"{posted.target_id}) also in {second}\n")
    entry = AuditEntry.objects.get(sync_record=checked, action="possible_duplicate")
    assert entry.details["documents"] == sorted([posted.target_id, second])

    # when checked again, nothing new is shown
    again, _ = run("check_duplicates", books.tenant.slug)
    assert again == f"{books.tenant.slug}: no new possible duplicates in Visma.\n"
    assert AuditEntry.objects.filter(action="possible_duplicate").count() == 1


def test_a_second_fee_journal_of_a_customer_payment_is_shown_on_the_payments_record(sales):  # noqa: F811
    # given a payment posted with its fee journal, and the fee journal written a second time
    SOURCE["PAY-1"] = {"document": "customer_payment", "customer": "10001", "amount": "1250.00", "fee": "25.00",
                       "currency": "SEK", "extra": {"invoice_number": "100001"}}
    poll_sales(sales)
    posted = record("PAY-1")
    client = VismaClient(sales.connection)
    with postings.visma_financial_calendar(FinancialCalendar(sales.tenant).period_id):
        second = postings.visma_journal_post(client, postings.visma_fee_journal(record_posting(posted)))
    client.close()

    # when
    run("check_duplicates", sales.tenant.slug)

    # then
    assert record("PAY-1").duplicate_targets == [second]
