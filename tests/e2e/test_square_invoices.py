"""Square invoices → Visma over real HTTP, both emulators live: a published Square invoice becomes one Visma customer
invoice (its order's lines, discounts and VAT codes, Square's total and VAT, the store's account and cost center, the
customer by reference_id), its card payment one customer payment applied to it with the fee journal, a refund a
credit note; by poll and by webhook, each once; canceled after posting → flagged, nothing sent; an unknown customer
flagged, or created first when the integration allows."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from audit.models import RecordStatus, SyncRecord
from connectors.services import inbox_process, integration_save
from mappings.models import ExternalReference, VatCodeMapping
from sandbox import square_api
from sandbox.models import SquareRequest, VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.square_webhooks import square_events_deliver
from tests.e2e.test_square_payments import SquareWorld, cost_center, journals_with, visma_writes
from tests.paypal.world import live_connections_close

pytestmark = pytest.mark.django_db(transaction=True)


class InvoiceWorld(SquareWorld):
    """The retailer's world plus what invoices need: Square's 25 % and 15 % VAT mapped to Visma's codes 3 and 31,
    a rule for invoices at Bergen (sales in stores 3020, cost center 320) and for their payments."""

    def __init__(self, url: str):
        super().__init__(url)
        for percent, code in (("25", "3"), ("15", "31")):
            VatCodeMapping.objects.create(tenant=self.tenant, system="square", percent=Decimal(percent), vat_code=code)
        self.rule("Square invoices, Bergen", priority=10, transaction_type="invoice",
                  location=self.locations["Bergen"], gl_account="3020", dimensions={"1": "320"})
        self.rule("Square invoice payments", priority=10, transaction_type="invoice_payment", gl_account="1510",
                  dimensions={"1": "320"})
        self.rule("Square invoice refunds", priority=10, transaction_type="refund", gl_account="1510",
                  location=self.locations["Bergen"], dimensions={"1": "320"})
        self.customer = square_api.square_customer_create(self.merchant, company_name="Fjordline Sport AS",
                                                          email_address="post@fjordline-sport.example",
                                                          reference_id="10002")

    def order(self, store: str = "Bergen") -> dict:
        """Two cups and a saucer at 25 % (a 10 % line discount on the cups), 1.5 kg of coffee at 15 %, and NOK 125
        off the whole order, which Square apportions over the lines by their gross (89.29, 22.32, 13.39):
        2475.00 net, 590.09 VAT, 3065.09 in all."""
        return square_api.square_order_create(
            self.merchant, self.locations[store],
            lines=[{"name": "Espresso cup", "quantity": "2", "base_price": 100000, "taxes": ["MVA"],
                    "discounts": ["Cups 10 %"]},
                   {"name": "Saucer", "quantity": "1", "base_price": 50000, "taxes": ["MVA"]},
                   {"name": "Coffee beans", "quantity": "1.5", "base_price": 20000, "taxes": ["MVA mat"]}],
            taxes=[{"name": "MVA", "percentage": "25", "scope": "LINE_ITEM"},
                   {"name": "MVA mat", "percentage": "15", "scope": "LINE_ITEM"}],
            discounts=[{"name": "Cups 10 %", "percentage": "10", "scope": "LINE_ITEM"},
                       {"name": "Welcome", "amount": 12500, "scope": "ORDER"}])

    def invoice(self, *, customer: dict | None = None, store: str = "Bergen") -> dict:
        order = self.order(store)
        return square_api.square_invoice_create(self.merchant, order["id"], (customer or self.customer)["id"],
                                                due_date="2026-12-31", title="Cups", publish=True)

    def deliver(self) -> int:
        square_events_deliver(self.merchant)
        return inbox_process()


def visma_documents(collection: str) -> list[dict]:
    return [document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection=collection).order_by("id")]


def customer_invoices_with(marker: str) -> list[dict]:
    return [body for body in visma_documents("customer_invoice") if body.get("externalReference") == marker]


def invoice_lines(invoice: dict) -> list[tuple]:
    return [(line["description"], f"{Decimal(str(line['amountInCurrency'])):.2f}", line["account"]["number"],
             cost_center(line), (line.get("vatCode") or {}).get("id")) for line in invoice["invoiceLines"]]


@pytest.fixture
def world(live_server):
    yield InvoiceWorld(live_server.url)
    live_connections_close()


def test_a_square_invoice_becomes_one_visma_customer_invoice_with_total_vat_account_and_cost_center(world):
    # given
    invoice = world.invoice()
    # when: polled twice
    first, second = world.poll("invoices"), world.poll("invoices")
    # then
    assert (first.fetched, first.posted, second.posted) == (1, 1, 0)
    record = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"])
    [visma] = customer_invoices_with(world.marker(invoice["id"], "invoices"))
    assert (record.status, record.target_id) == (RecordStatus.POSTED, visma["referenceNumber"])
    assert (visma["customer"]["number"], visma["currencyId"], visma["customerRefNumber"]) == (
        "10002", "NOK", invoice["invoice_number"])
    assert invoice["id"] in visma["invoiceText"]
    # the cups: 2000.00 less 200.00 (10 %) less their 89.29 share of the NOK 125 welcome; the others their shares
    assert invoice_lines(visma) == [
        ("Espresso cup (discount 289.29 NOK)", "1710.71", "3020", "320", "3"),
        ("Saucer (discount 22.32 NOK)", "477.68", "3020", "320", "3"),
        ("Coffee beans (discount 13.39 NOK)", "286.61", "3020", "320", "31")]
    # Square's order: 2475.00 net + 590.09 VAT = 3065.09; Visma computes the same
    assert (Decimal(str(visma["vatTotalInCurrency"])), Decimal(str(visma["amountInCurrency"]))) == (
        Decimal("590.09"), Decimal("3065.09"))


def test_the_paid_invoice_becomes_one_customer_payment_with_its_fee_and_the_sale_is_not_booked_twice(world):
    # given: the invoice posted, then paid by card (fee NOK 79.66 reported at once)
    invoice = world.invoice()
    world.poll("invoices")
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    # when: the payments poll sees the payment, the invoices poll sees the invoice paid; each twice
    for _ in range(2):
        world.poll("payments")
        world.poll("invoices")
    # then: the payments stream leaves it to the invoice payments stream, which posts one customer payment
    assert SyncRecord.objects.get(stream="payments", source_id=payment["id"]).status == RecordStatus.POSTED
    assert journals_with(world.marker(payment["id"])) == []
    record = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
    assert (record.status, record.target_kind) == (RecordStatus.POSTED, "customer_payment")
    number = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"]).target_id
    [visma_payment] = [body for body in visma_documents("customer_payment")
                       if body.get("paymentRef") == world.marker(payment["id"], "invoice_payments")]
    assert (visma_payment["customer"]["number"], Decimal(str(visma_payment["paymentAmount"]))) == (
        "10002", Decimal("3065.09"))
    assert [(line["refNbr"], Decimal(str(line["amountPaid"]))) for line in visma_payment["paymentLines"]] == [
        (number, Decimal("3065.09"))]
    assert Decimal(str(VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_invoice",
                                                 key=number).body["balanceInCurrency"])) == Decimal("0.00")
    [fee_journal] = [body for body in visma_documents("journal")
                     if "79.66" in str(body) and payment["id"] in str(body)]
    assert sorted((line["accountNumber"], f"{Decimal(str(line['debitAmountInCurrency'])):.2f}",
                   f"{Decimal(str(line['creditAmountInCurrency'])):.2f}")
                  for line in fee_journal["journalTransactionLines"]) == [("1582", "0.00", "79.66"),
                                                                         ("7770", "79.66", "0.00")]
    assert SyncRecord.objects.filter(stream="invoice_payments").count() == 1


def test_by_webhook_the_invoice_its_payment_and_a_refund_each_land_once_also_delivered_twice_in_reverse(world):
    # given: published, paid, a tenth refunded with part of the fee; every event sent twice, newest first
    invoice = world.invoice()
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    refund = square_api.square_invoice_refund(world.merchant, invoice["id"], 30651, fee_returned=797)
    # when
    square_events_deliver(world.merchant, duplicate=True, reverse=True)
    inbox_process()
    # then
    statuses = dict(SyncRecord.objects.filter(integration=world.integration).values_list("source_id", "status"))
    assert statuses[invoice["id"]] == statuses[payment["id"]] == RecordStatus.POSTED
    assert len(customer_invoices_with(world.marker(invoice["id"], "invoices"))) == 1
    paid = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
    assert paid.target_kind == "customer_payment"
    credited = SyncRecord.objects.get(stream="invoice_payments", source_id=refund["id"])
    assert (credited.status, credited.target_kind) == (RecordStatus.POSTED, "credit_note")
    [note] = visma_documents("customer_credit_note")
    assert Decimal(str(note["amountInCurrency"])) == Decimal("306.51")
    assert SyncRecord.objects.filter(stream="invoice_payments").count() == 2
    # every Square request of the invoice streams fit api.json and named the Square-Version
    assert {"/v2/invoices", "/v2/customers", "/v2/orders", "/v2/payments", "/v2/refunds"} <= {
        "/".join(request.path.split("/")[:3]) for request in SquareRequest.objects.all()}
    assert square_api.square_requests_unfit() == []


def test_an_invoice_canceled_after_posting_is_flagged_for_a_person_and_nothing_more_is_sent(world):
    # given
    invoice = world.invoice()
    world.poll("invoices")
    writes = visma_writes()
    square_api.square_invoice_cancel(world.merchant, invoice["id"])
    # when
    world.deliver()
    world.poll("invoices")
    # then
    [notice] = SyncRecord.objects.filter(stream="invoices", status=RecordStatus.FLAGGED)
    assert notice.source_id.startswith(f"{invoice['id']}:v")
    assert "was canceled in Square: a credit note is a decision for a person" in notice.reasons[0]
    assert visma_writes() == writes
    assert len(customer_invoices_with(world.marker(invoice["id"], "invoices"))) == 1


def test_an_unknown_customer_is_flagged_and_nothing_is_sent_to_visma(world):
    # given: a customer with no reference_id and no mapping
    stranger = square_api.square_customer_create(world.merchant, company_name="Ny Kafé AS")
    invoice = world.invoice(customer=stranger)
    writes = visma_writes()
    # when
    world.poll("invoices")
    # then
    record = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"])
    assert record.status == RecordStatus.FLAGGED
    assert f"unknown Square customer: Square customer Ny Kafé AS ({stranger['id']}) is no Visma customer" in \
        record.reasons[0]
    assert visma_writes() == writes


def test_with_create_customers_the_customer_is_created_once_then_the_invoice(world):
    # given
    world.integration.settings = {**world.integration.settings, "create_customers": True}
    integration_save(world.integration)
    stranger = square_api.square_customer_create(world.merchant, company_name="Ny Kafé AS",
                                                 email_address="hei@nykafe.example")
    invoices = [world.invoice(customer=stranger), world.invoice(customer=stranger)]
    # when
    world.poll("invoices")
    # then: one Visma customer, linked; both invoices for it
    created = SyncRecord.objects.get(stream="customers", source_id=stranger["id"])
    assert created.status == RecordStatus.POSTED
    customer = VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer",
                                         key=created.target_id).body
    assert customer["name"] == "Ny Kafé AS"
    assert ExternalReference.objects.get(system="square", external_kind="customer",
                                         external_id=stranger["id"]).visma_id == created.target_id
    for invoice in invoices:
        record = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"])
        assert record.status == RecordStatus.POSTED, record.reasons
        [visma] = customer_invoices_with(world.marker(invoice["id"], "invoices"))
        assert visma["customer"]["number"] == created.target_id


def test_an_invoice_payment_whose_fee_comes_later_waits_then_posts_when_its_stream_reads_it_again(world):
    # given: posted invoice; paid by card, Square's fee not reported yet
    invoice = world.invoice()
    world.poll("invoices")
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee_later=True)
    world.poll("invoices")
    record = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
    assert (record.status, record.waiting_on_stream) == (RecordStatus.WAITING, "")
    # when: the fee is reported (payment.updated goes to the payments stream), then invoice_payments polls
    square_api.square_payment_fee_add(world.merchant, payment["id"], 7966)
    run = world.poll("invoice_payments")
    # then
    record.refresh_from_db()
    assert (run.fetched, record.status, record.target_kind) == (1, RecordStatus.POSTED, "customer_payment")
    assert record.source_payload["payment"]["processing_fee"][0]["amount_money"]["amount"] == 7966


def test_an_invoice_first_met_through_its_payment_is_posted_with_that_payment_at_the_next_invoices_poll(world):
    # given: published and paid before any invoices poll; the payments poll meets the payment first
    invoice = world.invoice()
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    world.poll("payments")
    remembered = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"])
    assert (remembered.status, "order" in remembered.source_payload) == (RecordStatus.RECEIVED, False)
    assert journals_with(world.marker(payment["id"])) == []
    # when
    world.poll("invoices")
    # then: the invoice read whole and posted, its payment taken and posted; nothing more on the next poll
    remembered.refresh_from_db()
    paid = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
    assert (remembered.status, paid.status, paid.target_kind) == (RecordStatus.POSTED, RecordStatus.POSTED,
                                                                  "customer_payment")
    assert world.poll("invoices").posted == 0
    assert len(customer_invoices_with(world.marker(invoice["id"], "invoices"))) == 1


def test_a_refund_of_a_paid_invoice_found_by_the_invoices_poll_becomes_one_credit_note(world):
    # given: invoice and payment posted by polls; then a tenth refunded, 7.97 of the fee returned
    invoice = world.invoice()
    world.poll("invoices")
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    world.poll("invoices")
    refund = square_api.square_invoice_refund(world.merchant, invoice["id"], 30651, fee_returned=797)
    # when: polled twice (no webhook)
    world.poll("invoices")
    world.poll("invoices")
    # then
    credited = SyncRecord.objects.get(stream="invoice_payments", source_id=refund["id"])
    assert (credited.status, credited.target_kind) == (RecordStatus.POSTED, "credit_note"), credited.reasons
    [note] = visma_documents("customer_credit_note")
    assert (Decimal(str(note["amountInCurrency"])), note["customer"]["number"]) == (Decimal("306.51"), "10002")
    assert SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"]).status == RecordStatus.POSTED


def _invoice_calls(merchant) -> list[str]:
    return [f"{row.method} {row.path}" for row in SquareRequest.objects.filter(merchant=merchant, path__contains=
                                                                                "/v2/invoices").order_by("pk")]


def test_finding_the_invoice_of_a_pos_payment_costs_one_small_search_not_a_listing_of_the_store(world):
    """The cost of "which invoice does this payment pay" for plain POS sales (every Square payment names an order).
    Figures in docs/square-invoices.md: before SearchInvoices, each POS payment walked ListInvoices whole (here 12
    invoices, 5 a page: 3 calls) once for payment.created and once more for the fee's payment.updated."""
    # given: twelve invoices published an hour ago at Bergen, the invoices poll listed them since
    world.integration.settings = {**world.integration.settings, "begin_time": "2026-01-01T00:00:00+00:00"}
    world.integration.save()
    square_api.square_clock_advance(world.merchant, timedelta(hours=-1))
    for _ in range(12):
        world.invoice()
    square_api.square_clock_advance(world.merchant, timedelta(hours=1))
    world.poll("invoices")
    square_events_deliver(world.merchant)  # the invoices' own events, out of the way
    inbox_process()
    # when: four POS sales at Bergen, each with its fee reported a little later (payment.created, payment.updated)
    calls = []
    for amount in (10000, 20000, 30000, 40000):
        before = len(_invoice_calls(world.merchant))
        payment = world.payment("Bergen", amount, fee_later=True)
        world.deliver()
        square_api.square_payment_fee_add(world.merchant, payment["id"])
        world.deliver()
        calls.append(_invoice_calls(world.merchant)[before:])
    # then: one SearchInvoices page per lookup, never a ListInvoices walk
    assert [len(made) for made in calls] == [2, 2, 2, 2]
    assert {call for made in calls for call in made} == {"POST /v2/invoices/search"}
    assert SyncRecord.objects.filter(stream="payments", status=RecordStatus.POSTED).count() == 4


