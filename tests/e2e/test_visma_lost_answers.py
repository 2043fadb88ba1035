"""A lost answer is never a second document: Visma does the write, the answer is lost (502, or a read timeout after
the write), and after the pipeline's retries and a replay there is exactly one document. Every document type, over
real HTTP, in both of the sandbox's overflow modes, with own numbers on and off."""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import requests
import time_machine

from audit.models import RecordStatus, SyncRecord
from audit.services import record_replay
from connectors.models import VISMA_DOCUMENT_KINDS
from connectors.pipeline import SourceObject, record_advance, records_advance_due, stream_poll
from connectors.visma.duplicates import visma_duplicates_check
from mappings.documents import MatchFacts, Posting, PostingLine, posting_marker_part
from sandbox.models import VismaDocument
from sandbox.paypal import paypal_capture_create
from sandbox.services import (
    VISMA_SANDBOX_COMPANY_ID, visma_fault_fail, visma_fault_lose_answer, visma_fault_slow_commit,
)
from tests.e2e.test_stripe_payments import world as stripe_world  # noqa: F401  (a fixture)
from tests.e2e.test_visma_documents import VismaSales, poll_sales, sales  # noqa: F401  (sales is a fixture)
from tests.e2e.test_visma_pipeline import MORNING, POSTING_DAY, SOURCE, books, marker_of  # noqa: F401
from tests.factories import GLMappingRuleFactory
from tests.paypal.world import MIKKO, hours_ago, world as paypal_world  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

# A text longer than any Visma description (255/256): the product cuts it, so neither overflow mode refuses it.
LONG_TEXT = "Order with a very long note from the webshop " * 8
LOSSES = ("502", "timeout")
# The timeout case: the client gives up after READ_TIMEOUT, the sandbox answers LATE_BY after its commit.
READ_TIMEOUT = 0.5
LATE_BY = 1.0


class VismaEverything(VismaSales):
    """Every document we write into Visma: payload["document"] says which; parties from payload["fields"]."""

    name = "visma_everything"

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        if payload["document"] in ("customer", "supplier"):
            return Posting(
                document=payload["document"], marker=self.marker(source.source_id), currency="SEK", date=POSTING_DAY,
                description=f"{payload['document']} {source.source_id}",
                facts=MatchFacts(transaction_type=payload["document"], amount=Decimal("0"), currency="SEK"),
                extra={"fields": payload["fields"]},
            )
        posting = super().transform(source)
        if payload["document"] == "supplier_invoice":
            amount = Decimal(payload["amount"])
            posting.lines = [PostingLine(role="account", debit=amount), PostingLine(role="clearing", credit=amount)]
        posting.description = f"{source.source_id}: {LONG_TEXT}"
        return posting


SOURCES = {
    "journal": {"document": "journal", "amount": "100.00", "fee": "3.40", "currency": "SEK"},
    "customer_invoice": {"document": "customer_invoice", "customer": "10001", "amount": "1048.00",
                         "currency": "SEK"},
    "customer_payment": {"document": "customer_payment", "customer": "10001", "amount": "1250.00", "fee": "25.00",
                         "currency": "SEK", "extra": {"invoice_number": "100001"}},
    "supplier_invoice": {"document": "supplier_invoice", "supplier": "20001", "amount": "2400.00", "currency": "SEK"},
    "supplier_payment": {"document": "supplier_payment", "supplier": "20001", "amount": "1875.00", "currency": "SEK",
                         "extra": {"invoice_number": "300001", "cash_account": "1920"}},
    "customer": {"document": "customer", "amount": "0", "currency": "SEK",
                 "fields": {"name": "Fjellheim Turlag", "currencyId": "NOK",
                            "mainContact": {"email": "post@fjellheim.example"}}},
    "supplier": {"document": "supplier", "amount": "0", "currency": "SEK",
                 "fields": {"name": "Tindevegen Transport AS", "currencyId": "NOK"}},
}
# Where each document keeps our marker in the sandbox.
MARKED = {
    "journal": ("journal", None),
    "customer_invoice": ("customer_invoice", "externalReference"),
    "customer_payment": ("customer_payment", "paymentRef"),
    "supplier_invoice": ("supplier_invoice", "supplierReference"),
    "supplier_payment": ("supplier_payment", "paymentRef"),
    "customer": ("customer", "accountReference"),
    "supplier": ("supplier", "accountReference"),
}


