"""Customer invoices, customer payments with their fee journal, supplier payments: posted into the sandbox over HTTP."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import time_machine

from audit.models import RecordStatus
from connectors.pipeline import SourceObject, records_advance_due, stream_poll
from connectors.visma import postings
from mappings.documents import MatchFacts, Posting, PostingLine, posting_marker_part
from sandbox.models import VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from tests.e2e.test_visma_pipeline import (  # noqa: F401  (books is a fixture)
    CRASH_AFTER_WRITE, MORNING, POSTING_DAY, SOURCE, VismaPayments, books, journals_with, marker_of, record,
    statuses,
)
from tests.factories import GLMappingRuleFactory
from tests.ledger_stream import Crash

pytestmark = pytest.mark.django_db(transaction=True)


class VismaSales(VismaPayments):
    """Webshop orders and their payments: payload["document"] says which Visma document each one becomes."""

    name = "visma_sales"
    target_kind = "visma_document"

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        amount, fee = Decimal(payload["amount"]), Decimal(payload.get("fee", "0"))
        document = payload["document"]
        if document == "supplier_payment":
            lines = [PostingLine(role="account", debit=amount), PostingLine(role="clearing", credit=amount)]
        else:
            lines = [PostingLine(role="clearing", debit=amount - fee), PostingLine(role="account", credit=amount)]
            if fee:
                lines.insert(1, PostingLine(role="fee", debit=fee))
        return Posting(
            document=document, marker=self.marker(source.source_id), currency=payload["currency"], date=POSTING_DAY,
            description=f"Webshop {source.source_id}",
            facts=MatchFacts(transaction_type=document, amount=amount, currency=payload["currency"]),
            lines=lines, customer=payload.get("customer", ""), supplier=payload.get("supplier", ""),
            extra=payload.get("extra", {}),
        )


@pytest.fixture
def sales(books, register_stream):  # noqa: F811
    """The books, the sales stream on the paypal kind, and a rule per document."""
    register_stream("paypal", VismaSales)
    for document, gl_account, fee_account, clearing_account in (
        ("customer_invoice", "3000", "", "1510"),
        ("customer_payment", "1510", "7770", "1580"),
        ("supplier_payment", "2440", "", "1920"),
    ):
        GLMappingRuleFactory(tenant=books.tenant, system="paypal", name=document, transaction_type=document,
                             gl_account=gl_account, fee_account=fee_account, clearing_account=clearing_account)
    return books


def poll_sales(books):
    return stream_poll(books.integration, VismaSales.name, start=MORNING - timedelta(days=1), end=MORNING)


def sandbox_document(collection: str, key: str) -> dict:
    return VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection=collection, key=key).body


def test_a_customer_invoice_is_posted_with_its_lines_and_the_marker_as_external_reference(sales):
    # given
    SOURCE["ORD-1"] = {
        "document": "customer_invoice", "customer": "10001", "amount": "1048.00", "currency": "SEK",
        "extra": {"lines": [{"description": "Hiking boots", "quantity": "2", "unit_price": "499.50"},
                            {"description": "Shipping", "amount": "49.00"}],
                  "due_date": "2026-04-09"},
    }

    # when
    poll_sales(sales)

    # then
    posted = record("ORD-1")
    assert posted.status == RecordStatus.POSTED
    invoice = sandbox_document("customer_invoice", posted.target_id)
    assert (invoice["externalReference"], invoice["customer"]["number"], invoice["amountInCurrency"],
            invoice["documentDueDate"]) == (marker_of("ORD-1"), "10001", 1048.0, "2026-04-09T00:00:00")
    assert [(line["description"], line["account"]["number"], line["amountInCurrency"])
            for line in invoice["invoiceLines"]] == [("Hiking boots", "3000", 999.0), ("Shipping", "3000", 49.0)]


def test_an_invoice_whose_write_was_interrupted_is_found_by_its_external_reference_in_one_call(sales):
    # given
    SOURCE["ORD-1"] = {"document": "customer_invoice", "customer": "10001", "amount": "250.00", "currency": "SEK"}
    CRASH_AFTER_WRITE.append(True)
    with pytest.raises(Crash):
        poll_sales(sales)
    interrupted = record("ORD-1")

    # when
    with time_machine.travel(interrupted.posting_started_at + timedelta(minutes=16)):
        records_advance_due()

    # then
    recovered = record("ORD-1")
    assert recovered.status == RecordStatus.POSTED
    assert sandbox_document("customer_invoice", recovered.target_id)["externalReference"] == marker_of("ORD-1")
    assert statuses("POST", "/v2/customerinvoice") == [201]
    assert statuses("GET", "/v1/customerinvoice") == [200]


def test_a_customer_payment_with_a_fee_is_applied_to_its_invoice_and_the_fee_journaled(sales):
    # given
    SOURCE["PAY-1"] = {"document": "customer_payment", "customer": "10001", "amount": "1250.00", "fee": "25.00",
                       "currency": "SEK", "extra": {"invoice_number": "100001"}}

    # when
    poll_sales(sales)

    # then
    posted = record("PAY-1")
    assert posted.status == RecordStatus.POSTED
    (journal,) = journals_with(posting_marker_part(marker_of("PAY-1"), "fee"))
    assert posted.target_id == f"payment 200001 + journal {journal['batchNumber']}"
    payment = sandbox_document("customer_payment", "200001")
    assert (payment["paymentRef"], payment["paymentAmount"], payment["cashAccount"]) == (
        marker_of("PAY-1"), 1250.0, "1580")
    assert [(line["refNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [("100001", 1250.0)]
    assert [(line["accountNumber"], line["debitAmountInCurrency"], line["creditAmountInCurrency"])
            for line in journal["journalTransactionLines"]] == [("7770", 25.0, 0.0), ("1580", 0.0, 25.0)]
    balances = requests.get(f"{sales.base_url}/_state/balances", timeout=10).json()["balances"]
    assert {row["account"]: (row["debit"], row["credit"]) for row in balances if row["account"] in ("1580", "7770")} \
        == {"1580": ("0.00", "25.00"), "7770": ("25.00", "0.00")}


def test_a_crash_between_the_payment_and_its_fee_journal_duplicates_neither(sales, monkeypatch):
    # given
    SOURCE["PAY-1"] = {"document": "customer_payment", "customer": "10001", "amount": "1250.00", "fee": "25.00",
                       "currency": "SEK", "extra": {"invoice_number": "100001"}}
    journal_post = postings.visma_journal_post
    crashes = [Crash("worker died after the payment, before the fee journal")]

    def crash_once(*args, **kwargs):
        if crashes:
            raise crashes.pop()
        return journal_post(*args, **kwargs)

    monkeypatch.setattr(postings, "visma_journal_post", crash_once)
    with pytest.raises(Crash):
        poll_sales(sales)
    interrupted = record("PAY-1")

    # when
    with time_machine.travel(interrupted.posting_started_at + timedelta(minutes=16)):
        records_advance_due()

    # then
    recovered = record("PAY-1")
    assert interrupted.status == RecordStatus.POSTING
    assert recovered.status == RecordStatus.POSTED
    (journal,) = journals_with(posting_marker_part(marker_of("PAY-1"), "fee"))
    assert recovered.target_id == f"payment 200001 + journal {journal['batchNumber']}"
    assert statuses("POST", "/v1/customerPayment") == [201]
    assert statuses("POST", "/v2/journaltransaction") == [201]
    assert VismaDocument.objects.filter(collection="customer_payment").count() == 1


def test_a_supplier_payment_is_applied_to_the_supplier_invoice_from_the_bank_account(sales):
    # given
    SOURCE["OUT-1"] = {"document": "supplier_payment", "supplier": "20001", "amount": "1875.00", "currency": "SEK",
                       "extra": {"invoice_number": "300001", "cash_account": "1920"}}

    # when
    poll_sales(sales)

    # then
    posted = record("OUT-1")
    assert (posted.status, posted.target_id) == (RecordStatus.POSTED, "400001")
    payment = sandbox_document("supplier_payment", "400001")
    assert (payment["paymentRef"], payment["paymentAmount"], payment["cashAccount"], payment["supplier"]["number"]) \
        == (marker_of("OUT-1"), 1875.0, "1920", "20001")
    assert [(line["invoiceRefNbr"], line["amountPaid"]) for line in payment["paymentLines"]] == [("300001", 1875.0)]
