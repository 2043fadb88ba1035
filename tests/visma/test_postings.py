"""Visma documents from postings (journals, invoices, payments), found by marker, and the VismaTarget's outcomes."""
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import responses
import time_machine
from responses import matchers

from audit.models import AuditEntry, RecordStatus
from connectors.http import json_dumps
from connectors.models import HttpExchange
from connectors.pipeline import SourceObject, Stream, record_advance, record_ingest
from connectors.visma import postings
from connectors.visma.client import VismaClient
from connectors.visma.target import VismaTarget
from mappings.documents import MatchFacts, Posting, PostingLine, posting_marker_part
from mappings.models import DimensionValue
from mappings.reference import reference_exists_live
from tests.factories import (
    GLAccountFactory, GLMappingRuleFactory, IntegrationFactory, financial_periods_mirror, hand_marker, stream_marker,
)
from tests.visma.conftest import API, TOKEN_URL, payload, token_reply
from tests.visma_openapi_check import visma_requests_recorded

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]
DAY = date(2026, 3, 10)
CLAIMED = datetime(2026, 3, 10, 9, 30, tzinfo=UTC)
CAP = hand_marker("CAP-1")
FEE = posting_marker_part(CAP, "fee")
BILL = hand_marker("BILL-1")
INV = hand_marker("INV-1")
PAY = hand_marker("PAY-1")


@pytest.fixture
def client(visma_connection, mocked):
    token_reply(mocked)
    return VismaClient(visma_connection, sleep=lambda seconds: None)


def capture(marker=CAP, *, document="journal", fee="3.40", customer="", supplier="", **extra) -> Posting:
    """A PayPal-like capture of 100.00 SEK, mapped: clearing 1580 (net), fee 7770, sales 3000, department 100."""
    gross, fee = Decimal("100.00"), Decimal(fee)
    lines = [PostingLine(role="clearing", debit=gross - fee, account="1580", dimensions={"1": "100"})]
    if fee:
        lines.append(PostingLine(role="fee", debit=fee, account="7770", dimensions={"1": "100"}))
    lines.append(PostingLine(role="account", credit=gross, account="3000", dimensions={"1": "100"},
                             description="Hiking boots"))
    return Posting(
        document=document, marker=marker, currency="SEK", date=DAY, description="PayPal capture CAP-1",
        facts=MatchFacts(transaction_type="capture", amount=gross, currency="SEK"), lines=lines,
        customer=customer, supplier=supplier, extra=extra,
    )


def created(mocked, path: str, resource_id: str, status: int = 201):
    return mocked.add(responses.POST, f"{API}{path}", status=status,
                      headers={"Location": f"{API}{path}/{resource_id}"})


def sent_json(call) -> dict:
    return json.loads(call.request.body)


def api_calls(mocked) -> list[tuple[str, str]]:
    return [(call.request.method, call.request.url.split("?")[0].removeprefix(API))
            for call in mocked.calls if call.request.url.startswith(API)]


def nothing_may_be_sent(mocked) -> None:
    """Not even a token: any request now fails the test."""
    mocked.remove(responses.POST, TOKEN_URL)


def journal_row(batch_number: str, references: list[str], *, total: int, max_page_size: int = 500) -> dict:
    """A GET /v2/journaltransaction row (JournalTransactionDto) with one line per reference."""
    return {
        "module": "ModuleGL", "batchNumber": batch_number, "status": "Posted", "financialPeriod": "202603",
        "transactionDate": "2026-03-10T00:00:00", "currencyId": "SEK", "lastModifiedDateTime": "2026-03-10T09:31:00",
        "journalTransactionLines": [
            {"lineNumber": number, "accountNumber": "1580", "referenceNumber": reference,
             "debitAmountInCurrency": 10.0, "creditAmountInCurrency": 0.0}
            for number, reference in enumerate(references, start=1)
        ],
        "metadata": {"totalCount": total, "maxPageSize": max_page_size},
    }


