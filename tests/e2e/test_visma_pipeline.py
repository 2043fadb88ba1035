"""The pipeline posting real journals into the sandbox Visma over HTTP: faults, crashes, timeouts, reference checks."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import time_machine

from audit.models import AuditEntry, RecordStatus, SyncRecord
from connectors.models import Connection, HttpExchange, Integration, Tenant
from connectors.pipeline import SourceObject, Stream, record_advance, records_advance_due, stream_poll
from connectors.visma.client import VismaClient
from connectors.visma.target import VismaTarget
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.models import GLAccount, GLMappingRule
from mappings.reference import reference_data_refresh
from sandbox.models import VismaDocument
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID, VISMA_SANDBOX_CLIENT_SECRET, VISMA_SANDBOX_COMPANY_ID, VISMA_SANDBOX_TENANT_ID,
    visma_client_configure, visma_fault_delay, visma_fault_fail, visma_fault_stale_puts, visma_fault_throttle,
    visma_sandbox_seed,
)
from tests.factories import (
    ConnectionFactory, GLMappingRuleFactory, IntegrationFactory, TenantFactory, stream_marker,
)
from tests.ledger_stream import Crash

pytestmark = pytest.mark.django_db(transaction=True)

POSTING_DAY = date(2026, 3, 10)
LATE_IN_THE_HOUR = datetime(2026, 3, 10, 10, 59, 58, tzinfo=UTC)
MORNING = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
SEED_JOURNALS = 1  # the opening balance


# --- the streams the tests run ------------------------------------------------------------------------------


SOURCE: dict[str, dict] = {}
# Called with the stream just before the source object of that id is read (a clock moved, a token lost...).
BEFORE_READ: dict[str, object] = {}
# One entry per write that "crashes" after Visma took it: the worker dies before the local commit.
CRASH_AFTER_WRITE: list[bool] = []


class VismaPayments(VismaTarget, Stream):
    """PayPal-like payments → balanced journals: clearing debit (gross − fee), fee debit, sales credit."""

    name = "visma_payments"
    kind = "paypal"
    target_kind = "journal"

    def read_window(self, start, end):
        for source_id in sorted(SOURCE):
            if source_id in BEFORE_READ:
                BEFORE_READ.pop(source_id)(self)
            yield self.read_one(source_id)

    def read_one(self, source_id):
        payload = SOURCE[source_id]
        return SourceObject(source_id=source_id, payload=payload, amount=Decimal(payload["amount"]),
                            currency=payload["currency"])

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        gross, fee = Decimal(payload["amount"]), Decimal(payload.get("fee", "0"))
        lines = [PostingLine(role="clearing", debit=gross - fee), PostingLine(role="account", credit=gross)]
        if fee:
            lines.insert(1, PostingLine(role="fee", debit=fee))
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=payload["currency"], date=POSTING_DAY,
            description=f"PayPal capture {source.source_id}",
            facts=MatchFacts(transaction_type="capture", amount=gross, currency=payload["currency"]), lines=lines,
        )

    def write(self, posting, record):
        target_id = super().write(posting, record)
        if CRASH_AFTER_WRITE:
            CRASH_AFTER_WRITE.pop()
            raise Crash("worker died after Visma took the journal, before the local commit")
        return target_id


class VismaBills(VismaPayments):
    """Supplier bills → supplier invoices, with the supplier's details brought up to date first."""

    name = "visma_bills"
    target_kind = "supplier_invoice"

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        amount = Decimal(payload["amount"])
        return Posting(
            document="supplier_invoice", marker=self.marker(source.source_id), currency=payload["currency"],
            date=POSTING_DAY, description=f"Bill {source.source_id}",
            facts=MatchFacts(transaction_type="bill", amount=amount, currency=payload["currency"]),
            lines=[PostingLine(role="account", debit=amount), PostingLine(role="clearing", credit=amount)],
            supplier=payload["supplier"], extra={"supplier_update": payload["supplier_update"]},
        )


@dataclass
class Books:
    """The tenant, its integration, the sandbox's address and the source the streams read."""

    integration: Integration
    base_url: str
    source: dict

    @property
    def tenant(self) -> Tenant:
        return self.integration.tenant

    @property
    def connection(self) -> Connection:
        return self.integration.visma_connection


