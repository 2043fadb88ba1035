"""Square invoices → Visma: which invoice a payment pays (by the order both name, a location listed at most once), an
invoice's lines, VAT and totals from its order, its customer, what changes after posting, its payments and refunds."""
import re
from datetime import date, timedelta
from decimal import Decimal

import pytest
import responses
from django.utils import timezone

from audit.models import RecordStatus, SyncRecord
from connectors.errors import WaitFor
from connectors.pipeline import SourceDataError, SourceObject, source_take
from connectors.square.invoices import (
    CUSTOMERS,
    INVOICES,
    CustomersStream,
    InvoicePaymentsStream,
    InvoicesStream,
    square_invoice_of_payment,
    square_invoices_listed_at,
    square_invoices_listed_mark,
)
from mappings.documents import MatchFacts, Posting
from mappings.models import Currency, ExternalReference, SquareLocation, VatCodeMapping
from mappings.services import posting_map
from tests.admin.factories import CustomerFactory
from tests.factories import (
    ConnectionFactory,
    GLMappingRuleFactory,
    IntegrationFactory,
    SyncRecordFactory,
    TenantFactory,
    stream_marker,
)

pytestmark = pytest.mark.django_db


class FakeSquare:
    """ListInvoices as Square answers it: every invoice of the location, drafts included."""

    def __init__(self, invoices):
        self.listed: list[str] = []
        self._invoices = invoices

    def invoices(self, *, location_id, page_size=100):
        self.listed.append(location_id)
        return iter([invoice for invoice in self._invoices if invoice["location_id"] == location_id])

    def invoices_search(self, *, location_id, limit=10):
        """SearchInvoices newest first (the fakes' invoices are published when last updated); what was read."""
        self.listed.append(f"search {location_id}")
        self.read: list[str] = []
        for invoice in sorted((invoice for invoice in self._invoices if invoice["location_id"] == location_id),
                              key=lambda invoice: invoice["updated_at"], reverse=True):
            self.read.append(invoice["id"])
            yield invoice


class Stream:
    def __init__(self, integration):
        self.integration = integration


def _invoice(number, *, order_id, location_id="L1", status="UNPAID", version=1):
    return {"id": f"inv:0-{number}", "version": version, "location_id": location_id, "order_id": order_id,
            "status": status, "invoice_number": f"{number:06d}", "updated_at": "2026-12-06T10:00:00Z"}


def _payment(order_id, *, location_id="L1", created_at=None):
    created_at = created_at or timezone.now()
    return {"id": f"pay-{order_id}", "order_id": order_id, "location_id": location_id,
            "created_at": created_at.isoformat().replace("+00:00", "Z")}


@pytest.fixture
def integration():
    return IntegrationFactory(kind="square", settings={"begin_time": "2026-01-01T00:00:00+00:00"})


def test_a_payment_without_an_order_pays_no_invoice_and_costs_no_call(integration):
    # given
    square = FakeSquare([_invoice(1, order_id="O1")])
    # when
    found = square_invoice_of_payment(Stream(integration), {"id": "pay-1", "location_id": "L1"}, square=square)
    # then
    assert found is None
    assert square.listed == []


def test_a_just_published_invoice_is_found_by_listing_its_location_once_and_remembered(integration):
    # given: nothing listed yet; a draft and a published invoice at L1
    square = FakeSquare([_invoice(1, order_id="O1"), _invoice(2, order_id="O2", status="DRAFT")])
    stream = Stream(integration)
    # when
    found = square_invoice_of_payment(stream, _payment("O1"), square=square)
    # then: listed once, the published invoice stored as a received record, the draft not
    assert found["id"] == "inv:0-1"
    assert square.listed == ["L1"]
    assert list(SyncRecord.objects.filter(stream=INVOICES).values_list("source_id", "status")) == [
        ("inv:0-1", "received")]
    assert square_invoices_listed_at(integration, "L1") is not None
    # and a second payment of that invoice, in a new stream (the next poll), costs no call
    again = FakeSquare([])
    assert square_invoice_of_payment(Stream(integration), _payment("O1"), square=again)["id"] == "inv:0-1"
    assert again.listed == []


def test_pos_payments_cost_at_most_one_listing_per_location_per_stream(integration):
    # given: POS sales (orders no invoice names) at two locations
    square = FakeSquare([_invoice(1, order_id="O1")])
    stream = Stream(integration)
    # when
    results = [square_invoice_of_payment(stream, _payment(f"POS{n}", location_id=location), square=square)
               for n, location in enumerate(["L1", "L1", "L2", "L1", "L2"])]
    # then
    assert results == [None] * 5
    assert square.listed == ["L1", "L2"]


def test_a_payment_older_than_the_last_listing_costs_no_call(integration):
    # given: L1 listed a minute ago; the payment was made ten minutes ago
    square_invoices_listed_mark(integration, "L1", timezone.now() - timedelta(minutes=1))
    square = FakeSquare([_invoice(1, order_id="O1")])
    # when
    found = square_invoice_of_payment(Stream(integration), _payment(
        "POS", created_at=timezone.now() - timedelta(minutes=10)), square=square)
    # then
    assert found is None
    assert square.listed == []


def test_a_payment_newer_than_the_last_listing_lists_again(integration):
    # given: L1 listed an hour ago, the invoice published and paid since
    square_invoices_listed_mark(integration, "L1", timezone.now() - timedelta(hours=1))
    square = FakeSquare([_invoice(7, order_id="O7")])
    # when
    found = square_invoice_of_payment(Stream(integration), _payment("O7"), square=square)
    # then: only what was published since is read (SearchInvoices), not the location's whole list
    assert found["id"] == "inv:0-7"
    assert square.listed == ["search L1"]
    assert square_invoices_listed_at(integration, "L1") > timezone.now() - timedelta(minutes=1)