# --- the wire ------------------------------------------------------------------------------------------------


def test_request_json_writes_each_decimal_with_exactly_its_own_digits():
    # given
    document = {"paid": Decimal("96.60"), "large": Decimal("12345678901234567.89"), "fee": [Decimal("-3.40")],
                "day": date(2026, 3, 10), "text": "96.60"}

    # when
    body = json_dumps(document)

    # then
    assert body == ('{"paid": 96.60, "large": 12345678901234567.89, "fee": [-3.40], "day": "2026-03-10", '
                    '"text": "96.60"}')


def test_request_json_refuses_an_amount_that_is_not_a_number():
    # when
    with pytest.raises(ValueError) as refused:
        json_dumps({"amount": Decimal("NaN")})

    # then
    assert str(refused.value) == "NaN is not an amount"


# --- journals -------------------------------------------------------------------------------------------------


def test_a_journal_is_posted_in_visma_s_shape_with_the_marker_on_every_line(client, mocked):
    # given
    created(mocked, "/v2/journaltransaction", "000042")

    # when
    batch_number = postings.visma_journal_post(client, capture())

    # then
    assert batch_number == "000042"
    (post,) = [call for call in mocked.calls if call.request.method == "POST" and call.request.url.startswith(API)]
    assert b'"debitAmountInCurrency": {"value": 96.60}' in post.request.body
    assert sent_json(post) == {
        "transactionDate": {"value": "2026-03-10T00:00:00"},
        "financialPeriod": {"value": "202603"},
        "currencyId": {"value": "SEK"},
        "description": {"value": "PayPal capture CAP-1"},
        "journalTransactionLines": [
            {"operation": "Insert", "accountNumber": {"value": "1580"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}], "referenceNumber": {"value": CAP},
             "transactionDescription": {"value": "PayPal capture CAP-1"}, "debitAmountInCurrency": {"value": 96.6}},
            {"operation": "Insert", "accountNumber": {"value": "7770"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}], "referenceNumber": {"value": CAP},
             "transactionDescription": {"value": "PayPal capture CAP-1"}, "debitAmountInCurrency": {"value": 3.4}},
            {"operation": "Insert", "accountNumber": {"value": "3000"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}], "referenceNumber": {"value": CAP},
             "transactionDescription": {"value": "Hiking boots"}, "creditAmountInCurrency": {"value": 100.0}},
        ],
    }


def test_a_journal_is_found_by_its_marker_on_a_line_of_a_batch_split_across_pages(client, mocked):
    # given
    since = CLAIMED - timedelta(hours=3)
    query = {"module": "GL", "lastModifiedDateTime": "2026-03-10T06:30:00"}
    pages = [
        (1, 500, [journal_row("000040", ["pp:OTHER", "pp:OTHER"], total=5, max_page_size=2)]),
        (2, 2, [journal_row("000041", ["pp:NEXT", "pp:NEXT"], total=5, max_page_size=2)]),
        (3, 2, [journal_row("000041", [CAP], total=5, max_page_size=2)]),
    ]
    for number, size, rows in pages:
        mocked.add(responses.GET, f"{API}/v2/journaltransaction", json=rows, match=[matchers.query_param_matcher(
            {**query, "pageNumber": str(number), "pageSize": str(size)})])

    # when
    found = postings.visma_journal_find(client, capture(), since=since)

    # then
    assert found == "000041"
    assert api_calls(mocked) == [("GET", "/v2/journaltransaction")] * 3


def test_a_journal_lookup_without_a_claim_reads_the_posting_s_period_and_stops_at_an_empty_page(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v2/journaltransaction", json=[], match=[matchers.query_param_matcher(
        {"module": "GL", "periodId": "202603", "pageNumber": "1", "pageSize": "500"})])

    # when
    found = postings.visma_journal_find(client, capture(), since=None)

    # then
    assert found is None
    assert api_calls(mocked) == [("GET", "/v2/journaltransaction")]


