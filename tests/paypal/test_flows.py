"""PayPal objects → postings: captures (fee split, payer → customer, invoice payments), refunds after their capture,
reversals, invoices; and what the streams read from Transaction Search."""
import copy
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import responses

from audit.services import record_claim_write, record_mark_posted, record_upsert
from connectors.errors import WaitFor
from connectors.paypal.flows import (
    CapturesStream,
    InvoicesStream,
    RefundsStream,
    ReversalsStream,
)
from connectors.pipeline import SourceDataError, SourceObject
from mappings.models import ExternalReference, GLMappingRule, VatCodeMapping
from mappings.money import MoneyError
from mappings.services import posting_map, posting_validate
from tests.admin.factories import CustomerFactory
from tests.factories import (
    stream_marker,
    ConnectionFactory,
    GLAccountFactory,
    GLMappingRuleFactory,
    IntegrationFactory,
    TenantFactory,
)
from tests.paypal.conftest import payload

VISMA = "https://api.finance.visma.net"
PAYPAL = "https://api-m.paypal.com"
MIKKO = {"payer_id": "M3XK8D2QJRB5P", "email_address": "info@helsinki-trail.example"}


@pytest.fixture
def integration(db):
    tenant = TenantFactory(slug="nordlys")
    integration = IntegrationFactory(
        tenant=tenant, partner_connection=ConnectionFactory(tenant=tenant, system="paypal", base_url=PAYPAL,
                                                            token_url=""))
    for number in ("1510", "1580", "3000", "7770"):
        GLAccountFactory(tenant=tenant, number=number)
    CustomerFactory(tenant=tenant, number="10004", name="Helsinki Trail Oy", customer_class="EU")
    ExternalReference.objects.create(tenant=tenant, system="paypal", external_kind="payer",
                                     external_id=MIKKO["payer_id"], visma_kind="customer", visma_id="10004")
    return integration