def visma_connection_for(tenant, base_url: str) -> Connection:
    return ConnectionFactory(
        tenant=tenant, system="visma", base_url=base_url, token_url=f"{base_url}/connect/token",
        credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                     "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID},
    )


@pytest.fixture
def books(transactional_db, live_server, register_stream):
    """The sandbox company, a tenant whose Visma connection points at it, the test streams on the paypal kind,
    capture and bill rules, and the reference mirror refreshed."""
    visma_sandbox_seed()
    base_url = f"{live_server.url}/sandbox/visma"
    # Own numbers off: these tests prove the lookups by marker (tests/e2e/test_visma_lost_answers.py has both).
    tenant = TenantFactory(visma_own_numbers=[])
    visma_connection_for(tenant, base_url)
    integration = IntegrationFactory(tenant=tenant, kind="paypal", settings={"cash_account": "1580"})
    GLMappingRuleFactory(tenant=tenant, system="paypal", name="PayPal captures", transaction_type="capture",
                         gl_account="3000", fee_account="7770", clearing_account="1580", dimensions={"1": "100"})
    GLMappingRuleFactory(tenant=tenant, system="paypal", name="Hosting bills", transaction_type="bill",
                         gl_account="6540", fee_account="", clearing_account="2440")
    reference_data_refresh(tenant)
    HttpExchange.objects.all().delete()  # the refresh's calls are the fixture's, not the test's
    register_stream("paypal", VismaPayments)
    register_stream("paypal", VismaBills)
    SOURCE.clear()
    BEFORE_READ.clear()
    CRASH_AFTER_WRITE.clear()
    yield Books(integration=integration, base_url=base_url, source=SOURCE)
    SOURCE.clear()
    BEFORE_READ.clear()
    CRASH_AFTER_WRITE.clear()


def poll(books: Books, stream: str = VismaPayments.name):
    return stream_poll(books.integration, stream, start=MORNING - timedelta(days=1), end=MORNING)


def journals_with(marker: str) -> list[dict]:
    """The sandbox's journals with a line carrying this referenceNumber."""
    return [
        document.body for document in VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID,
                                                                    collection="journal")
        if any(line["referenceNumber"] == marker for line in document.body["journalTransactionLines"])
    ]


def marker_of(source_id: str) -> str:
    """The marker the pipeline gave the record of this source object."""
    found = SyncRecord.objects.get(source_id=source_id)
    return stream_marker(found.integration, found.stream, source_id)


def journal_count() -> int:
    return VismaDocument.objects.filter(company_id=VISMA_SANDBOX_COMPANY_ID, collection="journal").count()


def statuses(method: str, path: str) -> list[int | None]:
    """The answers to the calls on exactly this path (a document's own path, /…/{number}, is another)."""
    exchanges = HttpExchange.objects.filter(method=method, url__regex=rf"{path}(\?|$)").order_by("id")
    return list(exchanges.values_list("status_code", flat=True))


def forget_token(books: Books) -> None:
    """No token yet: the next call fetches one at the (travelled) time."""
    Connection.objects.filter(pk=books.connection.pk).update(access_token=None, token_expires_at=None)
    books.connection.access_token, books.connection.token_expires_at = None, None


def record(source_id: str) -> SyncRecord:
    return SyncRecord.objects.get(source_id=source_id)


# --- posted --------------------------------------------------------------------------------------------------


def test_a_balanced_journal_is_posted_and_reaches_the_sandbox_gl_balances(books):
    # given
    books.source["CAP-1"] = {"amount": "100.00", "fee": "3.40", "currency": "SEK"}

    # when
    run = poll(books)

    # then
    posted = record("CAP-1")
    assert (run.posted, posted.status, posted.target_kind) == (1, RecordStatus.POSTED, "journal")
    (journal,) = journals_with(marker_of("CAP-1"))
    assert posted.target_id == journal["batchNumber"]
    assert (journal["financialPeriod"], journal["currencyId"], journal["description"]) == (
        "202603", "SEK", "PayPal capture CAP-1")
    assert [(line["accountNumber"], line["debitAmountInCurrency"], line["creditAmountInCurrency"],
             line["subaccount"]["subaccountNumber"]) for line in journal["journalTransactionLines"]] == [
        ("1580", 96.6, 0.0, "100"), ("7770", 3.4, 0.0, "100"), ("3000", 0.0, 100.0, "100")]
    balances = requests.get(f"{books.base_url}/_state/balances", timeout=10).json()["balances"]
    assert {row["account"]: (row["debit"], row["credit"]) for row in balances} == {
        "1580": ("96.60", "0.00"), "1920": ("50000.00", "0.00"), "2081": ("0.00", "50000.00"),
        "3000": ("0.00", "100.00"), "7770": ("3.40", "0.00"),
    }
    # The write, then the read of its status for the release (a journal not on hold is posted at once here).
    assert list(HttpExchange.objects.filter(sync_record=posted).order_by("id").values_list(
        "method", "url", "status_code")) == [
        ("POST", f"{books.base_url}/v2/journaltransaction", 201),
        ("GET", f"{books.base_url}/v2/journaltransaction/{posted.target_id}", 200)]
    assert posted.target_status == "Posted"


