"""Credit notes for refunds of paid invoices: the invoice's lines in proportion (accounts, subaccounts, VAT codes),
the credit note then the customer refund paying it out then the fee-return journal, each found before a re-post."""
import json
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
import responses

from connectors.visma import postings
from connectors.visma.client import VismaClient
from connectors.visma.fields import VismaDocumentError
from mappings.documents import MatchFacts, Posting, PostingLine, posting_marker_part
from tests.factories import hand_marker
from tests.visma.conftest import API, token_reply

DAY = date(2026, 3, 12)
CLAIMED = datetime(2026, 3, 12, 9, 30, tzinfo=UTC)
REF = hand_marker("RE-1")
REFUND_PART = posting_marker_part(REF, "refund")
FEE_PART = posting_marker_part(REF, "fee")


@pytest.fixture
def client(visma_connection, mocked):
    token_reply(mocked)
    return VismaClient(visma_connection, sleep=lambda seconds: None)


def _invoice(*lines, vat: str = "0.00") -> dict:
    """A CustomerInvoiceDto in the base currency SEK: its lines' net, `vat`, and `amount` = net + VAT (both twins)."""
    net = sum((Decimal(line[2]) for line in lines), Decimal("0.00"))
    totals = {"detailTotal": float(net), "vatTotal": float(Decimal(vat)), "amount": float(net + Decimal(vat))}
    return {"referenceNumber": "100001", "currencyId": "SEK", "exchangeRate": 1.0,
            **totals, **{f"{name}InCurrency": value for name, value in totals.items()},
            "invoiceLines": [{"lineNumber": number, "description": description, "amountInCurrency": float(amount),
                              "amount": float(amount), "account": {"number": account},
                              "subaccount": {"segments": [{"segmentId": 1, "segmentValue": "100"}]},
                              **({"vatCode": {"id": vat_code}} if vat_code else {})}
                             for number, (description, account, amount, vat_code) in enumerate(lines, start=1)]}


def test_a_partial_refund_credits_each_invoice_line_in_proportion_with_its_vat_code():
    # given: 1000.00 boots at VAT code 1 (25 %), 250.00 book at VAT code 3 (12 %): 1250.00 + 280.00 VAT = 1530.00
    invoice = _invoice(("Hiking boots", "3000", "1000.00", "1"), ("Guide book", "3020", "250.00", "3"), vat="280.00")

    # when: 153.00 of 1530.00 (VAT included) goes back
    lines = postings.visma_credit_note_lines(invoice, Decimal("153.00"), base_currency="SEK")

    # then: a tenth of each line's net, on its own VAT code (Visma adds the VAT back: 153.00 in all)
    assert lines == [
        {"description": "Hiking boots", "amount": Decimal("100.00"), "account": "3000", "dimensions": {"1": "100"},
         "vat_code": "1"},
        {"description": "Guide book", "amount": Decimal("25.00"), "account": "3020", "dimensions": {"1": "100"},
         "vat_code": "3"},
    ]


def test_the_last_line_takes_the_rounding_so_the_lines_add_up_to_the_share():
    # given: three lines of 100.00; a third of the invoice is refunded
    invoice = _invoice(("A", "3000", "100.00", ""), ("B", "3000", "100.00", ""), ("C", "3000", "100.00", ""))

    # when
    lines = postings.visma_credit_note_lines(invoice, Decimal("100.00"), base_currency="SEK")

    # then: 33.33 + 33.33 + 33.34
    assert [line["amount"] for line in lines] == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    assert "vat_code" not in lines[0]


def test_a_refund_larger_than_the_invoice_is_refused():
    # when
    with pytest.raises(VismaDocumentError) as refused:
        postings.visma_credit_note_lines(_invoice(("A", "3000", "100.00", "")), Decimal("100.01"),
                                         base_currency="SEK")

    # then
    assert str(refused.value) == "a refund of 100.01 cannot be credited on invoice 100001 of 100.00"