@pytest.fixture
def visma():
    """Visma.net ERP as the streams may ask it (an invoice by externalReference); no call is required."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, "https://connect.visma.com/connect/token",
                 json={"access_token": "visma-token", "expires_in": 3600, "token_type": "Bearer"})
        yield mock


def _capture(name: str = "capture_completed.json", payer: dict | None = MIKKO, **changes) -> SourceObject:
    capture = payload(name)
    capture.update(changes)
    return CapturesStream.source_object(capture, dict(payer or {}))


def _invoice_lookups(mocked) -> list[str]:
    return [call.request.url for call in mocked.calls if "/v1/customerinvoice" in call.request.url]


def test_a_capture_becomes_a_journal_net_to_clearing_fee_to_fees_gross_to_the_account(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])

    # when
    posting = CapturesStream(integration).transform(_capture())

    # then
    assert (posting.document, posting.marker, posting.currency, posting.date) == (
        "journal", stream_marker(integration, "captures", "2GG279541U471931P"), "EUR", date(2026, 3, 2))
    assert "2GG279541U471931P" in posting.description
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("clearing", Decimal("96.12"), Decimal("0")), ("fee", Decimal("3.88"), Decimal("0")),
        ("account", Decimal("0"), Decimal("100.00")),
    ]
    assert posting.is_balanced
    assert posting.customer == "10004"
    assert (posting.facts.transaction_type, posting.facts.amount, posting.facts.customer_group) == (
        "capture", Decimal("100.00"), "EU")
    # the reference is looked up in the invoice mirror, read once from Visma (open invoices) since it was empty
    assert _invoice_lookups(visma) == [
        f"{VISMA}/v1/customerinvoice?documentType=Invoice&status=Open&pageNumber=1&pageSize=500"]


def test_a_capture_without_references_asks_visma_nothing(integration, visma):
    # given
    source = _capture(invoice_id=None)
    del source.payload["capture"]["invoice_id"]

    # when
    posting = CapturesStream(integration).transform(source)

    # then
    assert posting.document == "journal"
    assert len(visma.calls) == 0


def test_the_payer_is_found_by_email_when_its_payer_id_is_not_mapped(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])
    ExternalReference.objects.create(tenant=integration.tenant, system="paypal", external_kind="payer_email",
                                     external_id="anna@example.se", visma_kind="customer", visma_id="10001")

    # when
    posting = CapturesStream(integration).transform(
        _capture(payer={"payer_id": "QYR5Z8XDVJNXQ", "email_address": "Anna@Example.se"}))

    # then
    assert posting.customer == "10001"


def test_an_unmapped_payer_is_flagged_with_why_without_asking_visma_about_it(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", clearing_account="1580")
    stream = CapturesStream(integration)
    posting = stream.transform(_capture(payer={"payer_id": "ZQ7N4R8K2WXPL", "email_address": "guest@example.com"}))
    posting_map(tenant=integration.tenant, system="paypal", posting=posting)

    # when
    problems = posting_validate(tenant=integration.tenant, posting=posting, live_check=stream.live_check())

    # then
    assert posting.customer == "PayPal payer ZQ7N4R8K2WXPL"
    assert problems == [
        "Customer PayPal payer ZQ7N4R8K2WXPL is unknown or inactive in Visma: map the payer to a customer."
    ]
    assert [call.request.url for call in visma.calls if "/v1/customer/" in call.request.url] == []


def test_a_pending_capture_waits(integration, visma):
    # when
    with pytest.raises(WaitFor) as raised:
        CapturesStream(integration).transform(_capture("capture_pending.json"))

    # then
    assert str(raised.value) == ("capture 8MC585209K746392H is pending at PayPal (PENDING_REVIEW); it is posted "
                                 "once completed")


def test_a_declined_capture_is_not_money_received(integration, visma):
    # when
    with pytest.raises(SourceDataError) as raised:
        CapturesStream(integration).transform(_capture(status="DECLINED"))

    # then
    assert str(raised.value) == "capture 2GG279541U471931P is DECLINED: no money was received"


def test_a_yen_capture_is_posted_in_whole_yen(integration, visma):
    # when
    posting = CapturesStream(integration).transform(_capture("capture_jpy.json"))

    # then
    assert posting.currency == "JPY"
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("clearing", Decimal("4785"), Decimal("0")), ("fee", Decimal("215"), Decimal("0")),
        ("account", Decimal("0"), Decimal("5000")),
    ]
    # 23:59:59 UTC on 3 March is 00:59 on 4 March in Oslo, where the tenant books.
    assert posting.date == date(2026, 3, 4)


def test_a_yen_amount_with_decimals_is_refused(integration, visma):
    # given
    source = _capture("capture_jpy.json")
    source.payload["capture"]["seller_receivable_breakdown"]["paypal_fee"]["value"] = "215.5"

    # when
    with pytest.raises(MoneyError) as raised:
        CapturesStream(integration).transform(source)

    # then
    assert str(raised.value) == "paypal_fee: 215.5 JPY has more decimals than JPY allows"


def test_a_breakdown_that_does_not_add_up_is_refused(integration, visma):
    # given
    source = _capture(invoice_id=None)
    source.payload["capture"]["seller_receivable_breakdown"]["net_amount"]["value"] = "96.13"

    # when
    with pytest.raises(SourceDataError) as raised:
        CapturesStream(integration).transform(source)

    # then
    assert str(raised.value) == "capture 2GG279541U471931P: gross 100.00 less fee 3.88 is not net 96.13 EUR"


def test_a_capture_of_a_visma_invoice_is_always_a_customer_payment(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[
        {"documentType": "Invoice", "status": "Open", "referenceNumber": "100002", "externalReference": "WEB-2041",
         "customer": {"number": "10004", "name": "Helsinki Trail Oy"}, "currencyId": "EUR"}])
    GLMappingRuleFactory(tenant=integration.tenant, name="Invoice payments", transaction_type="invoice_payment",
                         gl_account="1510")

    stream = CapturesStream(integration)
    posting = stream.transform(_capture())

    # when
    outcome = stream.map(posting)

    # then
    assert outcome.rule.name == "Invoice payments"
    assert posting.document == "customer_payment"
    assert posting.facts.transaction_type == "invoice_payment"
    assert (posting.customer, posting.extra["invoice_number"], posting.extra["invoice_reference"]) == (
        "10004", "100002", "WEB-2041")


def test_a_capture_without_a_visma_invoice_is_a_journal_and_names_its_payer(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])

    # when
    posting = CapturesStream(integration).transform(_capture())

    # then
    assert posting.document == "journal"
    assert (posting.facts.transaction_type, posting.facts.payer) == ("capture", "M3XK8D2QJRB5P")


def test_a_capture_in_another_currency_than_its_visma_invoice_is_refused(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[
        {"documentType": "Invoice", "status": "Open", "referenceNumber": "100001", "externalReference": "WEB-2041",
         "customer": {"number": "10001"}, "currencyId": "SEK"}])

    # when
    with pytest.raises(SourceDataError) as raised:
        CapturesStream(integration).transform(_capture())

    # then
    assert str(raised.value) == "capture in EUR cannot settle Visma invoice 100001 in SEK"


def _post(integration, stream_name: str, posting, source_id: str, target_id: str):
    """A record taken to posted through the audit services, as the pipeline would."""
    posting_map(tenant=integration.tenant, system="paypal", posting=posting)
    record, _ = record_upsert(integration=integration, stream=stream_name, source_id=source_id, payload={},
                              source_updated_at=None, amount=posting.facts.amount, currency=posting.currency)
    record, _ = record_claim_write(record, proposed_posting=posting.to_json(), posting_marker=posting.marker)
    return record_mark_posted(record, target_id=target_id, target_kind=posting.document)


def _refund(name: str = "refund_partial.json", **changes) -> SourceObject:
    refund = payload(name)
    refund.update(changes)
    return RefundsStream.source_object(refund, capture_id="2GG279541U471931P")


@pytest.fixture
def posted_capture(integration, visma):
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", clearing_account="1580")
    posting = CapturesStream(integration).transform(_capture())
    return _post(integration, "captures", posting, "2GG279541U471931P", "000007")


def test_a_refund_before_its_capture_is_posted_waits(integration, visma):
    # when
    with pytest.raises(WaitFor) as raised:
        RefundsStream(integration).transform(_refund())

    # then
    assert str(raised.value) == ("capture 2GG279541U471931P is not posted yet (not received yet); refund "
                                 "1JU08902781691411 is posted after it")


def test_a_refund_reverses_its_part_gross_from_the_account_fee_back_and_net_out_of_clearing(posted_capture,
                                                                                          integration):
    # when
    posting = RefundsStream(integration).transform(_refund())

    # then
    assert (posting.document, posting.marker) == ("journal", stream_marker(integration, "refunds", "1JU08902781691411"))
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("account", Decimal("40.00"), Decimal("0")), ("fee", Decimal("0"), Decimal("1.55")),
        ("clearing", Decimal("0"), Decimal("38.45")),
    ]
    assert posting.is_balanced
    assert (posting.customer, posting.facts.transaction_type, posting.facts.customer_group) == ("10004", "refund",
                                                                                                "EU")
    assert posting.extra["capture_target_id"] == "000007"


def test_a_refund_of_more_than_was_captured_is_refused(posted_capture, integration):
    # given
    source = _refund()
    source.payload["refund"]["seller_payable_breakdown"]["total_refunded_amount"]["value"] = "100.01"

    # when
    with pytest.raises(SourceDataError) as raised:
        RefundsStream(integration).transform(source)

    # then
    assert str(raised.value) == ("refund 1JU08902781691411: 40.00 EUR (fee back 1.55, net 38.45, 100.01 refunded to "
                                 "date) does not fit capture 2GG279541U471931P of 100.00 EUR")


def test_a_reversal_moves_the_gross_out_of_clearing_into_the_disputes_account(posted_capture, integration):
    # given
    reversal = payload("webhook_capture_reversed.json")["resource"]

    # when
    posting = ReversalsStream(integration).transform(
        ReversalsStream.source_object(reversal, capture_id="2GG279541U471931P"))

    # then
    assert (posting.document, posting.facts.transaction_type) == ("journal", "reversal")
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("disputes", Decimal("100.00"), Decimal("0")), ("clearing", Decimal("0"), Decimal("100.00")),
    ]


def _invoice(**changes) -> SourceObject:
    invoice = payload("invoice_unpaid.json")
    invoice.update(changes)
    return InvoicesStream.source_object(invoice)


def test_a_paypal_invoice_becomes_a_customer_invoice_with_its_lines_and_due_date(integration):
    # given
    ExternalReference.objects.create(tenant=integration.tenant, system="paypal", external_kind="payer_email",
                                     external_id="info@helsinki-trail.example", visma_kind="customer",
                                     visma_id="10004")

    # when
    posting = InvoicesStream(integration).transform(_invoice())

    # then
    assert (posting.document, posting.marker, posting.customer, posting.date) == (
        "customer_invoice", stream_marker(integration, "invoices", "INV2-Z56S-5LLA-Q52L-CPZ5"), "10004",
        date(2026, 3, 1))
    assert posting.extra["customer_ref"] == "INV2-Z56S-5LLA-Q52L-CPZ5"
    assert posting.extra["due_date"] == "2026-03-15"
    assert posting.extra["lines"] == [
        {"description": "Guided trail day", "quantity": "2", "unit_price": "85.00"},
        {"description": "Trail map set", "quantity": "1", "amount": "20.00"},
    ]
    assert [(line.role, line.credit) for line in posting.lines] == [("account", Decimal("170.00")),
                                                                    ("account", Decimal("20.00"))]
    assert (posting.facts.transaction_type, posting.facts.amount) == ("invoice", Decimal("190.00"))


def test_a_draft_invoice_waits_and_a_cancelled_one_is_for_a_person(integration):
    # when
    with pytest.raises(WaitFor):
        InvoicesStream(integration).transform(_invoice(status="DRAFT"))
    with pytest.raises(SourceDataError) as raised:
        InvoicesStream(integration).transform(_invoice(status="CANCELLED"))

    # then
    assert str(raised.value) == ("PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5 was cancelled before it reached Visma: "
                                 "reject it")


def _taxed_invoice(percent: str = "24", total: str = "235.60") -> SourceObject:
    """invoice_unpaid.json with VAT on both lines (170.00 and 20.00 net), PayPal's total as `total`."""
    source = _invoice()
    invoice = source.payload["invoice"]
    for item in invoice["items"]:
        item["tax"] = {"name": "VAT", "percent": percent}
    invoice["amount"] = {"currency_code": "EUR", "value": total}
    return source