def documents_marked(document: str, marker: str) -> list[dict]:
    collection, field = MARKED[document]
    bodies = [found.body for found in VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID,
                                                                   collection=collection)]
    if field is None:
        return [body for body in bodies
                if any(line["referenceNumber"] == marker for line in body["journalTransactionLines"])]
    return [body for body in bodies if body.get(field) == marker]


@pytest.fixture(params=["refuse", "truncate"])
def overflow(request, live_server) -> str:
    """The sandbox's overflow mode for the test, switched over HTTP as any client would."""
    answer = requests.post(f"{live_server.url}/sandbox/visma/_control/field-lengths", json={"mode": request.param},
                           timeout=10)
    assert answer.json() == {"ok": True, "mode": request.param}
    return request.param


@pytest.fixture
def everything(sales, register_stream):  # noqa: F811
    """The sales books with a stream for every document and a rule for the supplier invoice."""
    register_stream("paypal", VismaEverything)
    GLMappingRuleFactory(tenant=sales.tenant, system="paypal", name="supplier_invoice",
                         transaction_type="supplier_invoice", gl_account="6540", fee_account="",
                         clearing_account="2440")
    GLMappingRuleFactory(tenant=sales.tenant, system="paypal", name="journal", transaction_type="journal",
                         gl_account="3000", fee_account="7770", clearing_account="1580")
    return sales


def own_numbers(books, on: bool) -> None:  # noqa: F811
    books.tenant.visma_own_numbers = list(VISMA_DOCUMENT_KINDS) if on else []
    books.tenant.save(update_fields=["visma_own_numbers"])


def lose_answers(loss: str, calls: int, settings) -> None:
    if loss == "502":
        visma_fault_lose_answer(calls, status_code=502)
    else:
        settings.HTTP_READ_TIMEOUT = READ_TIMEOUT
        visma_fault_lose_answer(calls, seconds=LATE_BY)


def retried_until_settled(source_id: str, loss: str, *, sweeps: int = 4) -> SyncRecord:
    """The sweep, each time the record's next attempt is due, until it is no longer retrying."""
    record = SyncRecord.objects.get(source_id=source_id)
    for _ in range(sweeps):
        if record.status != RecordStatus.RETRYING:
            break
        if loss == "timeout":
            time.sleep(LATE_BY)  # the late answer's request thread ends before the clock moves
        with time_machine.travel(record.next_attempt_at + timedelta(seconds=1)):
            records_advance_due()
        record.refresh_from_db()
    return record


@pytest.mark.parametrize("own", [True, False], ids=["own-numbers", "series-numbers"])
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("document", list(SOURCES))
def test_a_write_whose_answer_is_lost_is_one_document_after_retries_and_a_replay(everything, overflow, settings,
                                                                                 document, loss, own):
    # given: the customer payment loses the answers of both its writes (the payment, then its fee journal)
    own_numbers(everything, own)
    SOURCE["DOC-1"] = SOURCES[document]
    lose_answers(loss, 2 if document == "customer_payment" else 1, settings)

    # when
    stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1), end=MORNING)
    lost = SyncRecord.objects.get(source_id="DOC-1")
    posted = retried_until_settled("DOC-1", loss)
    replayed = stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1),
                           end=MORNING)

    # then
    assert (lost.status, lost.write_attempted) == (RecordStatus.RETRYING, True), lost.reasons
    assert posted.status == RecordStatus.POSTED
    assert (replayed.fetched, replayed.skipped, replayed.posted) == (1, 1, 0)
    marker = marker_of("DOC-1")
    (found,) = documents_marked(document, marker)
    if document == "customer_payment":
        (fee_journal,) = documents_marked("journal", posting_marker_part(marker, "fee"))
        assert posted.target_id == f"payment {found['refNbr']} + journal {fee_journal['batchNumber']}"
    if own and document not in ("customer_payment",):
        number = {"journal": "batchNumber", "customer": "number", "supplier": "number",
                  "supplier_payment": "refNbr"}.get(document, "referenceNumber")
        assert (found[number], posted.target_id) == (marker, marker)
    description = {"journal": "description", "customer_invoice": "invoiceText", "customer_payment": "invoiceText",
                   "supplier_invoice": "description", "supplier_payment": "description"}.get(document)
    if description:
        assert found[description].startswith("DOC-1: Order with a very long note")
        assert len(found[description]) in (255, 256) and found[description].endswith("…")