# --- the connection's troubles --------------------------------------------------------------------------------


def test_a_token_that_expires_mid_run_is_refused_once_then_renewed_and_every_journal_posted(books):
    # given
    books.source.update({f"CAP-{n}": {"amount": f"{n}0.00", "currency": "SEK"} for n in (1, 2, 3)})
    with time_machine.travel(MORNING) as traveller:
        forget_token(books)

        def token_expires_in_visma(stream):
            # This worker still believes its token good for hours; Visma Connect has expired it.
            traveller.shift(timedelta(minutes=61))
            stream.visma_client.connection.token_expires_at = MORNING + timedelta(hours=6)

        BEFORE_READ["CAP-3"] = token_expires_in_visma

        # when
        run = poll(books)

    # then
    assert run.posted == 3
    assert [record(f"CAP-{n}").status for n in (1, 2, 3)] == [RecordStatus.POSTED] * 3
    assert statuses("POST", "/v2/journaltransaction") == [201, 201, 401, 201]
    assert statuses("POST", "/connect/token") == [200, 200]
    assert journal_count() == SEED_JOURNALS + 3


def test_a_429_with_a_short_retry_after_is_waited_out_and_the_journal_posted_once(books, settings, monkeypatch):
    # given
    settings.HTTP_BACKOFF_MAX_SECONDS = 5.0
    books.source["CAP-1"] = {"amount": "10.00", "currency": "SEK"}
    # Two calls an hour: the write and the read of its status for the release.
    visma_client_configure(hourly_call_budget=2)
    other_installation = visma_connection_for(TenantFactory(), books.base_url)
    waited = []
    with time_machine.travel(LATE_IN_THE_HOUR, tick=False) as traveller:
        def sleep(seconds):
            waited.append(seconds)
            traveller.shift(timedelta(seconds=seconds))

        monkeypatch.setattr(VismaPayments, "visma_client_options", {"sleep": sleep})
        forget_token(books)
        other = VismaClient(other_installation)
        other.get_json("/v1/account")  # spends the company's budget for this hour
        other.get_json("/v1/account")
        other.close()

        # when
        poll(books)

    # then
    assert record("CAP-1").status == RecordStatus.POSTED
    assert waited == [2.0]
    assert statuses("POST", "/v2/journaltransaction") == [429, 201]
    assert len(journals_with(marker_of("CAP-1"))) == 1


def test_a_429_with_a_long_retry_after_sets_the_next_attempt_at_the_budget_reset_without_spending_one(books):
    # given
    books.source["CAP-1"] = {"amount": "10.00", "currency": "SEK"}
    visma_client_configure(hourly_call_budget=1)
    other_installation = visma_connection_for(TenantFactory(), books.base_url)
    with time_machine.travel(datetime(2026, 3, 10, 10, 30, tzinfo=UTC), tick=False):
        forget_token(books)
        other = VismaClient(other_installation)
        other.get_json("/v1/account")
        other.close()

        # when
        poll(books)

    # then
    waiting = record("CAP-1")
    assert (waiting.status, waiting.attempts) == (RecordStatus.RETRYING, 0)
    assert waiting.next_attempt_at == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert statuses("POST", "/v2/journaltransaction") == [429]
    assert journals_with(marker_of("CAP-1")) == []