def _visma_vat_code(visma, code: str, rate: float) -> None:
    visma.add(responses.GET, f"{VISMA}/v1/vat/{code}", json={
        "vatId": code, "description": f"Output VAT {rate} %",
        "schedules": [{"startDate": "2024-09-01T00:00:00", "vatRate": rate},
                      {"startDate": "2013-01-01T00:00:00", "vatRate": 22.0}]})


def test_an_invoice_with_paypal_tax_gets_the_mapped_visma_vat_code_on_its_lines(integration, visma):
    # given: PayPal's "VAT" at 24 % is Visma VAT code 3 (24 % since 2024-09-01)
    VatCodeMapping.objects.create(tenant=integration.tenant, system="paypal", tax_name="VAT", percent=Decimal("24"),
                                  vat_code="3")
    _visma_vat_code(visma, "3", 24.0)

    # when
    posting = InvoicesStream(integration).transform(_taxed_invoice())

    # then
    assert posting.extra["lines"] == [
        {"description": "Guided trail day", "quantity": "2", "unit_price": "85.00", "vat_code": "3"},
        {"description": "Trail map set", "quantity": "1", "amount": "20.00", "vat_code": "3"},
    ]
    assert (posting.extra["net"], posting.extra["vat"], posting.facts.amount) == ("190.00", "45.60",
                                                                                  Decimal("235.60"))
    assert [(line.role, line.credit) for line in posting.lines] == [("account", Decimal("170.00")),
                                                                    ("account", Decimal("20.00"))]


