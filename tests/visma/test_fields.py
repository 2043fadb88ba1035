"""Every string written into Visma within its field's length: texts cut with "…", identifiers refused, before any
call; own document numbers (overrideNumberSeries): the marker as the number, a refused second write recognised."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses
from responses import matchers

from audit.models import RecordStatus
from connectors.models import HttpExchange
from connectors.pipeline import SourceObject, record_advance, record_ingest
from connectors.visma import postings
from connectors.visma.client import VismaClient
from connectors.visma.fields import DOCUMENT_FIELDS, VismaDocumentError, visma_fields_fit, visma_length
from mappings.documents import MatchFacts, Posting, PostingLine, posting_marker_part
from tests.admin.factories import CustomerFactory
from tests.factories import hand_marker
from tests.visma.conftest import API, TOKEN_URL, token_reply
from tests.visma.test_postings import Captures, captures, created, marker_of, sent_json  # noqa: F401

DAY = date(2026, 3, 10)
CAP = hand_marker("CAP-1")


@pytest.fixture
def client(visma_connection, mocked):
    token_reply(mocked)
    return VismaClient(visma_connection, sleep=lambda seconds: None)


def journal(description: str = "PayPal capture CAP-1", line_text: str = "") -> Posting:
    return Posting(
        document="journal", marker=CAP, currency="SEK", date=DAY, description=description,
        facts=MatchFacts(transaction_type="capture", amount=Decimal("100.00"), currency="SEK"),
        lines=[PostingLine(role="clearing", debit=Decimal("100.00"), account="1580", description=line_text),
               PostingLine(role="account", credit=Decimal("100.00"), account="3000")],
    )


# --- the table and the check ----------------------------------------------------------------------------------


def test_the_table_holds_the_issue_s_lengths():
    # then
    lengths = {(kind, name): field.length for kind, fields in DOCUMENT_FIELDS.items() for name, field in fields.items()}
    assert lengths[("journal", "journalTransactionLines.referenceNumber")] == 15
    assert lengths[("journal", "batchNumber")] == 15
    assert lengths[("journal", "description")] == 255
    assert lengths[("journal", "journalTransactionLines.transactionDescription")] == 256
    assert lengths[("customer_invoice", "customerRefNumber")] == 40
    assert lengths[("supplier_invoice", "supplierReference")] == 40
    assert (lengths[("customer_payment", "paymentRef")], lengths[("supplier_payment", "paymentRef")]) == (40, 40)
    assert (lengths[("customer", "name")], lengths[("supplier", "number")]) == (60, 30)
    assert (lengths[("customer", "mainContact.phone1")], lengths[("customer", "mainContact.email")]) == (50, 255)


def test_a_description_too_long_is_cut_with_a_mark_and_stays_within_its_limit():
    # when
    fitted, cuts = visma_fields_fit("journal", {"description": "x" * 300}, what="journal MLX")

    # then
    assert fitted["description"] == "x" * 254 + "…"
    assert (visma_length(fitted["description"]), [(cut.field, cut.length, cut.limit) for cut in cuts]) == (
        255, [("description", 300, 255)])


def test_a_cut_never_splits_a_character_that_takes_two_utf16_units():
    # when: 253 letters and an emoji (two units) is 255 units; with one more letter it must be cut
    fitted, _ = visma_fields_fit("journal", {"description": "a" * 253 + "😀" + "b"}, what="journal MLX")

    # then
    assert fitted["description"] == "a" * 253 + "…"


def test_an_identifier_too_long_is_refused_naming_the_field_its_length_the_limit_and_the_document():
    # when
    with pytest.raises(VismaDocumentError) as refused:
        visma_fields_fit("customer_invoice", {"customerRefNumber": "INV2-" + "Z" * 40}, what="customer invoice MLX")

    # then
    assert str(refused.value) == (
        "customer invoice MLX: customerRefNumber is 45 characters, Visma keeps 40 (ARInvoice.InvoiceNbr); it cannot "
        f"be cut without losing what it identifies: {'INV2-' + 'Z' * 40!r}")


def test_a_name_and_a_phone_in_a_nested_contact_are_never_cut():
    # when
    with pytest.raises(VismaDocumentError) as name:
        visma_fields_fit("customer", {"name": "N" * 61}, what="customer MLX")
    with pytest.raises(VismaDocumentError) as phone:
        visma_fields_fit("supplier", {"name": "Tindevegen", "mainContact": {"phone1": "4" * 51}}, what="supplier MLX")

    # then
    assert str(name.value).startswith("customer MLX: name is 61 characters, Visma keeps 60 (Customer.AcctName)")
    assert str(phone.value).startswith("supplier MLX: mainContact.phone1 is 51 characters, Visma keeps 50")


def test_a_string_field_without_a_known_length_is_refused_rather_than_sent_blind():
    # when
    with pytest.raises(VismaDocumentError) as refused:
        visma_fields_fit("supplier", {"name": "Tindevegen", "paymentRefDisplayMask": "###"}, what="supplier MLX")

    # then
    assert str(refused.value) == ("supplier MLX: supplier field paymentRefDisplayMask has no known Visma length; add "
                                  "it to connectors/visma/fields.py before writing it")


def test_line_texts_are_cut_per_line():
    # when
    fields = postings.visma_journal_fields(journal(line_text="PayPal 2GG279541U471931P " * 20))

    # then
    texts = [line["transactionDescription"] for line in fields["journalTransactionLines"]]
    assert [visma_length(text) for text in texts] == [256, len("PayPal capture CAP-1")]
    assert texts[0].endswith("…")


# --- through the pipeline: nothing half written --------------------------------------------------------------


def test_a_customer_payment_whose_fee_journal_cannot_be_written_sends_not_even_the_payment(client, mocked,
                                                                                          monkeypatch):
    # given
    posting = Posting(
        document="customer_payment", marker=CAP, currency="SEK", date=DAY, description="Stripe charge",
        facts=MatchFacts(transaction_type="invoice_payment", amount=Decimal("100.00"), currency="SEK"),
        customer="10001", extra={"cash_account": "1580"},
        lines=[PostingLine(role="clearing", debit=Decimal("96.60"), account="1580"),
               PostingLine(role="fee", debit=Decimal("3.40"), account="7770"),
               PostingLine(role="account", credit=Decimal("100.00"), account="1510")],
    )
    checked = []
    mocked.remove(responses.POST, TOKEN_URL)

    def journal_refused(fee_journal, **options):
        checked.append(fee_journal.marker)
        raise VismaDocumentError("fee journal: a field too long")

    monkeypatch.setattr(postings, "visma_journal_fields", journal_refused)

    # when
    with pytest.raises(VismaDocumentError):
        postings.visma_customer_payment_write(client, posting, since=None, look_up_first=False)

    # then
    assert checked == [posting_marker_part(CAP, "fee")]
    assert [call.request.url for call in mocked.calls] == []


def test_a_value_too_long_for_its_field_flags_the_record_naming_the_field_and_sends_nothing(captures, mocked,
                                                                                             monkeypatch):
    # given
    original = Captures.transform

    def transform(self, source):
        posting = original(self, source)
        posting.document, posting.customer = "customer_invoice", "10001"
        posting.extra["customer_ref"] = "ch_" + "9" * 40
        return posting

    monkeypatch.setattr(Captures, "transform", transform)
    CustomerFactory(tenant=captures.tenant, number="10001", name="Nordlys AS")
    mocked.remove(responses.POST, TOKEN_URL)

    # when
    record, _ = record_ingest(captures, Captures.name, SourceObject(source_id="CAP-1", payload={}))
    record = record_advance(record)

    # then
    assert record.status == RecordStatus.FLAGGED
    marker = marker_of(captures)
    assert record.reasons == [
        f"customer_invoice refused by the target: cannot be written to Visma: customer invoice "
        f"{marker}: customerRefNumber is 43 characters, Visma keeps 40 (ARInvoice.InvoiceNbr); it cannot be cut "
        f"without losing what it identifies: {'ch_' + '9' * 40!r}"]
    assert HttpExchange.objects.count() == 0


# --- own numbers -----------------------------------------------------------------------------------------------


def test_with_own_numbers_the_journal_s_batch_number_is_its_marker(client, mocked):
    # given
    created(mocked, "/v2/journaltransaction", CAP)

    # when
    batch = postings.visma_journal_post(client, journal(), own_number=True)

    # then
    sent = sent_json(mocked.calls[-1])
    assert (batch, sent["batchNumber"], sent["overrideNumberSeries"]) == (CAP, {"value": CAP}, {"value": True})


def test_a_second_write_refused_because_the_number_exists_is_ours_when_it_carries_our_marker(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=400,
               json={"ExceptionType": "IPPException", "ExceptionMessage": f"Journal transaction '{CAP}' already "
                                                                          "exists.", "ExceptionFaultCode": "10002"})
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/{CAP}",
               json={"batchNumber": CAP, "journalTransactionLines": [{"referenceNumber": CAP}]})

    # when
    batch = postings.visma_journal_post(client, journal(), own_number=True)

    # then
    assert batch == CAP
    assert [call.request.method for call in mocked.calls[1:]] == ["POST", "GET"]


def test_a_number_taken_by_a_document_without_our_marker_is_refused_for_a_person(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v1/supplierPayment", status=400, json={"message": "exists"})
    mocked.add(responses.GET, f"{API}/v1/supplierPayment/Payment/{CAP}", json={"refNbr": CAP, "paymentRef": "other"})
    posting = Posting(document="supplier_payment", marker=CAP, currency="NOK", date=DAY, description="Hosting",
                      facts=MatchFacts(transaction_type="bill", amount=Decimal("10"), currency="NOK"),
                      supplier="20001", extra={"cash_account": "1920"},
                      lines=[PostingLine(role="account", debit=Decimal("10"), account="2440")])

    # when
    with pytest.raises(VismaDocumentError) as refused:
        postings.visma_supplier_payment_post(client, posting, own_number=True)

    # then
    assert str(refused.value) == (
        f"Visma already has a document numbered {CAP} at /v1/supplierPayment/Payment that does not carry our marker; "
        "a person must look at it before anything is written")


def test_a_refusal_for_another_reason_is_not_taken_for_a_landed_write(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=400, json={"message": "Account inactive"})
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/{CAP}", status=404, json={"message": "not found"})

    # when
    with pytest.raises(postings.VismaPermanentError) as refused:
        postings.visma_journal_post(client, journal(), own_number=True)

    # then
    assert refused.value.status_code == 400
    assert "Account inactive" in str(refused.value)


def test_with_own_numbers_a_journal_is_found_by_one_get_of_its_number(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/{CAP}",
               json={"batchNumber": CAP, "journalTransactionLines": [{"referenceNumber": CAP}]})

    # when
    found = postings.visma_journal_find(client, journal(), since=None, own_number=True)

    # then
    assert found == CAP
    assert [call.request.url.removeprefix(API) for call in mocked.calls[1:]] == [f"/v2/journaltransaction/{CAP}"]


def test_when_the_series_ignored_our_number_the_lookup_falls_back_to_the_marker(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v2/journaltransaction/{CAP}", status=404, json={"message": "not found"})
    mocked.add(responses.GET, f"{API}/v2/journaltransaction", match=[matchers.query_param_matcher(
        {"module": "GL", "periodId": "202603", "pageNumber": "1", "pageSize": "500"})],
        json=[{"batchNumber": "000042", "journalTransactionLines": [{"referenceNumber": CAP}],
               "metadata": {"totalCount": 1}}])

    # when
    found = postings.visma_journal_find(client, journal(), since=None, own_number=True)

    # then
    assert found == "000042"


def test_a_customer_keeps_the_marker_in_account_reference_and_is_found_among_those_created_since(client, mocked):
    # given
    created(mocked, "/v1/customer", "10251")
    mocked.add(responses.GET, f"{API}/v1/customer", match=[matchers.query_param_matcher(
        {"createdDateTime": "2026-03-10T06:30:00", "createdDateTimeCondition": ">=", "pageNumber": "1",
         "pageSize": "500"})],
        json=[{"number": "10250", "accountReference": None}, {"number": "10251", "accountReference": CAP}])

    # when
    number = postings.visma_customer_create(client, {"name": "Fjellheim Turlag"}, marker=CAP)
    found = postings.visma_customer_find(client, CAP, name="Fjellheim Turlag",
                                         since=datetime(2026, 3, 10, 6, 30, tzinfo=UTC))

    # then
    assert (number, found) == ("10251", "10251")
    assert sent_json(mocked.calls[1]) == {"name": {"value": "Fjellheim Turlag"}, "accountReference": {"value": CAP}}