def test_a_fee_square_adjusts_on_a_posted_invoice_payment_becomes_one_fee_journal(world):
    # given: the invoice and its card payment posted (fee NOK 79.66 with the customer payment)
    invoice = world.invoice()
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    world.deliver()
    assert SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"]).status == RecordStatus.POSTED
    # when: a minute later Square adjusts the fee by NOK 5.00 (payment.updated), delivered twice
    square_api.square_clock_advance(world.merchant, timedelta(minutes=1))
    square_api.square_payment_fee_add(world.merchant, payment["id"], 500, fee_type="ADJUSTMENT")
    square_events_deliver(world.merchant, duplicate=True)
    inbox_process()
    # then: one fee journal of the adjustment: fee 7770 against clearing 1582, the invoice payment's cost center
    [part] = SyncRecord.objects.filter(stream="invoice_payments", source_id__startswith=f"{payment['id']}:fee:")
    assert part.status == RecordStatus.POSTED, part.reasons
    [journal] = [body for body in visma_documents("journal") if "fee adjustment" in str(body)]
    assert sorted((line["accountNumber"], f"{Decimal(str(line['debitAmountInCurrency'])):.2f}",
                   f"{Decimal(str(line['creditAmountInCurrency'])):.2f}", cost_center(line))
                  for line in journal["journalTransactionLines"]) == [("1582", "0.00", "5.00", "320"),
                                                                     ("7770", "5.00", "0.00", "320")]