def test_a_journal_without_an_amount_on_any_line_is_refused_before_anything_is_sent(client, mocked):
    # given
    nothing_may_be_sent(mocked)
    posting = capture(fee="0")
    for line in posting.lines:
        line.debit = line.credit = Decimal("0")

    # when
    with pytest.raises(postings.VismaDocumentError) as refused:
        postings.visma_journal_post(client, posting)

    # then
    assert str(refused.value) == f"journal {CAP} has no line with an amount"
    assert api_calls(mocked) == []


# --- customer invoices ----------------------------------------------------------------------------------------


def test_a_customer_invoice_carries_the_marker_as_external_reference_and_its_lines(client, mocked):
    # given
    created(mocked, "/v2/customerinvoice", "100007")
    posting = capture(INV, document="customer_invoice", fee="0", customer="10001", due_date="2026-04-09",
                      note="Thank you", lines=[
                          {"description": "Hiking boots", "quantity": "2", "unit_price": "45.00"},
                          {"description": "Shipping", "amount": "10.00", "account": "3010", "vat_code": "1"}])

    # when
    number = postings.visma_customer_invoice_post(client, posting)

    # then
    assert number == "100007"
    (post,) = [call for call in mocked.calls if call.request.method == "POST" and call.request.url.startswith(API)]
    assert sent_json(post) == {
        "customerNumber": {"value": "10001"},
        "documentDate": {"value": "2026-03-10T00:00:00"},
        "financialPeriod": {"value": "202603"},
        "currencyId": {"value": "SEK"},
        "externalReference": {"value": INV},
        "invoiceText": {"value": "PayPal capture CAP-1"},
        "documentDueDate": {"value": "2026-04-09T00:00:00"},
        "note": {"value": "Thank you"},
        "invoiceLines": [
            {"operation": "Insert", "description": {"value": "Hiking boots"}, "quantity": {"value": 2},
             "unitPriceInCurrency": {"value": 45.0}, "accountNumber": {"value": "3000"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}]},
            {"operation": "Insert", "description": {"value": "Shipping"}, "quantity": {"value": 1},
             "manualAmountInCurrency": {"value": 10.0}, "accountNumber": {"value": "3010"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}], "vatCodeId": {"value": "1"}},
        ],
    }


def test_a_customer_invoice_is_found_by_its_external_reference_in_one_call(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v1/customerinvoice", match=[matchers.query_param_matcher(
        {"externalReference": INV, "pageNumber": "1", "pageSize": "500"})],
        json=[{"referenceNumber": "100007", "documentType": "Invoice", "externalReference": INV,
               "metadata": {"totalCount": 1, "maxPageSize": 100}}])

    # when
    found = postings.visma_customer_invoice_find(client, capture(INV, document="customer_invoice"))

    # then
    assert found == "100007"
    assert api_calls(mocked) == [("GET", "/v1/customerinvoice")]


def test_a_customer_invoice_update_is_sent_with_if_match_and_applied_again_after_a_412(client, mocked):
    # given
    url = f"{API}/v1/customerinvoice/100007"
    mocked.add(responses.GET, url, json={"referenceNumber": "100007"}, headers={"ETag": '"v1"'})
    mocked.add(responses.PUT, url, status=412, json={"message": "Invoice version does not match with If-Match header"})
    mocked.add(responses.GET, url, json={"referenceNumber": "100007"}, headers={"ETag": '"v2"'})
    mocked.add(responses.PUT, url, status=204, headers={"ETag": '"v3"'})

    # when
    etag = postings.visma_customer_invoice_update(client, "100007", {"invoiceText": "Webshop order 1001"})

    # then
    assert etag == '"v3"'
    puts = [call.request for call in mocked.calls if call.request.method == "PUT"]
    assert [put.headers["If-Match"] for put in puts] == ['"v1"', '"v2"']
    assert [json.loads(put.body) for put in puts] == [{"invoiceText": {"value": "Webshop order 1001"}}] * 2


# --- customer payments ----------------------------------------------------------------------------------------