def test_a_lost_answer_then_lookups_refused_until_the_record_fails_is_found_on_replay_not_written_again(
        everything, overflow, settings):
    # given
    settings.SYNC_MAX_ATTEMPTS = 2
    SOURCE["DOC-1"] = SOURCES["journal"]
    lose_answers("502", 1, settings)
    stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1), end=MORNING)
    lost = SyncRecord.objects.get(source_id="DOC-1")
    visma_fault_fail(settings.HTTP_MAX_RETRIES + 1)  # the lookup of the next attempt fails, with its retries
    with time_machine.travel(lost.next_attempt_at + timedelta(seconds=1)):
        failed = record_advance(lost)

    # when
    replayed = record_advance(record_replay(failed))

    # then
    assert failed.status == RecordStatus.FAILED
    assert replayed.status == RecordStatus.POSTED
    (journal,) = documents_marked("journal", marker_of("DOC-1"))
    assert replayed.target_id == journal["batchNumber"]


def test_a_write_that_commits_after_the_client_gave_up_and_looked_is_refused_by_its_own_number(everything, overflow,
                                                                                            settings):
    # given: the first POST waits 1.5 s before it writes; the client gives up at 0.5 s and its retry finds nothing
    own_numbers(everything, True)
    settings.HTTP_READ_TIMEOUT = READ_TIMEOUT
    SOURCE["DOC-1"] = SOURCES["journal"]
    visma_fault_slow_commit(1, seconds=1.5)

    # when
    stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1), end=MORNING)
    timed_out = SyncRecord.objects.get(source_id="DOC-1")
    with time_machine.travel(timed_out.next_attempt_at + timedelta(seconds=1)):
        records_advance_due()
    time.sleep(2.0)  # the held-back POST wakes and tries to write the same number

    # then
    assert "ReadTimeout" in timed_out.last_error
    assert SyncRecord.objects.get(source_id="DOC-1").status == RecordStatus.POSTED
    marker = marker_of("DOC-1")
    (journal,) = documents_marked("journal", marker)
    assert journal["batchNumber"] == marker


def test_a_write_that_commits_after_the_client_gave_up_is_found_once_the_settle_time_has_passed(everything,
                                                                                                   overflow, settings):
    # given: numbers from Visma's series (nothing refuses a second write); the POST waits 1.5 s before it writes and
    # the client gives up at 0.5 s, as a 30 s read timeout gives up on a Visma that takes longer to commit
    own_numbers(everything, False)
    settings.HTTP_READ_TIMEOUT = READ_TIMEOUT
    SOURCE["DOC-1"] = SOURCES["journal"]
    visma_fault_slow_commit(1, seconds=1.5)
    stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1), end=MORNING)
    timed_out = SyncRecord.objects.get(source_id="DOC-1")

    # when the sweep runs a minute later (when the backoff alone would retry), then once the settle time has passed
    with time_machine.travel(timed_out.updated_at + timedelta(seconds=60)):
        a_minute_later = records_advance_due()
    time.sleep(2.0)  # the held-back POST writes its journal
    with time_machine.travel(timed_out.next_attempt_at + timedelta(seconds=1)):
        records_advance_due()

    # then: nothing was written again before the settle time; the first journal was found, not written twice
    assert "ReadTimeout" in timed_out.last_error
    assert timed_out.next_attempt_at - timed_out.updated_at >= timedelta(seconds=599)
    assert a_minute_later == 0
    posted = SyncRecord.objects.get(source_id="DOC-1")
    (journal,) = documents_marked("journal", marker_of("DOC-1"))
    assert (posted.status, posted.target_id) == (RecordStatus.POSTED, journal["batchNumber"])