def test_an_invoice_from_before_the_integrations_start_is_never_posted_and_its_payment_is_flagged(world):
    # given: an invoice issued yesterday (before the integration was created), paid today
    square_api.square_clock_advance(world.merchant, timedelta(days=-1))
    invoice = world.invoice()
    square_api.square_clock_advance(world.merchant, timedelta(days=1))
    payment = square_api.square_invoice_pay(world.merchant, invoice["id"], fee=7966, fee_later=False)
    # when: polled (invoices, payments) and its events delivered
    world.poll("invoices")
    world.poll("payments")
    world.deliver()
    # then: the invoice settled as nothing booked, saying why; its payment flagged for a person; Visma gets nothing
    record = SyncRecord.objects.get(stream="invoices", source_id=invoice["id"])
    assert (record.status, record.target_kind) == (RecordStatus.POSTED, "nothing_booked")
    paid = SyncRecord.objects.get(stream="invoice_payments", source_id=payment["id"])
    assert paid.status == RecordStatus.FLAGGED
    assert "from before the integration's start: book it by hand" in " ".join(paid.reasons)
    assert customer_invoices_with(world.marker(invoice["id"], "invoices")) == []
    assert visma_documents("customer_payment") == []
    assert journals_with(world.marker(payment["id"])) == []