def test_a_customer_payment_with_a_fee_is_the_payment_then_the_fee_journal_with_its_own_marker(client, mocked):
    # given
    created(mocked, "/v1/customerPayment", "200001")
    created(mocked, "/v2/journaltransaction", "000007")
    posting = capture(CAP, document="customer_payment", customer="10001", invoice_number="100001")

    # when
    target_id = postings.visma_customer_payment_write(client, posting, since=CLAIMED, look_up_first=False,
                                                      settings={"payment_method": "PAYPAL"})

    # then
    assert target_id == "payment 200001 + journal 000007"
    payment_post, journal_post = [sent_json(call) for call in mocked.calls if call.request.method == "POST"
                                  and call.request.url.startswith(API)]
    assert payment_post == {
        "type": {"value": "Payment"}, "customer": {"value": "10001"},
        "applicationDate": {"value": "2026-03-10T00:00:00"}, "applicationPeriod": {"value": "202603"},
        "paymentRef": {"value": CAP}, "cashAccount": {"value": "1580"}, "paymentMethod": {"value": "PAYPAL"},
        "currency": {"value": "SEK"}, "paymentAmount": {"value": 100.0},
        "invoiceText": {"value": "PayPal capture CAP-1"},
        "paymentLines": [{"operation": "Insert", "documentType": {"value": "Invoice"}, "refNbr": {"value": "100001"},
                          "amountPaid": {"value": 100.0}}],
    }
    assert [(line["accountNumber"]["value"], line["referenceNumber"]["value"],
             line.get("debitAmountInCurrency", {}).get("value"), line.get("creditAmountInCurrency", {}).get("value"))
            for line in journal_post["journalTransactionLines"]] == [
        ("7770", FEE, 3.4, None), ("1580", FEE, None, 3.4)]
    assert api_calls(mocked) == [("POST", "/v1/customerPayment"), ("POST", "/v2/journaltransaction")]


def test_after_a_crash_between_payment_and_fee_journal_only_the_missing_journal_is_written(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v1/customerPayment", match=[matchers.query_param_matcher({
        "customer": "10001", "paymentType": "Payment", "lastModifiedDateTime": "2026-03-10T09:30:00",
        "lastModifiedDateTimeCondition": ">=", "pageNumber": "1", "pageSize": "500"})],
        json=[{"type": "Payment", "refNbr": "200000", "paymentRef": "pp:CAP-0",
               "metadata": {"totalCount": 2, "maxPageSize": 100}},
              {"type": "Payment", "refNbr": "200001", "paymentRef": CAP,
               "metadata": {"totalCount": 2, "maxPageSize": 100}}])
    mocked.add(responses.GET, f"{API}/v2/journaltransaction", json=[])
    created(mocked, "/v2/journaltransaction", "000007")
    posting = capture(CAP, document="customer_payment", customer="10001", invoice_number="100001")

    # when
    target_id = postings.visma_customer_payment_write(client, posting, since=CLAIMED, look_up_first=True, settings={})

    # then
    assert target_id == "payment 200001 + journal 000007"
    assert api_calls(mocked) == [("GET", "/v1/customerPayment"), ("GET", "/v2/journaltransaction"),
                                 ("POST", "/v2/journaltransaction")]


def test_a_customer_payment_counts_as_posted_only_when_its_fee_journal_is_there_too(client, mocked):
    # given
    payments = [{"type": "Payment", "refNbr": "200001", "paymentRef": CAP,
                 "metadata": {"totalCount": 1, "maxPageSize": 100}}]
    mocked.add(responses.GET, f"{API}/v1/customerPayment", json=payments)
    mocked.add(responses.GET, f"{API}/v2/journaltransaction", json=[])
    mocked.add(responses.GET, f"{API}/v1/customerPayment", json=payments)
    mocked.add(responses.GET, f"{API}/v2/journaltransaction",
               json=[journal_row("000007", [FEE, FEE], total=2)])
    posting = capture(CAP, document="customer_payment", customer="10001")

    # when
    without_journal = postings.visma_customer_payment_posted(client, posting, since=CLAIMED)
    with_journal = postings.visma_customer_payment_posted(client, posting, since=CLAIMED)

    # then
    assert (without_journal, with_journal) == (None, "payment 200001 + journal 000007")