def test_a_tax_mapped_by_percent_alone_is_used_for_any_tax_name(integration, visma):
    # given
    VatCodeMapping.objects.create(tenant=integration.tenant, system="paypal", tax_name="", percent=Decimal("24"),
                                  vat_code="3")
    _visma_vat_code(visma, "3", 24.0)
    source = _taxed_invoice()
    for item in source.payload["invoice"]["items"]:
        item["tax"]["name"] = "ALV"

    # when
    posting = InvoicesStream(integration).transform(source)

    # then
    assert [line["vat_code"] for line in posting.extra["lines"]] == ["3", "3"]


def test_an_invoice_with_a_paypal_tax_no_visma_vat_code_is_mapped_to_is_flagged(integration):
    # given
    source = _taxed_invoice()

    # when
    with pytest.raises(SourceDataError) as raised:
        InvoicesStream(integration).transform(source)

    # then
    assert str(raised.value) == ("PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5 line 1: tax VAT 24 % has no Visma VAT code "
                                 "mapped (admin: VAT code mappings)")


def test_a_paypal_total_visma_would_not_reach_is_flagged_naming_both_totals(integration, visma):
    # given: PayPal bills 24 %, the mapped Visma code is 25.5 %
    VatCodeMapping.objects.create(tenant=integration.tenant, system="paypal", tax_name="VAT", percent=Decimal("24"),
                                  vat_code="3")
    _visma_vat_code(visma, "3", 25.5)

    # when
    with pytest.raises(SourceDataError) as raised:
        InvoicesStream(integration).transform(_taxed_invoice())

    # then
    assert str(raised.value) == (
        "PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5: Visma would total 238.45 EUR (lines 190.00 + VAT 48.45 by VAT code), "
        "PayPal's invoice total is 235.60 EUR: not written, the totals would differ")