def test_without_the_settle_time_a_late_commit_is_a_second_journal_which_the_duplicate_check_shows(
        everything, overflow, settings):
    # given the settle time switched off: the retry a minute later looks the marker up before the first POST wrote
    own_numbers(everything, False)
    settings.HTTP_READ_TIMEOUT, settings.SYNC_WRITE_SETTLE_SECONDS = READ_TIMEOUT, 0
    SOURCE["DOC-1"] = SOURCES["journal"]
    visma_fault_slow_commit(1, seconds=1.5)
    stream_poll(everything.integration, VismaEverything.name, start=MORNING - timedelta(days=1), end=MORNING)
    timed_out = SyncRecord.objects.get(source_id="DOC-1")
    with time_machine.travel(timed_out.updated_at + timedelta(seconds=60)):
        records_advance_due()
    time.sleep(2.0)

    # when the duplicate check runs
    check_duplicates = visma_duplicates_check(everything.tenant)

    # then: two journals carry the marker, and the record shows both numbers to finance
    journals = sorted(journal["batchNumber"] for journal in documents_marked("journal", marker_of("DOC-1")))
    assert len(journals) == 2
    [record] = check_duplicates
    assert (record.status, sorted([record.target_id, *record.duplicate_targets])) == (RecordStatus.POSTED, journals)


# --- through the vendors' own streams -------------------------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_a_paypal_capture_whose_journal_answer_is_lost_is_one_journal(paypal_world, overflow,  # noqa: F811
                                                                      settings, loss):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=MIKKO, at=hours_ago(0),
                                    notify=False)
    lose_answers(loss, 1, settings)

    # when
    paypal_world.deliver(paypal_world.last_event("PAYMENT.CAPTURE.COMPLETED"))
    paypal_world.process_inbox()
    lost = paypal_world.record("captures", capture.object_id)
    posted = retried_until_settled(capture.object_id, loss)
    paypal_world.deliver(paypal_world.last_event("PAYMENT.CAPTURE.COMPLETED"))  # PayPal delivers it again
    paypal_world.process_inbox()

    # then
    assert (lost.status, posted.status) == (RecordStatus.RETRYING, RecordStatus.POSTED)
    (journal,) = paypal_world.journal_with(capture.object_id)
    assert journal["batchNumber"] == paypal_world.marker(capture.object_id)  # own numbers: journals by default
    assert posted.target_id == journal["batchNumber"]


@pytest.mark.parametrize("loss", LOSSES)
def test_a_stripe_payment_whose_answers_are_lost_is_one_payment_and_one_fee_journal(
        stripe_world, overflow, settings, loss):  # noqa: F811
    # given: Visma invoice 100002 is EUR 120.00 for customer 10004
    invoice_id = stripe_world.stripe_invoice_for("100002", 12000, "eur")
    paid = stripe_world.stripe.v1.invoices.pay(invoice_id, {"source": "tok_visa"})
    lose_answers(loss, 2, settings)

    # when
    stripe_world.deliver_and_process()
    lost = stripe_world.record("charges", stripe_world.charge_of(paid.id))
    posted = retried_until_settled(stripe_world.charge_of(paid.id), loss)
    stripe_world.deliver_and_process()

    # then
    assert (lost.status, posted.status) == (RecordStatus.RETRYING, RecordStatus.POSTED)
    marker = stripe_world.marker("charges", stripe_world.charge_of(paid.id))
    (payment,) = [body for body in stripe_world.visma("customer_payment") if body["paymentRef"] == marker]
    fee_marker = stripe_world.marker("charges", stripe_world.charge_of(paid.id), "fee")
    (fee_journal,) = [body for body in stripe_world.visma("journal") if body["batchNumber"] == fee_marker]
    assert posted.target_id == f"payment {payment['refNbr']} + journal {fee_journal['batchNumber']}"
    assert payment["refNbr"] == marker