def test_a_payment_without_a_cash_account_anywhere_is_refused_before_anything_is_sent(client, mocked):
    # given
    nothing_may_be_sent(mocked)
    posting = capture(CAP, document="customer_payment", fee="0", customer="10001")
    posting.lines = [line for line in posting.lines if line.role != "clearing"]

    # when
    with pytest.raises(postings.VismaDocumentError) as refused:
        postings.visma_customer_payment_write(client, posting, since=None, look_up_first=False, settings={})

    # then
    assert str(refused.value) == (
        f"customer payment {CAP} has no cash account: set cash_account on the integration, or give the posting "
        "a clearing line")
    assert api_calls(mocked) == []


# --- supplier invoices and payments ---------------------------------------------------------------------------


def bill(marker=BILL, *, document="supplier_invoice", **extra) -> Posting:
    """An Airbase-like bill of 2400.00 NOK: hosting 6540 (project P-100), payable 2440."""
    amount = Decimal("2400.00")
    return Posting(
        document=document, marker=marker, currency="NOK", date=DAY, description="Hosting March",
        facts=MatchFacts(transaction_type="bill", amount=amount, currency="NOK"),
        lines=[PostingLine(role="account", debit=amount, account="6540", dimensions={"2": "P-100"}),
               PostingLine(role="clearing", credit=amount, account="2440")],
        supplier="20002", extra=extra,
    )


def test_a_supplier_invoice_carries_the_marker_as_supplier_reference_with_one_line_per_cost(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v1/supplierInvoice", status=201,
               headers={"Location": f"{API}/v1/supplierInvoice/Invoice/300009"})

    # when
    number = postings.visma_supplier_invoice_post(client, bill(due_date="2026-04-09"))

    # then
    assert number == "300009"
    (post,) = [call for call in mocked.calls if call.request.method == "POST" and call.request.url.startswith(API)]
    assert sent_json(post) == {
        "documentType": {"value": "Invoice"}, "supplierNumber": {"value": "20002"},
        "date": {"value": "2026-03-10T00:00:00"}, "financialPeriod": {"value": "202603"},
        "currencyId": {"value": "NOK"}, "supplierReference": {"value": BILL},
        "description": {"value": "Hosting March"}, "dueDate": {"value": "2026-04-09T00:00:00"},
        "invoiceLines": [{"operation": "Insert", "accountNumber": {"value": "6540"},
                          "subaccount": [{"segmentId": 2, "segmentValue": "P-100"}],
                          "transactionDescription": {"value": "Hosting March"}, "costInCurrency": {"value": 2400.0}}],
    }


def test_a_supplier_invoice_is_found_in_the_supplier_s_invoices_changed_since_the_claim(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v1/supplierInvoice", match=[matchers.query_param_matcher({
        "supplier": "20002", "lastModifiedDateTime": "2026-03-10T09:30:00", "lastModifiedDateTimeCondition": ">=",
        "pageNumber": "1", "pageSize": "500"})],
        json=[{"documentType": "Invoice", "referenceNumber": "300009", "supplierReference": BILL,
               "metadata": {"totalCount": 1, "maxPageSize": 100}}])

    # when
    found = postings.visma_supplier_invoice_find(client, bill(), since=CLAIMED)

    # then
    assert found == "300009"