def test_an_invoice_read_from_a_search_row_without_items_is_not_taken_for_one_without_lines(integration):
    # given: a search-invoices row as PayPal gives it without fields=items
    source = _invoice()
    del source.payload["invoice"]["items"]

    # when
    with pytest.raises(SourceDataError) as raised:
        InvoicesStream(integration).transform(source)

    # then
    assert str(raised.value) == ("PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5 was read without its items (a search result "
                                 "without fields=items): replay it to read the invoice whole")


def test_a_capture_paying_a_paypal_invoice_on_its_way_to_visma_waits_for_it(integration, visma):
    # given
    record_upsert(integration=integration, stream="invoices", source_id="INV2-Z56S-5LLA-Q52L-CPZ5",
                  payload=payload("invoice_unpaid.json"), source_updated_at=None, amount=Decimal("190.00"),
                  currency="EUR")

    # when
    with pytest.raises(WaitFor) as raised:
        CapturesStream(integration).transform(_capture(invoice_id="INV2-Z56S-5LLA-Q52L-CPZ5"))

    # then
    assert str(raised.value) == "PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5 is not in Visma yet (received)"
    assert len(visma.calls) == 0


def test_a_capture_paying_a_paypal_invoice_already_in_visma_is_applied_to_it(integration, visma):
    # given
    ExternalReference.objects.create(tenant=integration.tenant, system="paypal", external_kind="payer_email",
                                     external_id="info@helsinki-trail.example", visma_kind="customer",
                                     visma_id="10004")
    GLMappingRuleFactory(tenant=integration.tenant, name="Invoices", transaction_type="invoice")
    invoice_posting = InvoicesStream(integration).transform(_invoice())
    _post(integration, "invoices", invoice_posting, "INV2-Z56S-5LLA-Q52L-CPZ5", "100017")

    # when
    posting = CapturesStream(integration).transform(_capture(invoice_id="INV2-Z56S-5LLA-Q52L-CPZ5"))

    # then
    assert (posting.extra["invoice_number"], posting.customer, posting.facts.transaction_type) == (
        "100017", "10004", "invoice_payment")
    assert len(visma.calls) == 0


# --- reading --------------------------------------------------------------------------------------------------


@pytest.fixture
def paypal_api(visma):
    """PayPal, on the same mock as Visma: a token and two pages of Transaction Search."""
    visma.add(responses.POST, f"{PAYPAL}/v1/oauth2/token", json=payload("token.json"))
    visma.add(responses.GET, f"{PAYPAL}/v1/reporting/transactions", json=payload("transactions_page1.json"))
    visma.add(responses.GET, f"{PAYPAL}/v1/reporting/transactions", json=payload("transactions_page2.json"))
    return visma