def refund_posting(fee_returned: str = "0") -> Posting:
    """A Stripe-like refund of 100.00 SEK of invoice 100001, mapped: receivable 1510, clearing 1580, fee 7770."""
    amount, returned = Decimal("100.00"), Decimal(fee_returned)
    lines = [PostingLine(role="account", debit=amount, account="1510"),
             PostingLine(role="clearing", credit=amount - returned, account="1580")]
    if returned:
        lines.append(PostingLine(role="fee", credit=returned, account="7770"))
    return Posting(document="credit_note", marker=REF, currency="SEK", date=DAY, description="Stripe refund re_1",
                   facts=MatchFacts(transaction_type="refund", amount=amount, currency="SEK"), lines=lines,
                   customer="10001",
                   extra={"invoice_number": "100001",
                          "lines": [{"description": "Hiking boots", "amount": "100.00", "account": "3000",
                                     "dimensions": {"1": "100"}, "vat_code": "1"}]})


def _posted(mocked) -> list[tuple[str, dict]]:
    return [(call.request.url.removeprefix(API), json.loads(call.request.body)) for call in mocked.calls
            if call.request.method == "POST" and call.request.url.startswith(API)]


def test_a_refund_is_a_credit_note_then_a_customer_refund_applied_to_it_then_the_fee_returned(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/customerCreditNote", status=201,
               headers={"Location": f"{API}/v1/customerCreditNote/500001"})
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote/500001",
               json={"referenceNumber": "500001", "amountInCurrency": 100.0, "balanceInCurrency": 100.0})
    mocked.add(responses.POST, f"{API}/v1/customerPayment", status=201,
               headers={"Location": f"{API}/v1/customerPayment/200002"})
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=201,
               headers={"Location": f"{API}/v2/journaltransaction/000009"})

    # when
    target_id = postings.visma_credit_note_write(client, refund_posting("1.20"), since=CLAIMED, look_up_first=False,
                                                 settings={"payment_method": "STRIPE"})

    # then
    assert target_id == "credit note 500001 + refund 200002 + journal 000009"
    (note_path, note), (refund_path, refund), (journal_path, journal) = _posted(mocked)
    assert (note_path, refund_path, journal_path) == ("/v2/customerCreditNote", "/v1/customerPayment",
                                                      "/v2/journaltransaction")
    assert note == {
        "customerNumber": {"value": "10001"}, "documentDate": {"value": "2026-03-12T00:00:00"},
        "financialPeriod": {"value": "202603"}, "currencyId": {"value": "SEK"}, "externalReference": {"value": REF},
        "invoiceText": {"value": "Stripe refund re_1"}, "customerRefNumber": {"value": "100001"},
        "lines": [{"operation": "Insert", "description": {"value": "Hiking boots"}, "quantity": {"value": 1.0},
                   "manualAmountInCurrency": {"value": 100.0}, "accountNumber": {"value": "3000"},
                   "subaccount": [{"segmentId": 1, "segmentValue": "100"}], "vatCodeId": {"value": "1"}}],
    }
    assert refund == {
        "type": {"value": "Refund"}, "customer": {"value": "10001"}, "invoiceText": {"value": "Stripe refund re_1"},
        "applicationDate": {"value": "2026-03-12T00:00:00"}, "applicationPeriod": {"value": "202603"},
        "paymentRef": {"value": REFUND_PART}, "cashAccount": {"value": "1580"}, "paymentMethod": {"value": "STRIPE"},
        "currency": {"value": "SEK"}, "paymentAmount": {"value": 100.0},
        "paymentLines": [{"operation": "Insert", "documentType": {"value": "CreditNote"},
                          "refNbr": {"value": "500001"}, "amountPaid": {"value": 100.0}}],
    }
    assert [(line["accountNumber"]["value"], line["referenceNumber"]["value"],
             line.get("debitAmountInCurrency", {}).get("value"), line.get("creditAmountInCurrency", {}).get("value"))
            for line in journal["journalTransactionLines"]] == [("7770", FEE_PART, None, 1.2),
                                                                 ("1580", FEE_PART, 1.2, None)]