def _at(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_the_search_for_invoices_published_since_stops_at_the_first_one_older_than_the_last_listing(integration):
    # given: L1 listed an hour ago; two invoices published since, three before (seen by that listing)
    now = timezone.now()
    square_invoices_listed_mark(integration, "L1", now - timedelta(hours=1))
    invoices = [{**_invoice(number, order_id=f"O{number}"), "updated_at": _at(now - timedelta(minutes=minutes))}
                for number, minutes in ((1, 5), (2, 10), (3, 120), (4, 180), (5, 240))]
    square = FakeSquare(invoices)
    # when: a POS payment (its order on no invoice)
    found = square_invoice_of_payment(Stream(integration), _payment("POS"), square=square)
    # then: read down to the first invoice last updated before the listing, no further
    assert found is None
    assert square.read == ["inv:0-1", "inv:0-2", "inv:0-3"]
    # and a scheduled invoice (sorted by scheduled_at, maybe after its updated_at) never stops the walk
    other = IntegrationFactory(kind="square", settings={"begin_time": "2026-01-01T00:00:00+00:00"})
    square_invoices_listed_mark(other, "L1", now - timedelta(hours=1))
    invoices[2]["status"] = "SCHEDULED"
    square = FakeSquare(invoices)
    square_invoice_of_payment(Stream(other), _payment("POS2"), square=square)
    assert square.read == ["inv:0-1", "inv:0-2", "inv:0-3", "inv:0-4"]


def test_the_listing_mark_never_moves_back(integration):
    # given
    later = timezone.now()
    square_invoices_listed_mark(integration, "L1", later)
    # when: a slower listing that started earlier finishes after it
    square_invoices_listed_mark(integration, "L1", later - timedelta(minutes=5))
    # then
    assert square_invoices_listed_at(integration, "L1") == later


# --- invoices → Visma customer invoices ---------------------------------------------------------------------------

VISMA = "https://api.finance.visma.net"
OSLO, BERGEN = "LOSLO0001", "LBERGEN02"


def _money(amount: int, currency: str = "NOK") -> dict:
    return {"amount": amount, "currency": currency}


def _line(uid, name, quantity, base, *, discount=0, tax=0, taxes=("vat25",), **extra) -> dict:
    """An OrderLineItem as Square returns it: its totals computed (api.json OrderLineItem), minor units."""
    gross = int(Decimal(quantity) * base)
    return {"uid": uid, "name": name, "quantity": quantity, "base_price_money": _money(base),
            "gross_sales_money": _money(gross), "total_discount_money": _money(discount),
            "total_tax_money": _money(tax), "total_money": _money(gross - discount + tax),
            "applied_taxes": [{"uid": f"{uid}-{tax_uid}", "tax_uid": tax_uid, "applied_money": _money(tax)}
                              for tax_uid in taxes], **extra}


def square_order(**changes) -> dict:
    """An order of three lines: a line discount and an order-level discount Square apportioned (300.00 and 25.00
    off), 25 % VAT on the first two and 15 % on the coffee; 2475.00 net, 588.75 VAT, 3063.75 in all."""
    order = {
        "id": "ORDER-INV-1", "location_id": OSLO, "state": "OPEN", "version": 3,
        "line_items": [
            _line("l1", "Espresso cup", "2", 100000, discount=30000, tax=42500),
            _line("l2", "Saucer", "1", 50000, discount=2500, tax=11875),
            _line("l3", "Coffee beans", "1.5", 20000, tax=4500, taxes=("vat15",), variation_name="1 kg"),
        ],
        "taxes": [{"uid": "vat25", "name": "MVA", "percentage": "25", "type": "ADDITIVE", "scope": "LINE_ITEM"},
                  {"uid": "vat15", "name": "MVA mat", "percentage": "15", "type": "ADDITIVE", "scope": "LINE_ITEM"}],
        "discounts": [{"uid": "d1", "name": "Welcome", "type": "FIXED_AMOUNT", "amount_money": _money(12500),
                       "scope": "ORDER"}],
        "total_money": _money(306375), "total_tax_money": _money(58875), "total_discount_money": _money(32500),
        "total_tip_money": _money(0), "total_service_charge_money": _money(0),
        "tenders": [], "created_at": "2026-12-01T09:00:00Z", "updated_at": "2026-12-01T09:05:00Z",
    }
    order.update(changes)
    return order


def square_invoice(**changes) -> dict:
    invoice = {
        "id": "inv:0-ChBqx2Xq", "version": 2, "location_id": OSLO, "order_id": "ORDER-INV-1",
        "primary_recipient": {"customer_id": "CUST-FJORD"}, "invoice_number": "000042", "title": "Cups",
        "payment_requests": [{"uid": "pr1", "request_type": "BALANCE", "due_date": "2026-12-15",
                              "computed_amount_money": _money(306375)}],
        "status": "UNPAID", "timezone": "Europe/Oslo", "created_at": "2026-12-01T09:05:00Z",
        "updated_at": "2026-12-01T09:06:00Z", "sale_or_service_date": "2026-12-01",
    }
    invoice.update(changes)
    return invoice


FJORD = {"id": "CUST-FJORD", "company_name": "Fjord Kaffe AS", "email_address": "post@fjordkaffe.example",
         "reference_id": "10002", "version": 1, "created_at": "2026-11-01T00:00:00Z",
         "updated_at": "2026-11-01T00:00:00Z"}


class SquareReads:
    """Square as the invoices streams read it: invoices, orders, customers, payments, refunds by id."""

    def __init__(self, *, invoices=(), orders=(), customers=(FJORD,), payments=(), refunds=()):
        self.invoices_by_id = {invoice["id"]: invoice for invoice in invoices}
        self.orders = {order["id"]: order for order in orders}
        self.customers = {customer["id"]: customer for customer in customers}
        self.payments = {payment["id"]: payment for payment in payments}
        self.refunds = {refund["id"]: refund for refund in refunds}
        self.calls: list[str] = []

    def invoices(self, *, location_id, page_size=100):
        self.calls.append(f"list {location_id}")
        return iter([invoice for invoice in self.invoices_by_id.values() if invoice["location_id"] == location_id])

    def invoices_search(self, *, location_id, limit=10):
        self.calls.append(f"search {location_id}")
        here = [invoice for invoice in self.invoices_by_id.values() if invoice["location_id"] == location_id]
        return iter(sorted(here, key=lambda invoice: invoice["updated_at"], reverse=True))

    def invoice(self, invoice_id):
        self.calls.append(f"invoice {invoice_id}")
        return self.invoices_by_id.get(invoice_id)

    def order(self, order_id):
        self.calls.append(f"order {order_id}")
        return self.orders.get(order_id)

    def customer(self, customer_id):
        self.calls.append(f"customer {customer_id}")
        return self.customers.get(customer_id)

    def payment(self, payment_id):
        self.calls.append(f"payment {payment_id}")
        return self.payments.get(payment_id)

    def refund(self, refund_id):
        self.calls.append(f"refund {refund_id}")
        return self.refunds.get(refund_id)


def _stream(cls, integration, square: SquareReads):
    stream = cls(integration)
    stream.__dict__["square"] = square
    return stream


@pytest.fixture
def square_integration(db):
    tenant = TenantFactory(slug="kaffebar")
    integration = IntegrationFactory(
        tenant=tenant, kind="square", settings={"begin_time": "2026-11-01T00:00:00+00:00"},
        partner_connection=ConnectionFactory(tenant=tenant, system="square", base_url="https://connect.squareup.com",
                                             token_url="", credentials={"access_token": "EAAA-token"}))
    SquareLocation.objects.create(tenant=tenant, location_id=OSLO, name="Store Oslo Sentrum", currency="NOK")
    SquareLocation.objects.create(tenant=tenant, location_id=BERGEN, name="Store Bergen", currency="NOK")
    CustomerFactory(tenant=tenant, number="10002", name="Fjord Kaffe AS", customer_class="B2B")
    VatCodeMapping.objects.create(tenant=tenant, system="square", tax_name="", percent=Decimal("25"), vat_code="3")
    VatCodeMapping.objects.create(tenant=tenant, system="square", tax_name="", percent=Decimal("15"), vat_code="31")
    return integration


@pytest.fixture
def visma():
    """Visma.net ERP as the streams ask it: the VAT rates of codes 3 and 31; no call is required."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add(responses.POST, "https://connect.visma.com/connect/token",
                 json={"access_token": "visma-token", "expires_in": 3600, "token_type": "Bearer"})
        for code, rate in (("3", 25.0), ("31", 15.0), ("5", 0.0)):
            mock.add(responses.GET, f"{VISMA}/v1/vat/{code}", json={
                "vatId": code, "schedules": [{"startDate": "2016-01-01T00:00:00", "vatRate": rate}]})
        yield mock


def _invoice_source(invoice=None, order=None, customer=FJORD) -> SourceObject:
    invoice = invoice or square_invoice()
    return SourceObject(source_id=invoice["id"], payload={"invoice": invoice, "order": order or square_order(),
                                                          "customer": customer})


def test_a_published_invoice_becomes_one_customer_invoice_with_the_orders_lines_vat_codes_and_totals(
        square_integration, visma):
    # given
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    # when
    posting = stream.transform(_invoice_source())
    # then
    assert (posting.document, posting.marker, posting.customer, posting.currency, posting.date) == (
        "customer_invoice", stream_marker(square_integration, "invoices", "inv:0-ChBqx2Xq"), "10002", "NOK",
        date(2026, 12, 1))
    assert posting.extra["lines"] == [
        {"description": "Espresso cup (discount 300.00 NOK)", "quantity": "2", "amount": "1700.00", "vat_code": "3"},
        {"description": "Saucer (discount 25.00 NOK)", "quantity": "1", "amount": "475.00", "vat_code": "3"},
        {"description": "Coffee beans 1 kg", "quantity": "1.5", "unit_price": "200.00", "vat_code": "31"},
    ]
    assert (posting.extra["net"], posting.extra["vat"], posting.extra["total"]) == ("2475.00", "588.75", "3063.75")
    assert [line.credit for line in posting.lines] == [Decimal("1700.00"), Decimal("475.00"), Decimal("300.00")]
    assert (posting.extra["customer_ref"], posting.extra["due_date"]) == ("000042", "2026-12-15")
    assert posting.description == "Square invoice 000042 inv:0-ChBqx2Xq · service date 2026-12-01"
    assert (posting.facts.transaction_type, posting.facts.amount, posting.facts.location,
            posting.facts.customer_group) == ("invoice", Decimal("3063.75"), OSLO, "B2B")


def test_the_invoice_is_dated_when_it_was_issued_in_the_tenants_time_zone_and_the_service_date_is_in_its_text(
        square_integration, visma):
    # given: created late on 1 December UTC (2 December in Oslo), a service date in the next year
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    invoice = square_invoice(created_at="2026-12-01T23:30:00Z", sale_or_service_date="2027-01-15")
    # when
    posting = stream.transform(_invoice_source(invoice))
    # then
    assert posting.date == date(2026, 12, 2)
    assert posting.description == "Square invoice 000042 inv:0-ChBqx2Xq · service date 2027-01-15"
    # and a scheduled invoice too: never the future day Square will send it
    scheduled = stream.transform(_invoice_source(square_invoice(scheduled_at="2027-02-04T08:00:00Z")))
    assert scheduled.date == date(2026, 12, 1)


def test_an_invoice_number_longer_than_vismas_customer_reference_is_flagged_not_cut(square_integration, visma):
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(_invoice_source(square_invoice(invoice_number="INV-" + "9" * 40)))
    assert "its number is 44 characters, Visma's customer reference (customerRefNumber) holds 40" in str(
        flagged.value)


def test_the_location_rule_puts_its_account_and_cost_center_on_every_invoice_line(square_integration, visma):
    # given: a rule for invoices anywhere, and one for Oslo's store (cost center 310)
    tenant = square_integration.tenant
    GLMappingRuleFactory(tenant=tenant, system="square", name="Invoices", transaction_type="invoice",
                         gl_account="3000", dimensions={"1": "330"})
    GLMappingRuleFactory(tenant=tenant, system="square", name="Invoices Oslo", transaction_type="invoice",
                         location=OSLO, gl_account="3020", dimensions={"1": "310"}, priority=200)
    posting = _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source())
    # when
    outcome = posting_map(tenant=tenant, system="square", posting=posting)
    # then
    assert outcome.rule.name == "Invoices Oslo"
    assert {(line.account, tuple(line.dimensions.items())) for line in posting.lines} == {("3020", (("1", "310"),))}


def test_vat_that_visma_would_compute_otherwise_is_flagged_with_both_totals(square_integration, visma):
    # given: Square rounded the 25 % VAT per line to one øre more than Visma's per-code total
    order = square_order(total_tax_money=_money(58876), total_money=_money(306376))
    # when
    with pytest.raises(SourceDataError) as flagged:
        _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source(order=order))
    # then
    assert str(flagged.value) == (
        "Square invoice 000042: Visma would total 3063.75 NOK (lines 2475.00 + VAT 588.75 by VAT code), Square's "
        "order totals 3063.76 NOK with VAT 588.76: not written, the totals would differ")


def test_a_tax_without_a_mapped_vat_code_is_flagged(square_integration, visma):
    # given
    VatCodeMapping.objects.filter(percent=Decimal("15")).delete()
    # when
    with pytest.raises(SourceDataError) as flagged:
        _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source())
    # then
    assert "line 3: tax MVA mat 15 % has no Visma VAT code mapped" in str(flagged.value)


def test_an_untaxed_line_needs_an_explicit_zero_rate_vat_code(square_integration, visma):
    # given: a fourth line without tax (a gift card wrapping, say)
    order = square_order()
    order["line_items"].append(_line("l4", "Gift wrapping", "1", 5000, taxes=()))
    order["total_money"] = _money(306375 + 5000)
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    # when: no 0 % code mapped
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(_invoice_source(order=order))
    # then: flagged naming the line
    assert "line 4 (Gift wrapping) has no tax: no VAT code for untaxed lines: map 0 % to Visma's exempt code" in str(
        flagged.value)
    # when: 0 % mapped to Visma's zero-rated code 5
    VatCodeMapping.objects.create(tenant=square_integration.tenant, system="square", percent=Decimal("0"),
                                  vat_code="5")
    posting = stream.transform(_invoice_source(order=order))
    # then: the line goes with code 5, never without one
    assert posting.extra["lines"][3] == {"description": "Gift wrapping", "quantity": "1", "unit_price": "50.00",
                                         "vat_code": "5"}
    assert (posting.extra["vat"], posting.extra["total"]) == ("588.75", "3113.75")


def test_a_draft_waits_and_an_invoice_canceled_before_posting_is_not_posted(square_integration, visma):
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    with pytest.raises(WaitFor):
        stream.transform(_invoice_source(square_invoice(status="DRAFT")))
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(_invoice_source(square_invoice(status="CANCELED")))
    assert "canceled in Square before it reached Visma: nothing is posted" in str(flagged.value)


def test_a_customer_found_by_an_external_reference_when_its_reference_id_is_no_visma_customer(square_integration,
                                                                                             visma):
    # given: the reference_id is the webshop's, not a Visma number; the admin mapped the customer
    ExternalReference.objects.create(tenant=square_integration.tenant, system="square", external_kind="customer",
                                     external_id="CUST-FJORD", visma_kind="customer", visma_id="10002")
    visma.add(responses.GET, f"{VISMA}/v1/customer/WEB-77", status=404, json={"message": "not found"})
    stranger = {**FJORD, "reference_id": "WEB-77"}
    # when
    posting = _stream(InvoicesStream, square_integration, SquareReads()).transform(
        _invoice_source(customer=stranger))
    # then
    assert posting.customer == "10002"


def test_an_unknown_square_customer_is_flagged_naming_it(square_integration, visma):
    # given
    visma.add(responses.GET, re.compile(f"{VISMA}/v1/customer/.*"), status=404, json={"message": "not found"})
    stranger = {**FJORD, "id": "CUST-NEW", "company_name": "Ny Kafé AS", "reference_id": ""}
    invoice = square_invoice(primary_recipient={"customer_id": "CUST-NEW"})
    # when
    with pytest.raises(SourceDataError) as flagged:
        _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source(invoice,
                                                                                            customer=stranger))
    # then
    assert str(flagged.value).startswith("Square invoice 000042: unknown Square customer: Square customer Ny Kafé "
                                         "AS (CUST-NEW) is no Visma customer")
    assert not SyncRecord.objects.filter(stream=CUSTOMERS).exists()


def test_a_customer_matching_two_visma_customers_is_flagged(square_integration, visma):
    # given: reference_id says 10002, the admin's mapping says 10003
    CustomerFactory(tenant=square_integration.tenant, number="10003", name="Fjord Kaffe Bergen")
    ExternalReference.objects.create(tenant=square_integration.tenant, system="square", external_kind="customer",
                                     external_id="CUST-FJORD", visma_kind="customer", visma_id="10003")
    # when
    with pytest.raises(SourceDataError) as flagged:
        _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source())
    # then
    assert "matches two Visma customers (10002 by its reference_id; 10003 by an external reference)" in str(
        flagged.value)


def test_with_create_customers_an_unknown_customer_is_created_first_and_the_invoice_waits_for_it(
        square_integration, visma):
    # given
    square_integration.settings = {**square_integration.settings, "create_customers": True}
    square_integration.save()
    visma.add(responses.GET, re.compile(f"{VISMA}/v1/customer/.*"), status=404, json={"message": "not found"})
    stranger = {**FJORD, "id": "CUST-NEW", "company_name": "Ny Kafé AS", "reference_id": ""}
    invoice = square_invoice(primary_recipient={"customer_id": "CUST-NEW"})
    stream = _stream(InvoicesStream, square_integration, SquareReads(customers=[stranger]))
    # when
    with pytest.raises(WaitFor) as waiting:
        stream.transform(_invoice_source(invoice, customer=stranger))
    # then: the customer's record is there to be created; the customer document carries its name and email
    assert waiting.value.on == ("customers", "CUST-NEW")
    record = SyncRecord.objects.get(stream=CUSTOMERS, source_id="CUST-NEW")
    document = CustomersStream(square_integration).transform(SourceObject(source_id="CUST-NEW",
                                                                          payload=record.source_payload))
    assert (document.document, document.extra["fields"]) == (
        "customer", {"name": "Ny Kafé AS", "mainContact": {"email": "post@fjordkaffe.example"}})
    # and once it is posted (Visma customer 10077), the invoice is for it
    SyncRecord.objects.filter(pk=record.pk).update(status=RecordStatus.POSTED, target_id="10077")
    assert stream.transform(_invoice_source(invoice, customer=stranger)).customer == "10077"


def _just_now() -> str:
    return timezone.now().isoformat().replace("+00:00", "Z")


def _posted_invoice(integration, stream, invoice=None, order=None, *, number="100007") -> SyncRecord:
    posting = stream.transform(_invoice_source(invoice, order))
    return SyncRecordFactory(integration=integration, stream="invoices", source_id=(invoice or square_invoice())["id"],
                             status=RecordStatus.POSTED, target_id=number, proposed_posting=posting.to_json(),
                             source_payload={"invoice": invoice or square_invoice(), "order": order or square_order()},
                             amount=Decimal("3063.75"), currency="NOK")


def test_a_posted_invoice_canceled_or_changed_in_square_is_flagged_for_a_person_and_never_sent_again(
        square_integration, visma):
    # given: posted as Visma invoice 100007; Square now has version 3 with another total
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    _posted_invoice(square_integration, stream)
    changed_order = square_order(id="ORDER-INV-1", total_money=_money(400000), total_tax_money=_money(80000))
    square = SquareReads(invoices=[square_invoice(version=3, updated_at=_just_now())],
                         orders=[changed_order])
    # when
    sources = list(_stream(InvoicesStream, square_integration, square).read_window(timezone.now(), timezone.now()))
    # then: a change notice, never the invoice again
    assert [source.source_id for source in sources] == ["inv:0-ChBqx2Xq:v3"]
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(sources[0])
    assert str(flagged.value).startswith(
        "Square invoice 000042 (inv:0-ChBqx2Xq), posted as Visma invoice 100007 with total 3063.75 NOK (VAT 588.75), "
        "changed in Square after posting to total 4000.00 NOK (VAT 800.00)")
    # and canceled: the same, said so
    square = SquareReads(invoices=[square_invoice(version=4, status="CANCELED", updated_at=_just_now())],
                         orders=[square_order()])
    [notice] = _stream(InvoicesStream, square_integration, square).read_window(timezone.now(), timezone.now())
    assert "was canceled in Square: a credit note is a decision for a person" in notice.payload["change"]


def test_a_posted_invoice_paid_in_square_is_not_read_again_once_listed(square_integration, visma):
    # given: posted; Square marks it PAID (a new version: no change of amounts)
    stream = _stream(InvoicesStream, square_integration, SquareReads())
    _posted_invoice(square_integration, stream)
    square = SquareReads(invoices=[square_invoice(version=3, status="PAID", updated_at=_just_now())],
                         orders=[square_order()])
    # when: listed twice, an hour apart
    first = list(_stream(InvoicesStream, square_integration, square).read_window(timezone.now(), timezone.now()))
    square_invoices_listed_mark(square_integration, OSLO, timezone.now() + timedelta(hours=1))
    square.calls.clear()
    second = list(_stream(InvoicesStream, square_integration, square).read_window(timezone.now(), timezone.now()))
    # then: nothing to post either time; the second listing reads no order
    assert (first, second) == ([], [])
    assert square.calls == [f"list {BERGEN}", f"list {OSLO}"]


def test_drafts_and_invoices_canceled_before_they_were_read_are_not_taken(square_integration, visma):
    square = SquareReads(invoices=[square_invoice(id="inv:draft", status="DRAFT"),
                                   square_invoice(id="inv:gone", status="CANCELED")], orders=[square_order()])
    assert list(_stream(InvoicesStream, square_integration, square).read_window(timezone.now(),
                                                                                 timezone.now())) == []


# --- invoice payments ---------------------------------------------------------------------------------------------


def square_payment(**changes) -> dict:
    payment = {"id": "PAY-INV-1", "status": "COMPLETED", "source_type": "CARD", "location_id": OSLO,
               "order_id": "ORDER-INV-1", "amount_money": _money(306375), "total_money": _money(306375),
               "processing_fee": [{"effective_at": "2026-12-02T10:00:00Z", "type": "INITIAL",
                                   "amount_money": _money(7966)}],
               "created_at": "2026-12-02T10:00:00Z", "updated_at": "2026-12-02T10:00:10Z"}
    payment.update(changes)
    return payment


def test_a_payment_of_a_posted_invoice_becomes_a_customer_payment_with_its_fee(square_integration, visma):
    # given
    invoices = _stream(InvoicesStream, square_integration, SquareReads())
    _posted_invoice(square_integration, invoices)
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    # when
    posting = stream.transform(stream.source_object(payment=square_payment(), invoice=square_invoice()))
    # then
    assert (posting.document, posting.customer, posting.extra["invoice_number"], posting.date) == (
        "customer_payment", "10002", "100007", date(2026, 12, 2))
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("clearing", Decimal("2984.09"), Decimal(0)), ("fee", Decimal("79.66"), Decimal(0)),
        ("account", Decimal(0), Decimal("3063.75"))]
    assert (posting.facts.transaction_type, posting.facts.payment_method, posting.facts.location) == (
        "invoice_payment", "CARD", OSLO)


def test_a_payment_the_payments_stream_booked_as_a_sale_journal_is_flagged_never_booked_twice(square_integration,
                                                                                             visma):
    # given: the invoice posted; the payments stream booked PAY-INV-1 as a sale journal (JV000123) before it knew
    invoices = _stream(InvoicesStream, square_integration, SquareReads())
    _posted_invoice(square_integration, invoices)
    sale = Posting(document="journal", marker=invoices.marker("PAY-INV-1"), currency="NOK", date=date(2026, 12, 2),
                   description="sale",
                   facts=MatchFacts(transaction_type="payment", amount=Decimal("3063.75"), currency="NOK"))
    SyncRecordFactory(integration=square_integration, stream="payments", source_id="PAY-INV-1",
                      status=RecordStatus.POSTED, target_id="JV000123", proposed_posting=sale.to_json())
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    # when
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(stream.source_object(payment=square_payment(), invoice=square_invoice()))
    # then
    assert "Square payment PAY-INV-1 is already booked as a sale journal JV000123: reverse it by hand or reject" in (
        str(flagged.value))


def test_an_invoice_payment_waits_for_its_invoice_and_for_squares_fee(square_integration, visma):
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    with pytest.raises(WaitFor) as waiting:
        stream.transform(stream.source_object(payment=square_payment(), invoice=square_invoice()))
    assert waiting.value.on == ("invoices", "inv:0-ChBqx2Xq")
    _posted_invoice(square_integration, _stream(InvoicesStream, square_integration, SquareReads()))
    with pytest.raises(WaitFor) as waiting:
        stream.transform(stream.source_object(payment=square_payment(processing_fee=None, created_at=_just_now()),
                                              invoice=square_invoice()))
    assert "no processing_fee yet" in str(waiting.value)
    # a source type this integration does not know waits for a fee too
    with pytest.raises(WaitFor):
        stream.transform(stream.source_object(payment=square_payment(
            processing_fee=None, source_type="CRYPTO", created_at=_just_now()), invoice=square_invoice()))
    # and the wait ends: fee_wait_minutes (120) after the payment, flagged
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(stream.source_object(payment=square_payment(
            processing_fee=None, created_at=(timezone.now() - timedelta(minutes=121)).isoformat()),
            invoice=square_invoice()))
    assert "Square has not reported the processing fee of Square payment PAY-INV-1 (CARD) 120 minutes after" in str(
        flagged.value)
    # cash carries no fee: posted without one
    cash = stream.transform(stream.source_object(payment=square_payment(source_type="CASH", processing_fee=None),
                                                 invoice=square_invoice()))
    assert [line.role for line in cash.lines] == ["clearing", "account"]


def test_a_fee_square_adjusts_after_an_invoice_payment_was_posted_is_its_own_fee_journal_once(square_integration,
                                                                                               visma):
    # given: the invoice and its payment posted (fee 79.66 booked with the customer payment)
    invoices = _stream(InvoicesStream, square_integration, SquareReads())
    _posted_invoice(square_integration, invoices)
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    paid = stream.transform(stream.source_object(payment=square_payment(), invoice=square_invoice()))
    SyncRecordFactory(integration=square_integration, stream="invoice_payments", source_id="PAY-INV-1",
                      status=RecordStatus.POSTED, target_id="payment 000123 + journal JV9",
                      proposed_posting=paid.to_json(), source_payload={"payment": square_payment()})
    # when: Square adds an adjustment of 5.00 the day after; the payment is read (webhook) twice
    adjusted = square_payment(processing_fee=[*square_payment()["processing_fee"], {
        "effective_at": "2026-12-03T08:00:00Z", "type": "ADJUSTMENT", "amount_money": _money(500)}])
    square = SquareReads(payments=[adjusted])
    for _ in range(2):
        _stream(InvoicePaymentsStream, square_integration, square).read_one("PAY-INV-1")
    # then: one fee record, a journal of the adjustment alone
    [part] = SyncRecord.objects.filter(stream="invoice_payments", source_id__contains=":fee:")
    assert part.source_id == "PAY-INV-1:fee:2026-12-03T08:00:00Z"
    reader = _stream(InvoicePaymentsStream, square_integration, square)
    journal = reader.transform(reader.read_one(part.source_id))
    assert journal.document == "journal"
    assert [(line.role, line.debit, line.credit) for line in journal.lines] == [
        ("fee", Decimal("5.00"), Decimal(0)), ("clearing", Decimal(0), Decimal("5.00"))]
    assert (journal.date, journal.facts.transaction_type, journal.facts.location) == (
        date(2026, 12, 3), "invoice_payment", OSLO)


def _visma_invoice_100007() -> dict:
    """Visma's CustomerInvoiceDto of the posted Square invoice (NOK, the base currency): its three lines' nets, VAT."""
    lines = [("Espresso cup", "1700.00", "3"), ("Saucer", "475.00", "3"), ("Coffee beans 1 kg", "300.00", "31")]
    totals = {"detailTotal": 2475.00, "vatTotal": 588.75, "amount": 3063.75}
    return {"referenceNumber": "100007", "currencyId": "NOK", "exchangeRate": 1.0,
            **totals, **{f"{name}InCurrency": value for name, value in totals.items()},
            "invoiceLines": [{"lineNumber": number, "description": text, "amountInCurrency": float(amount),
                              "amount": float(amount), "account": {"number": "3020"},
                              "subaccount": {"segments": [{"segmentId": 1, "segmentValue": "310"}]},
                              "vatCode": {"id": code}}
                             for number, (text, amount, code) in enumerate(lines, start=1)]}


def test_a_refund_of_an_invoice_payment_is_a_credit_note_for_its_share_with_the_fee_square_returned(
        square_integration, visma):
    # given: the invoice (Visma 100007) and its card payment are posted; a tenth goes back, 7.97 of the fee with it
    Currency.objects.create(tenant=square_integration.tenant, code="NOK", is_base=True)
    _posted_invoice(square_integration, _stream(InvoicesStream, square_integration, SquareReads()))
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    payment = stream.transform(stream.source_object(payment=square_payment(), invoice=square_invoice()))
    SyncRecordFactory(integration=square_integration, stream="invoice_payments", source_id="PAY-INV-1",
                      status=RecordStatus.POSTED, target_id="payment 200001 + journal 000001",
                      proposed_posting=payment.to_json())
    visma.add(responses.GET, f"{VISMA}/v1/customerinvoice/100007", json=_visma_invoice_100007())
    refund = {"id": "REF-INV-1", "payment_id": "PAY-INV-1", "status": "COMPLETED", "location_id": OSLO,
              "amount_money": _money(30638), "processing_fee": [{"effective_at": "2026-12-03T10:00:00Z",
                                                                  "type": "INITIAL", "amount_money": _money(-797)}],
              "created_at": "2026-12-03T10:00:00Z", "updated_at": "2026-12-03T10:00:05Z"}
    # when
    posting = stream.transform(stream.source_object(refund=refund))
    # then: 306.38 of 3063.75 credited line by line (VAT codes kept), paid out of clearing less the fee returned
    assert (posting.document, posting.customer, posting.extra["invoice_number"]) == ("credit_note", "10002", "100007")
    assert [(line["description"], line["amount"], line["vat_code"]) for line in posting.extra["lines"]] == [
        ("Espresso cup", "170.00", "3"), ("Saucer", "47.50", "3"), ("Coffee beans 1 kg", "30.00", "31")]
    assert [(line.role, line.debit, line.credit) for line in posting.lines] == [
        ("account", Decimal("306.38"), Decimal(0)), ("clearing", Decimal(0), Decimal("298.41")),
        ("fee", Decimal(0), Decimal("7.97"))]


def test_a_refund_waits_for_its_invoice_payment(square_integration, visma):
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    refund = {"id": "REF-2", "payment_id": "PAY-INV-9", "status": "COMPLETED", "amount_money": _money(100),
              "created_at": "2026-12-03T10:00:00Z"}
    with pytest.raises(WaitFor) as waiting:
        stream.transform(stream.source_object(refund=refund))
    assert waiting.value.on == ("invoice_payments", "PAY-INV-9")


def test_an_invoice_remembered_from_a_listing_is_read_whole_when_it_is_posted(square_integration, visma):
    # given: stored by square_invoice_of_payment with the invoice alone (no order, no customer)
    square = SquareReads(orders=[square_order()])
    stream = _stream(InvoicesStream, square_integration, square)
    # when
    posting = stream.transform(SourceObject(source_id="inv:0-ChBqx2Xq", payload={"invoice": square_invoice()}))
    # then
    assert (posting.extra["total"], posting.customer) == ("3063.75", "10002")
    assert square.calls == ["order ORDER-INV-1", "customer CUST-FJORD"]


def test_reading_an_invoice_takes_the_payments_its_order_names(square_integration, visma):
    # given: a posted invoice paid by card (Square's invoice.payment_made names only the invoice)
    _posted_invoice(square_integration, _stream(InvoicesStream, square_integration, SquareReads()))
    paid = square_invoice(version=5, status="PAID", updated_at=_just_now())
    square = SquareReads(invoices=[paid], orders=[square_order(tenders=[{"id": "T1", "payment_id": "PAY-INV-1",
                                                                        "type": "CARD"}])],
                         payments=[square_payment()])
    # when
    found = _stream(InvoicesStream, square_integration, square).read_one(paid["id"])
    # then: nothing new for the invoice itself; its payment recorded in invoice_payments (no rule: flagged)
    assert found is None
    record = SyncRecord.objects.get(stream="invoice_payments", source_id="PAY-INV-1")
    assert record.source_payload["invoice"]["id"] == paid["id"]
    assert record.status == RecordStatus.FLAGGED
    assert "No active square mapping rule matches invoice_payment of 3063.75 NOK" in record.reasons[0]


def test_invoice_payments_read_one_leaves_a_pos_sale_and_a_refund_of_one_alone(square_integration, visma):
    # given: a POS sale (its order is on no invoice) and a refund of it
    pos = square_payment(id="PAY-POS", order_id="ORDER-POS")
    refund = {"id": "REF-POS", "payment_id": "PAY-POS", "status": "COMPLETED", "amount_money": _money(100)}
    square = SquareReads(invoices=[square_invoice()], payments=[pos], refunds=[refund])
    stream = _stream(InvoicePaymentsStream, square_integration, square)
    # when / then
    assert stream.read_one("PAY-POS") is None
    assert stream.read_one("REF-POS") is None
    assert not SyncRecord.objects.filter(stream="invoice_payments").exists()


def test_invoice_payments_read_one_reads_a_known_payment_again_keeping_its_invoice(square_integration, visma):
    # given: recorded while its fee was missing
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    waiting = stream.source_object(payment=square_payment(processing_fee=None), invoice=square_invoice())
    SyncRecordFactory(integration=square_integration, stream="invoice_payments", source_id="PAY-INV-1",
                      status=RecordStatus.WAITING, source_payload=waiting.payload)
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads(payments=[square_payment()]))
    # when
    source = stream.read_one("PAY-INV-1")
    # then
    assert source.payload["payment"]["processing_fee"][0]["amount_money"]["amount"] == 7966
    assert source.payload["invoice"]["id"] == "inv:0-ChBqx2Xq"


def test_a_price_with_the_tax_included_goes_to_visma_as_its_net_amount(square_integration, visma):
    # given: NOK 125.00 with 25 % VAT included (Europe: "inclusive tax remains as part of the gross sale")
    line = _line("l1", "Gift card holder", "1", 12500, tax=2500)
    line["total_money"] = _money(12500)  # the inclusive tax is not added on top
    order = square_order(line_items=[line], total_money=_money(12500), total_tax_money=_money(2500),
                         total_discount_money=_money(0),
                         taxes=[{"uid": "vat25", "name": "MVA", "percentage": "25", "type": "INCLUSIVE",
                                 "scope": "LINE_ITEM"}])
    # when
    posting = _stream(InvoicesStream, square_integration, SquareReads()).transform(_invoice_source(order=order))
    # then
    assert posting.extra["lines"] == [{"description": "Gift card holder", "quantity": "1", "amount": "100.00",
                                       "vat_code": "3"}]
    assert (posting.extra["net"], posting.extra["vat"], posting.extra["total"]) == ("100.00", "25.00", "125.00")


@pytest.mark.parametrize(("changes", "reason"), [
    ({"total_service_charge_money": _money(5000)}, "its order has total_service_charge_money"),
    ({"total_tip_money": _money(1000)}, "its order has total_tip_money"),
    ({"line_items": [_line("l1", "Cup", "1", 10000, tax=2500, taxes=("vat25", "vat15"))]}, "carries 2 taxes"),
    ({"line_items": []}, "its order has no line items"),
    ({"total_money": _money(306375, "EUR")}, "is in EUR, its location Store Oslo Sentrum in NOK"),
])
def test_what_an_invoice_order_holds_that_this_integration_does_not_book_is_flagged(square_integration, visma,
                                                                                     changes, reason):
    with pytest.raises(SourceDataError) as flagged:
        _stream(InvoicesStream, square_integration, SquareReads()).transform(
            _invoice_source(order=square_order(**changes)))
    assert reason in str(flagged.value)


def test_a_customer_is_created_only_when_the_integration_allows_it_and_named_as_a_person_would(square_integration):
    # given
    stream = CustomersStream(square_integration)
    person = {"id": "CUST-P", "given_name": "Kari", "family_name": "Nordmann", "email_address": "kari@example.no"}
    # when create_customers is off
    with pytest.raises(SourceDataError) as refused:
        stream.transform(CustomersStream.source_object(person))
    assert "create_customers is off" in str(refused.value)
    # when on
    square_integration.settings = {**square_integration.settings, "create_customers": True}
    square_integration.save()
    posting = CustomersStream(square_integration).transform(CustomersStream.source_object(person))
    assert posting.extra["fields"] == {"name": "Kari Nordmann", "mainContact": {"email": "kari@example.no"}}
    with pytest.raises(SourceDataError) as nameless:
        CustomersStream(square_integration).transform(CustomersStream.source_object({"id": "CUST-X"}))
    assert "has no company, name or email" in str(nameless.value)


# --- the integration's start (begin_time) ---------------------------------------------------------------------------


def test_an_invoice_from_before_the_start_is_never_posted_by_poll_relist_or_webhook(square_integration, visma):
    # given: the integration starts 2026-11-01; an invoice created in October, paid since, and a new one
    old = square_invoice(id="inv:old", invoice_number="000007", order_id="ORDER-OLD", status="PAID",
                         created_at="2026-10-15T09:00:00Z", updated_at=_just_now())
    new = square_invoice()
    old_order = square_order(id="ORDER-OLD", tenders=[{"id": "T1", "payment_id": "PAY-OLD"}])
    square = SquareReads(invoices=[old, new], orders=[square_order(), old_order],
                         payments=[square_payment(id="PAY-OLD", order_id="ORDER-OLD")])
    # when: polled
    stream = _stream(InvoicesStream, square_integration, square)
    sources = list(stream.read_window(timezone.now(), timezone.now()))
    # then: the old one is settled as nothing booked, saying why, without reading its order; the new one posts
    assert [source.source_id for source in sources] == ["inv:old", "inv:0-ChBqx2Xq"]
    assert "order ORDER-OLD" not in square.calls
    nothing = stream.transform(sources[0])
    assert (nothing.document, nothing.extra["before_start"]) == ("nothing_booked", True)
    assert nothing.description.startswith("Square invoice 000007 (inv:old) was created on 2026-10-15T09:00:00Z, "
                                          "before this integration's start on 2026-11-01")
    # when: listed for a payment (relist): remembered (its order id known), then settled as nothing booked
    found = square_invoice_of_payment(_stream(InvoicesStream, square_integration, square),
                                      square_payment(id="PAY-OLD", order_id="ORDER-OLD", created_at=_just_now()))
    assert found["id"] == "inv:old"
    record = SyncRecord.objects.get(stream=INVOICES, source_id="inv:old")
    source_take(square_integration, stream, SourceObject(source_id="inv:old", payload=record.source_payload))
    record.refresh_from_db()
    assert (record.status, record.target_kind) == (RecordStatus.POSTED, "nothing_booked")
    # when: a webhook about it (read_one)
    _stream(InvoicesStream, square_integration, square).read_one("inv:old")
    # then: its payment flagged for a person
    paid = SyncRecord.objects.get(stream="invoice_payments", source_id="PAY-OLD")
    assert paid.status == RecordStatus.FLAGGED
    assert "pays Square invoice 000007 from before the integration's start: book it by hand" in " ".join(paid.reasons)


def test_a_refund_of_a_payment_of_an_invoice_from_before_the_start_is_flagged(square_integration, visma):
    stream = _stream(InvoicePaymentsStream, square_integration, SquareReads())
    old = square_invoice(invoice_number="000007", created_at="2026-10-15T09:00:00Z")
    refund = {"id": "REF-OLD", "payment_id": "PAY-INV-1", "status": "COMPLETED", "amount_money": _money(10000),
              "created_at": _just_now(), "updated_at": _just_now()}
    with pytest.raises(SourceDataError) as flagged:
        stream.transform(stream.source_object(refund=refund, invoice=old))
    assert "pays Square invoice 000007 from before the integration's start: book it by hand" in str(flagged.value)