def _window():
    return datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, tzinfo=UTC)


def test_the_captures_stream_reads_payments_received_and_each_capture_itself(integration, paypal_api):
    # given
    first = payload("capture_completed.json")
    second = copy.deepcopy(first) | {"id": "6HN14583PX8471043"}
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/captures/2GG279541U471931P", json=first)
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/captures/6HN14583PX8471043", json=second)

    # when
    sources = list(CapturesStream(integration).read_window(*_window()))

    # then
    assert [source.source_id for source in sources] == ["2GG279541U471931P", "6HN14583PX8471043"]
    assert sources[0].payload["payer"] == MIKKO
    assert (sources[0].amount, sources[0].currency) == (Decimal("100.00"), "EUR")


def test_a_posted_capture_is_served_from_its_record_without_asking_paypal_again(integration, paypal_api, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", clearing_account="1580")
    stored = _capture()
    record = _post(integration, "captures", CapturesStream(integration).transform(stored), "2GG279541U471931P",
                   "000007")
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/captures/6HN14583PX8471043",
                   json=payload("capture_completed.json") | {"id": "6HN14583PX8471043"})

    # when
    sources = list(CapturesStream(integration).read_window(*_window()))

    # then
    assert [source.source_id for source in sources] == ["2GG279541U471931P", "6HN14583PX8471043"]
    assert sources[0].payload == record.source_payload
    assert [call.request.url for call in paypal_api.calls if "/captures/" in call.request.url] == [
        f"{PAYPAL}/v2/payments/captures/6HN14583PX8471043"]


def test_the_refunds_stream_reads_merchant_refunds_only(integration, paypal_api):
    # given
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/refunds/1JU08902781691411",
                   json=payload("refund_partial.json"))

    # when
    sources = list(RefundsStream(integration).read_window(*_window()))
    reversals = list(ReversalsStream(integration).read_window(*_window()))

    # then
    assert [(source.source_id, source.payload["capture_id"]) for source in sources] == [
        ("1JU08902781691411", "2GG279541U471931P")]
    assert reversals == []


def test_a_webhook_read_of_a_capture_finds_its_payer_on_the_order(integration, visma):
    # given
    visma.add(responses.POST, f"{PAYPAL}/v1/oauth2/token", json=payload("token.json"))
    visma.add(responses.GET, f"{PAYPAL}/v2/payments/captures/2GG279541U471931P", json=payload("capture_completed.json"))
    visma.add(responses.GET, f"{PAYPAL}/v2/checkout/orders/5O190127TN364715T", json=payload("order.json"))

    # when
    source = CapturesStream(integration).read_one("2GG279541U471931P")

    # then
    assert source.payload["payer"] == MIKKO
    assert source.updated_at == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def test_the_streams_read_up_to_now_and_the_whole_window_when_paypal_has_published_it(integration, paypal_api):
    # given: PayPal refreshed at 2026-03-05 09:59:59, after the window's end
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/captures/2GG279541U471931P",
                   json=payload("capture_completed.json"))
    paypal_api.add(responses.GET, f"{PAYPAL}/v2/payments/captures/6HN14583PX8471043",
                   json=payload("capture_completed.json") | {"id": "6HN14583PX8471043"})
    stream = CapturesStream(integration)

    # when
    list(stream.read_window(*_window()))

    # then
    assert stream.publication_delay == timedelta(0)
    assert stream.published_until() is None
    assert CapturesStream.max_window.days == 31


def test_a_stream_says_how_far_paypal_had_published_a_window_it_read_in_part(integration, visma):
    # given
    visma.add(responses.POST, f"{PAYPAL}/v1/oauth2/token", json=payload("token.json"))
    visma.add(responses.GET, f"{PAYPAL}/v1/reporting/transactions", json=payload("transactions_page1.json")
              | {"last_refreshed_datetime": "2026-03-04T20:41:07+0000", "total_pages": 1})
    visma.add(responses.GET, f"{PAYPAL}/v2/payments/refunds/1JU08902781691411", json=payload("refund_partial.json"))
    stream = RefundsStream(integration)

    # when
    sources = list(stream.read_window(*_window()))

    # then
    assert [source.source_id for source in sources] == ["1JU08902781691411"]
    assert stream.published_until() == datetime(2026, 3, 4, 20, 41, 7, tzinfo=UTC)