def test_a_supplier_payment_pays_the_invoice_named_by_the_posting_from_the_integration_s_cash_account(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v1/supplierPayment", status=201,
               headers={"Location": f"{API}/v1/supplierPayment/Payment/400003"})
    posting = bill(PAY, document="supplier_payment", invoice_number="300009")

    # when
    number = postings.visma_supplier_payment_post(client, posting, settings={"cash_account": "1920"})

    # then
    assert number == "400003"
    (post,) = [call for call in mocked.calls if call.request.method == "POST" and call.request.url.startswith(API)]
    assert sent_json(post) == {
        "type": {"value": "Payment"}, "supplier": {"value": "20002"},
        "applicationDate": {"value": "2026-03-10T00:00:00"}, "applicationPeriod": {"value": "202603"},
        "paymentRef": {"value": PAY}, "cashAccount": {"value": "1920"}, "currency": {"value": "NOK"},
        "description": {"value": "Hosting March"}, "paymentAmount": {"value": 2400.0},
        "paymentLines": [{"operation": "Insert", "documentType": {"value": "Invoice"}, "refNbr": {"value": "300009"},
                          "amountPaid": {"value": 2400.0}}],
    }


# --- the VismaTarget in the pipeline --------------------------------------------------------------------------


class Captures(VismaTarget, Stream):
    """One capture per source id, posted as payload["document"] (a journal unless it says otherwise)."""

    name = "visma_captures"
    kind = "paypal"
    target_kind = "journal"

    def read_window(self, start, end):
        return []

    def read_one(self, source_id):
        return None

    def transform(self, source: SourceObject) -> Posting:
        posting = capture(self.marker(source.source_id), document=source.payload.get("document", "journal"))
        for line in posting.lines:
            line.account, line.dimensions = "", {}  # the rule maps them
        return posting


@pytest.fixture
def captures(visma_connection, mocked, register_stream):
    """An integration on the Visma connection with a capture rule, its mirror, the Captures stream registered."""
    integration = IntegrationFactory(tenant=visma_connection.tenant, kind="paypal")
    for number in ("1580", "7770", "3000"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    financial_periods_mirror(integration.tenant)
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", gl_account="3000", fee_account="7770",
                         clearing_account="1580")
    register_stream("paypal", Captures)
    token_reply(mocked)
    # These tests prove the lookups by marker; own numbers have their own tests.
    integration.tenant.visma_own_numbers = []
    integration.tenant.save(update_fields=["visma_own_numbers"])
    return integration


def marker_of(integration, source_id: str = "CAP-1") -> str:
    return stream_marker(integration, Captures.name, source_id)


def advance(integration, source_id: str, **payload):
    record, _ = record_ingest(integration, Captures.name, SourceObject(source_id=source_id, payload=payload))
    return record_advance(record)


def test_a_visma_4xx_flags_the_record_with_visma_s_own_message(captures, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=400, json=payload("error_validation.json"))

    # when
    record = advance(captures, "CAP-1")

    # then
    assert record.status == RecordStatus.FLAGGED
    assert record.reasons == [
        "journal refused by the target: Error: 'Account' cannot be empty. Line 2 (IPPException 10000)"]
    assert list(HttpExchange.objects.filter(sync_record=record).values_list("method", "status_code")) == [
        ("POST", 400)]


def test_a_visma_500_on_the_post_is_retried_later_and_never_repeated_in_place(captures, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=500, json={"message": "An error has occurred."})

    # when
    record = advance(captures, "CAP-1")

    # then
    assert (record.status, record.attempts) == (RecordStatus.RETRYING, 1)
    assert record.last_error.split(";")[0].endswith("An error has occurred.")
    assert "the write may have reached the target" in record.last_error
    assert api_calls(mocked) == [("POST", "/v2/journaltransaction")]


def test_credentials_refused_even_after_a_new_token_retry_the_record_instead_of_flagging_it(captures, mocked):
    # given
    token_reply(mocked, access_token="visma-token-2")
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=401, json={"message": "Unauthorized"})

    # when
    record = advance(captures, "CAP-1")

    # then
    assert (record.status, record.attempts) == (RecordStatus.RETRYING, 1)
    assert record.last_error.startswith(f"Visma refused the credentials of journal {marker_of(captures)}: ")
    assert api_calls(mocked) == [("POST", "/v2/journaltransaction")] * 2