def test_a_429_without_retry_after_while_the_budget_remains_is_backed_off_briefly_and_nothing_is_parked(
        books, settings, monkeypatch):
    # given: 15 captures; at 10:34 Visma throttles three calls with 429, no Retry-After, 499 calls left this hour
    settings.HTTP_BACKOFF_BASE_SECONDS, settings.HTTP_BACKOFF_MAX_SECONDS = 0.5, 30.0
    books.source.update({f"CAP-{n:02d}": {"amount": f"{n}.00", "currency": "SEK"} for n in range(1, 16)})
    visma_fault_throttle(3)
    waited = []
    with time_machine.travel(datetime(2026, 3, 10, 10, 34, tzinfo=UTC), tick=False) as traveller:
        def sleep(seconds):
            waited.append(seconds)
            traveller.shift(timedelta(seconds=seconds))

        monkeypatch.setattr(VismaPayments, "visma_client_options", {"sleep": sleep, "jitter": lambda ceiling: ceiling})
        forget_token(books)

        # when
        run = poll(books)

    # then
    assert (run.posted, run.failed) == (15, 0)
    assert set(SyncRecord.objects.values_list("status", flat=True)) == {RecordStatus.POSTED}
    assert waited == [0.5, 1.0, 2.0]
    assert statuses("POST", "/v2/journaltransaction") == [429, 429, 429] + [201] * 15
    assert journal_count() == SEED_JOURNALS + 15


def test_a_500_storm_is_retried_with_backoff_then_the_journal_is_posted_once(books, settings, monkeypatch):
    # given
    settings.HTTP_BACKOFF_BASE_SECONDS = 0.5
    settings.HTTP_BACKOFF_MAX_SECONDS = 8.0
    waited = []
    monkeypatch.setattr(VismaPayments, "visma_client_options",
                        {"sleep": waited.append, "jitter": lambda ceiling: ceiling})
    books.source["CAP-1"] = {"amount": "10.00", "currency": "SEK"}
    visma_fault_fail(3)

    # when
    poll(books)
    failed_once = record("CAP-1")
    too_early = record_advance(failed_once)
    with time_machine.travel(failed_once.next_attempt_at + timedelta(seconds=1)):
        retried = record_advance(failed_once)

    # then
    assert (failed_once.status, failed_once.attempts) == (RecordStatus.RETRYING, 1)
    assert too_early.status == RecordStatus.RETRYING
    assert retried.status == RecordStatus.POSTED
    assert statuses("POST", "/v2/journaltransaction") == [500, 201]
    # The retry looks for the journal first (the 500 might have come after the write); a GET is retried in place.
    assert statuses("GET", "/v2/journaltransaction") == [500, 500, 200]
    assert waited == [0.5, 1.0]
    assert len(journals_with(marker_of("CAP-1"))) == 1


def test_an_update_refused_once_as_stale_is_read_again_and_the_document_posted(books):
    # given
    books.source["BILL-1"] = {"amount": "2400.00", "currency": "NOK", "supplier": "20002",
                              "supplier_update": {"note": "Invoices by e-mail from March 2026"}}
    visma_fault_stale_puts(1)

    # when
    poll(books, VismaBills.name)

    # then
    posted = record("BILL-1")
    assert (posted.status, posted.target_kind) == (RecordStatus.POSTED, "supplier_invoice")
    assert statuses("PUT", "/v1/supplier/20002") == [412, 204]
    assert statuses("POST", "/v1/supplierInvoice") == [201]
    supplier = VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="supplier", key="20002")
    assert supplier.body["note"] == "Invoices by e-mail from March 2026"
    invoice = VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="supplier_invoice",
                                        key=f"Invoice/{posted.target_id}")
    assert (invoice.body["supplierReference"], invoice.body["amount"]) == (marker_of("BILL-1"), 2400.0)


def test_an_update_refused_as_stale_every_time_flags_the_record_with_the_reason_and_posts_nothing(books):
    # given
    books.source["BILL-1"] = {"amount": "2400.00", "currency": "NOK", "supplier": "20002",
                              "supplier_update": {"note": "Invoices by e-mail from March 2026"}}
    visma_fault_stale_puts(3)

    # when
    poll(books, VismaBills.name)

    # then
    flagged = record("BILL-1")
    assert flagged.status == RecordStatus.FLAGGED
    assert flagged.reasons == [
        "supplier_invoice refused by the target: Changed in Visma while we updated it, 3 times: "
        "Supplier version does not match with If-Match header. (IPPException 10003)"
    ]
    assert statuses("PUT", "/v1/supplier/20002") == [412, 412, 412]
    assert statuses("POST", "/v1/supplierInvoice") == []