@pytest.mark.parametrize("settings, delay", [({}, timedelta(hours=3)),
                                             ({"publication_delay_minutes": 240}, timedelta(hours=4))])
def test_without_last_refreshed_datetime_the_stream_takes_paypals_documented_three_hours(
        integration, visma, time_machine, settings, delay):
    # given: the field is optional; "It takes a maximum of three hours for executed transactions to appear"
    time_machine.move_to(datetime(2026, 3, 5, 12, 0, tzinfo=UTC), tick=False)
    integration.settings = settings
    visma.add(responses.POST, f"{PAYPAL}/v1/oauth2/token", json=payload("token.json"))
    visma.add(responses.GET, f"{PAYPAL}/v1/reporting/transactions",
              json={"transaction_details": [], "total_pages": 0, "page": 1})
    stream = CapturesStream(integration)

    # when
    list(stream.read_window(datetime(2026, 3, 5, 0, 0, tzinfo=UTC), datetime(2026, 3, 5, 12, 0, tzinfo=UTC)))

    # then
    assert stream.published_until() == datetime(2026, 3, 5, 12, 0, tzinfo=UTC) - delay


def test_the_invoices_stream_has_no_publication_horizon(integration, visma):
    # given
    visma.add(responses.POST, f"{PAYPAL}/v1/oauth2/token", json=payload("token.json"))
    visma.add(responses.POST, f"{PAYPAL}/v2/invoicing/search-invoices", json={"items": [], "total_pages": 0})
    stream = InvoicesStream(integration)

    # when
    list(stream.read_window(*_window()))

    # then
    assert (stream.publication_delay, stream.published_until()) == (timedelta(0), None)


def test_a_rule_for_a_customer_group_is_chosen_for_that_groups_payers(integration, visma):
    # given
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])
    GLMappingRuleFactory(tenant=integration.tenant, name="Everyone", priority=20, gl_account="3000")
    GLMappingRuleFactory(tenant=integration.tenant, name="EU customers", priority=10, customer_group="EU",
                         gl_account="3010", dimensions={"1": "100"})
    posting = CapturesStream(integration).transform(_capture())

    # when
    outcome = posting_map(tenant=integration.tenant, system="paypal", posting=posting)

    # then
    assert outcome.rule == GLMappingRule.objects.get(name="EU customers")
    assert [line.account for line in posting.lines] == ["1920", "7770", "3010"]


def test_a_refund_of_a_rejected_capture_is_for_a_person(integration, visma):
    # given
    from audit.services import record_flag, record_reject
    from tests.factories import UserFactory

    record, _ = record_upsert(integration=integration, stream="captures", source_id="2GG279541U471931P", payload={},
                              source_updated_at=None, amount=Decimal("100.00"), currency="EUR")
    record_reject(record_flag(record, reasons=["test payment"]), user=UserFactory(), reason="a test payment")

    # when
    with pytest.raises(SourceDataError) as raised:
        RefundsStream(integration).transform(_refund())

    # then
    assert str(raised.value) == ("capture 2GG279541U471931P was rejected, so refund 1JU08902781691411 has nothing to "
                                 "reverse in Visma: reject it too, or book it by hand")


def test_a_capture_paying_a_paypal_invoice_not_read_yet_waits_for_it(integration, visma):
    # given: Visma has no invoice with that externalReference, and no record of it exists here
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice", json=[])

    # when
    with pytest.raises(WaitFor) as raised:
        CapturesStream(integration).transform(_capture(invoice_id="INV2-Z56S-5LLA-Q52L-CPZ5"))

    # then
    assert str(raised.value) == "PayPal invoice INV2-Z56S-5LLA-Q52L-CPZ5 has not reached Visma yet"