def test_a_document_visma_does_not_take_is_flagged_and_nothing_is_sent(captures, mocked):
    # given
    nothing_may_be_sent(mocked)

    # when
    record = advance(captures, "CAP-1", document="debit_note")

    # then
    assert record.status == RecordStatus.FLAGGED
    assert record.reasons == [
        f"debit_note refused by the target: Visma cannot take a 'debit_note' posting ({marker_of(captures)}); "
        "it takes: journal, customer_invoice, customer_payment, credit_note, supplier_invoice, supplier_payment, "
        "customer, supplier, invoice_note"]
    assert api_calls(mocked) == []


def test_a_lookup_after_an_interrupted_write_is_bounded_by_the_first_claim_less_the_overlap(captures, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=500, json={"message": "An error has occurred."})
    with time_machine.travel(CLAIMED, tick=False):
        failed = advance(captures, "CAP-1")
    mocked.add(responses.GET, f"{API}/v2/journaltransaction", match=[matchers.query_param_matcher({
        "module": "GL", "lastModifiedDateTime": "2026-03-10T06:30:00", "pageNumber": "1", "pageSize": "500"})],
        json=[journal_row("000042", [marker_of(captures)] * 3, total=3)])
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/000042", json={"batchNumber": "000042",
                                                                            "status": "Posted"})

    # when
    with time_machine.travel(failed.next_attempt_at + timedelta(seconds=1), tick=False):
        posted = record_advance(failed)

    # then
    assert (posted.status, posted.target_id, posted.target_status) == (RecordStatus.POSTED, "000042", "Posted")
    assert AuditEntry.objects.filter(sync_record=posted).first().reason == (
        f"found already posted by marker {marker_of(captures)}")
    assert api_calls(mocked) == [("POST", "/v2/journaltransaction"), ("GET", "/v2/journaltransaction"),
                                 ("GET", "/v2/journaltransaction/000042")]


def test_every_exchange_of_a_write_is_logged_against_its_record(captures, mocked):
    # given
    created(mocked, "/v2/journaltransaction", "000042")
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/000042", json={"batchNumber": "000042",
                                                                            "status": "Posted"})

    # when
    record = advance(captures, "CAP-1")

    # then
    assert (record.status, record.target_id) == (RecordStatus.POSTED, "000042")
    # The write, then the read of its status for the release.
    assert sorted(HttpExchange.objects.filter(sync_record=record).values_list("method", "status_code")) == [
        ("GET", 200), ("POST", 201)]


def test_a_created_answer_without_a_location_is_retried_and_looked_up_by_marker_later(captures, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=201)

    # when
    record = advance(captures, "CAP-1")

    # then
    assert (record.status, record.write_attempted) == (RecordStatus.RETRYING, True)
    assert "without a Location header" in record.last_error


# --- the live check of a dimension value ----------------------------------------------------------------------