# --- crashes and lost answers ---------------------------------------------------------------------------------


def test_a_crash_after_visma_took_the_journal_is_recovered_by_marker_without_a_second_journal(books):
    # given
    books.source["CAP-1"] = {"amount": "100.00", "fee": "3.40", "currency": "SEK"}
    CRASH_AFTER_WRITE.append(True)
    with pytest.raises(Crash):
        poll(books)
    interrupted = record("CAP-1")

    # when
    with time_machine.travel(interrupted.posting_started_at + timedelta(minutes=16)):
        swept = records_advance_due()

    # then
    recovered = record("CAP-1")
    assert interrupted.status == RecordStatus.POSTING
    assert swept == 1
    assert recovered.status == RecordStatus.POSTED
    (journal,) = journals_with(marker_of("CAP-1"))
    assert recovered.target_id == journal["batchNumber"]
    assert AuditEntry.objects.filter(sync_record=recovered).first().reason == (
        f"interrupted write found in target by marker {marker_of('CAP-1')}")
    assert statuses("POST", "/v2/journaltransaction") == [201]
    assert statuses("GET", "/v2/journaltransaction") == [200]


def test_a_post_that_timed_out_after_visma_created_the_journal_is_found_by_marker_not_posted_again(books, settings):
    # given
    settings.HTTP_READ_TIMEOUT = 1.0
    books.source["CAP-1"] = {"amount": "100.00", "currency": "SEK"}
    visma_fault_delay(1, seconds=2.0)  # the sandbox answers after the client gave up, and still writes

    # when
    poll(books)
    timed_out = record("CAP-1")
    time.sleep(2.5)  # the sandbox finishes the delayed POST
    with time_machine.travel(timed_out.next_attempt_at + timedelta(seconds=1)):
        retried = record_advance(timed_out)

    # then
    assert timed_out.status == RecordStatus.RETRYING
    assert "ReadTimeout" in timed_out.last_error
    assert retried.status == RecordStatus.POSTED
    (journal,) = journals_with(marker_of("CAP-1"))
    assert retried.target_id == journal["batchNumber"]
    assert AuditEntry.objects.filter(sync_record=retried).first().reason == (
        f"found already posted by marker {marker_of('CAP-1')}")
    assert statuses("POST", "/v2/journaltransaction") == [None]
    assert journal_count() == SEED_JOURNALS + 1


# --- reference data -------------------------------------------------------------------------------------------


def test_an_inactive_account_flags_the_record_naming_the_account_and_the_rule_and_sends_no_journal(books):
    # given
    GLMappingRule.objects.filter(tenant=books.tenant, name="PayPal captures").update(gl_account="3099")
    books.source["CAP-1"] = {"amount": "100.00", "fee": "3.40", "currency": "SEK"}

    # when
    poll(books)

    # then
    flagged = record("CAP-1")
    assert flagged.status == RecordStatus.FLAGGED
    assert flagged.reasons == [
        "GL account 3099 on line 3 (account) is inactive in Visma (chosen by mapping rule 'PayPal captures'): "
        "activate it in Visma or point the rule at an active account."
    ]
    assert statuses("GET", "/v1/account/3099") == [200]  # the live re-check: Visma says inactive too
    assert HttpExchange.objects.filter(url__contains="journaltransaction").count() == 0
    assert journal_count() == SEED_JOURNALS


def test_an_account_visma_has_but_the_mirror_does_not_is_checked_live_and_the_journal_posted(books):
    # given
    GLAccount.objects.filter(tenant=books.tenant, number="3010").delete()
    GLMappingRule.objects.filter(tenant=books.tenant, name="PayPal captures").update(gl_account="3010")
    books.source["CAP-1"] = {"amount": "100.00", "currency": "SEK"}

    # when
    poll(books)

    # then
    assert record("CAP-1").status == RecordStatus.POSTED
    assert GLAccount.objects.get(tenant=books.tenant, number="3010").active is True
    assert statuses("GET", "/v1/account/3010") == [200]
    (journal,) = journals_with(marker_of("CAP-1"))
    assert [line["accountNumber"] for line in journal["journalTransactionLines"]] == ["1580", "3010"]