def test_after_a_crash_once_the_credit_note_was_written_only_the_refund_is_written(client, mocked):
    # given: the credit note carrying the marker is in Visma; no refund is
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote",
               json=[{"referenceNumber": "500001", "externalReference": REF,
                      "metadata": {"totalCount": 1, "maxPageSize": 100}}])
    mocked.add(responses.GET, f"{API}/v1/customerPayment", json=[])
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote/500001",
               json={"referenceNumber": "500001", "amountInCurrency": 100.0, "balanceInCurrency": 100.0})
    mocked.add(responses.POST, f"{API}/v1/customerPayment", status=201,
               headers={"Location": f"{API}/v1/customerPayment/200002"})

    # when
    target_id = postings.visma_credit_note_write(client, refund_posting(), since=CLAIMED, look_up_first=True)

    # then
    assert target_id == "credit note 500001 + refund 200002"
    assert [path for path, _ in _posted(mocked)] == ["/v1/customerPayment"]
    lookup = next(call for call in mocked.calls if "/v1/customerCreditNote?" in call.request.url)
    assert f"externalReference={REF}" in lookup.request.url


def test_a_credit_note_whose_balance_is_not_the_refund_is_not_paid_out(client, mocked):
    # given: Visma's VAT rounding left the credit note at 100.01
    mocked.add(responses.POST, f"{API}/v2/customerCreditNote", status=201,
               headers={"Location": f"{API}/v1/customerCreditNote/500001"})
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote/500001",
               json={"referenceNumber": "500001", "amountInCurrency": 100.01, "balanceInCurrency": 100.01})

    # when
    with pytest.raises(VismaDocumentError) as refused:
        postings.visma_credit_note_write(client, refund_posting(), since=CLAIMED, look_up_first=False)

    # then
    assert str(refused.value) == (f"credit note 500001 ({REF}) has a balance of 100.01, the refund is 100.00: correct "
                                  "the credit note in Visma (VAT rounding?) and approve the record again")
    assert [path for path, _ in _posted(mocked)] == ["/v2/customerCreditNote"]


def test_a_credit_note_counts_as_posted_only_with_its_refund(client, mocked):
    # given
    notes = [{"referenceNumber": "500001", "externalReference": REF, "metadata": {"totalCount": 1, "maxPageSize": 100}}]
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote", json=notes)
    mocked.add(responses.GET, f"{API}/v1/customerPayment", json=[])
    mocked.add(responses.GET, f"{API}/v1/customerCreditNote", json=notes)
    mocked.add(responses.GET, f"{API}/v1/customerPayment",
               json=[{"type": "Refund", "refNbr": "200002", "paymentRef": REFUND_PART,
                      "metadata": {"totalCount": 1, "maxPageSize": 100}}])

    # when
    without_refund = postings.visma_credit_note_posted(client, refund_posting(), since=CLAIMED)
    with_refund = postings.visma_credit_note_posted(client, refund_posting(), since=CLAIMED)

    # then
    assert (without_refund, with_refund) == (None, "credit note 500001 + refund 200002")
    refund_lookup = [call.request.url for call in mocked.calls if "/v1/customerPayment?" in call.request.url][0]
    assert "paymentType=Refund" in refund_lookup and "customer=10001" in refund_lookup


def test_a_credit_note_line_too_long_for_visma_is_cut_to_its_length():
    # given
    posting = refund_posting()
    posting.extra["lines"][0]["description"] = "x" * 300

    # when
    fields = postings.visma_credit_note_fields(posting)

    # then
    assert fields["lines"][0]["description"] == "x" * 255 + "…"


def test_a_marker_too_long_for_the_credit_note_s_external_reference_is_refused():
    # given: externalReference keeps 15 characters (docs/visma-field-lengths.md)
    posting = refund_posting()

    # when
    with pytest.raises(VismaDocumentError) as refused:
        postings._fitted("customer_credit_note", {"externalReference": "X" * 16}, posting.marker)

    # then
    assert "externalReference is 16 characters, Visma keeps 15" in str(refused.value)