def test_a_live_check_of_a_dimension_value_names_its_segment(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/dimension/SUBACCOUNT", json=payload("dimension_subaccount.json"))
    mocked.add(responses.GET, f"{API}/v1/dimension/SUBACCOUNT", json=payload("dimension_subaccount.json"))
    tenant = visma_connection.tenant

    # when
    in_its_segment = reference_exists_live(tenant, "dimension", "2:P42")
    in_another_segment = reference_exists_live(tenant, "dimension", "1:P42")

    # then
    assert (in_its_segment, in_another_segment) == (True, False)
    assert DimensionValue.objects.filter(tenant=tenant, segment_id=2, value="P42", active=True).count() == 1


# --- the OpenAPI check of every request -----------------------------------------------------------------------


def test_the_openapi_check_names_a_misspelt_journal_field_and_passes_the_token_and_a_good_journal(client, mocked):
    # given
    created(mocked, "/v2/journaltransaction", "000042")
    created(mocked, "/v2/journaltransaction", "000043")
    misspelt = postings.visma_journal_fields(capture())
    misspelt["journalTransactionLines"][0]["debitAmountInCurency"] = misspelt["journalTransactionLines"][0].pop(
        "debitAmountInCurrency")

    # when
    with visma_requests_recorded() as recorder:
        client.create("/v2/journaltransaction", misspelt)
        postings.visma_journal_post(client, capture())

    # then
    assert [str(request) for request in recorder.requests] == ["POST /v2/journaltransaction"] * 2
    assert recorder.problems() == [
        "POST /v2/journaltransaction: journalTransactionLines[0].debitAmountInCurency: unknown property"]
    assert api_calls(mocked) == [("POST", "/v2/journaltransaction")] * 2
    assert len(mocked.calls) == 3  # and the token request, not judged


def test_the_openapi_plugin_fails_a_test_that_sends_a_request_visma_does_not_declare(pytester, monkeypatch):
    # given
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.test_settings")
    pytester.makepyfile(test_sends=f'''
        import responses
        from django.test import override_settings

        from connectors.http import ApiSession
        from connectors.models import Connection

        API = "{API}"

        def test_a_journal_with_a_misspelt_field():
            session = ApiSession(Connection(system="visma", base_url=API), budget=False)
            with override_settings(HTTP_LOG_EXCHANGES=False), responses.RequestsMock() as mocked:
                mocked.add(responses.POST, API + "/v2/journaltransaction", status=201)
                session.request("POST", API + "/v2/journaltransaction",
                                json={{"descripton": {{"value": "PayPal capture"}}}})

        def test_a_good_customer_list():
            session = ApiSession(Connection(system="visma", base_url=API), budget=False)
            with override_settings(HTTP_LOG_EXCHANGES=False), responses.RequestsMock() as mocked:
                mocked.add(responses.GET, API + "/v1/customer", json=[])
                session.request("GET", API + "/v1/customer", params={{"pageNumber": 1, "pageSize": 100}})

        def test_another_system_is_not_judged():
            session = ApiSession(Connection(system="paypal", base_url="https://api-m.paypal.com"), budget=False)
            with override_settings(HTTP_LOG_EXCHANGES=False), responses.RequestsMock() as mocked:
                mocked.add(responses.POST, "https://api-m.paypal.com/v2/journaltransaction", status=201)
                session.request("POST", "https://api-m.paypal.com/v2/journaltransaction", json={{"x": 1}})
    ''')

    # when
    result = pytester.runpytest_subprocess("-p", "tests.visma_openapi_check", "-p", "no:cacheprovider")

    # then
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*test_a_journal_with_a_misspelt_field*",
        "*requests not valid against the Visma.net ERP OpenAPI file:",
        "*POST /v2/journaltransaction: descripton: unknown property",
    ])


def test_a_document_is_created_on_hold_or_not_as_the_writer_decided_and_a_payment_with_a_fee_is_two_documents():
    # given
    posting = Posting(
        document="journal", marker=hand_marker("CAP-HOLD"), currency="SEK", date=date(2026, 3, 10),
        description="capture", facts=MatchFacts(transaction_type="capture", amount=Decimal("10.00"), currency="SEK"),
        lines=[PostingLine(role="clearing", debit=Decimal("10.00"), account="1580"),
               PostingLine(role="account", credit=Decimal("10.00"), account="3000")],
    )

    # when
    undecided = postings.visma_journal_fields(posting)
    posting.extra["hold"] = True
    on_hold = postings.visma_journal_fields(posting)

    # then
    assert "hold" not in undecided
    assert (on_hold["hold"], on_hold["financialPeriod"]) == (True, "202603")
    assert postings.visma_document_parts("customer_payment", "payment 200001 + journal 000007") == [
        ("customer_payment", "200001"), ("journal", "000007")]
    assert postings.visma_document_parts("customer_payment", "200001") == [("customer_payment", "200001")]
    assert postings.visma_document_parts("invoice_note", "100001") == []
