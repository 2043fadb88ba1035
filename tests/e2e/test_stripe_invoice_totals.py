"""Visma → Stripe with VAT, over real HTTP, both emulators live: a Visma invoice's net, VAT and total (VAT computed by
the Visma emulator per VAT code) become a Stripe invoice whose subtotal, tax (a real TaxRate per Visma VAT code) and
total are the same, in the document currency whichever reading of the `…InCurrency` twins Visma renders; JPY in
whole yen; twins that do not fit the rate, or VAT Stripe would compute differently, are flagged with nothing sent."""
from decimal import Decimal

import pytest
import requests

from connectors.pipeline import stream_poll
from connectors.services import integration_save
from connectors.visma.client import VismaClient
from mappings.reference import reference_data_refresh, tenant_base_currency
from sandbox.models import StripeObject, VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.visma_erp import customer_create, customer_invoice_create
from tests.e2e.test_stripe_payments import world  # noqa: F401


def _control(world, switch: str, **data) -> dict:
    answer = requests.post(f"{world.url}/sandbox/visma/_control/{switch}", json=data, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _visma_invoice(number: str, customer: str, currency: str, lines: list[tuple[str, str, str | None]]):
    """A released Visma invoice marked for Stripe; each line (text, net unit price, VAT code)."""
    document = customer_invoice_create(VISMA_SANDBOX_COMPANY_ID, {
        "overrideNumberSeries": {"value": True}, "referenceNumber": {"value": number},
        "customerNumber": {"value": customer}, "currencyId": {"value": currency},
        "customerRefNumber": {"value": "STRIPE"}, "invoiceText": {"value": f"Order {number}"},
        "documentDate": {"value": "2026-05-04T00:00:00"}, "documentDueDate": {"value": "2031-06-03T00:00:00"},
        "invoiceLines": [{"operation": "Insert", "accountNumber": {"value": "3000"}, "description": {"value": text},
                          "quantity": {"value": 1}, "unitPriceInCurrency": {"value": float(amount)},
                          **({"vatCodeId": {"value": vat_code}} if vat_code else {})}
                         for text, amount, vat_code in lines],
    })
    document.body["status"] = "Open"
    document.save(update_fields=["body"])
    return document


@pytest.fixture
def nok_company(world):  # noqa: F811
    """The Visma company keeps its books in NOK; the Stripe account collects NOK, EUR and JPY."""
    world.url = world.integration.visma_connection.base_url.removesuffix("/sandbox/visma")
    _control(world, "base-currency", currency="NOK")
    reference_data_refresh(world.tenant, kinds=["currencies"])
    world.integration.settings = {**world.integration.settings, "collect_field": "customerRefNumber",
                                  "collect_currencies": ["NOK", "EUR", "JPY"], "create_customers": True}
    integration_save(world.integration)
    return world


def _stripe(object_type):
    return [row.body for row in StripeObject.objects.filter(object_type=object_type).order_by("pk")]


def _billed(invoice: dict) -> tuple:
    """What the Stripe invoice bills: currency, subtotal, tax (by tax rate), total, amount due."""
    return (invoice["currency"], invoice["subtotal"],
            [(tax["amount"], tax["tax_rate_details"]["tax_rate"]) for tax in invoice["total_taxes"]],
            invoice["total"], invoice["amount_due"])


def test_a_nok_invoice_with_vat_becomes_a_stripe_invoice_with_subtotal_tax_and_total_created_once(nok_company):
    # given: 800 NOK + 25 % VAT (code 3) to Fjordline Sport AS, in a NOK company
    _visma_invoice("300001", "10002", "NOK", [("Repair service", "800.00", "3")])

    # when: polled twice (the second run must not bill again)
    first = stream_poll(nok_company.integration, "visma_invoices")
    second = stream_poll(nok_company.integration, "visma_invoices")

    # then
    assert tenant_base_currency(nok_company.tenant) == "NOK"
    record = nok_company.record("visma_invoices", "300001")
    assert (first.posted, second.posted, record.status) == (1, 0, "posted")
    [invoice] = _stripe("invoice")
    [tax_rate] = _stripe("tax_rate")
    assert record.target_id == invoice["id"]
    assert _billed(invoice) == ("nok", 80000, [(20000, tax_rate["id"])], 100000, 100000)
    assert (tax_rate["percentage"], tax_rate["inclusive"], tax_rate["metadata"]) == (25.0, False,
                                                                                     {"visma_vat_code": "3"})
    [line] = invoice["lines"]["data"]
    assert (line["description"], line["amount"], [tax["amount"] for tax in line["taxes"]]) == (
        "Repair service", 80000, [20000])
    assert [line["description"] for line in invoice["lines"]["data"]] != ["VAT"]
    [customer] = _stripe("customer")
    assert (invoice["customer"], customer["metadata"], invoice["status"]) == (
        customer["id"], {"visma_customer": "10002"}, "open")
    assert invoice["due_date"] == 1938211200  # 2031-06-03T00:00:00Z, Visma's documentDueDate
    assert len(_stripe("invoiceitem")) == 1


def test_a_second_invoice_with_the_same_vat_code_reuses_the_stripe_tax_rate(nok_company):
    # given
    _visma_invoice("300002", "10002", "NOK", [("Repair service", "800.00", "3")])
    _visma_invoice("300003", "10002", "NOK", [("Tent", "1000.00", "3"), ("Map", "100.00", "33")])

    # when
    stream_poll(nok_company.integration, "visma_invoices")

    # then: one rate per Visma VAT code, 25 % for code 3 and 12 % for code 33
    rates = {rate["metadata"]["visma_vat_code"]: rate for rate in _stripe("tax_rate")}
    assert {code: rate["percentage"] for code, rate in rates.items()} == {"3": 25.0, "33": 12.0}
    second = next(invoice for invoice in _stripe("invoice") if invoice["metadata"]["visma_invoice"] == "300003")
    assert _billed(second) == ("nok", 110000, [(25000, rates["3"]["id"]), (1200, rates["33"]["id"])], 136200,
                               136200)


def _visma_invoice_read(world, number: str) -> dict:
    client = VismaClient(world.integration.visma_connection)
    try:
        return client.get_one(f"/v1/customerinvoice/{number}")
    finally:
        client.close()


@pytest.mark.parametrize("twins", ["document", "base"])
def test_a_eur_invoice_in_a_nok_company_is_billed_in_eur_under_either_reading_of_the_twins(nok_company, twins):
    # given: 800 EUR + 25 % to Helsinki Trail Oy in the NOK company, Visma rendering the twins one way or the other
    _control(nok_company, "amount-twins", mode=twins)
    _visma_invoice("300010", "10004", "EUR", [("Tent", "500.00", "3"), ("Stove", "300.00", "3")])
    rendered = _visma_invoice_read(nok_company, "300010")
    eur_field = "amountInCurrency" if twins == "document" else "amount"
    nok_field = "amount" if twins == "document" else "amountInCurrency"
    assert (rendered[eur_field], rendered[nok_field]) == (Decimal("1000.0"), Decimal("11734.7"))

    # when
    stream_poll(nok_company.integration, "visma_invoices")

    # then
    assert nok_company.record("visma_invoices", "300010").status == "posted"
    [invoice] = _stripe("invoice")
    [tax_rate] = _stripe("tax_rate")
    assert _billed(invoice) == ("eur", 80000, [(20000, tax_rate["id"])], 100000, 100000)
    assert [(line["amount"], line["taxes"][0]["amount"]) for line in invoice["lines"]["data"]] == [
        (50000, 12500), (30000, 7500)]


def test_a_jpy_invoice_is_billed_in_whole_yen(nok_company):
    # given: a customer billed in yen; 8000 JPY + 25 %
    customer_create(VISMA_SANDBOX_COMPANY_ID, {"number": {"value": "10901"}, "name": {"value": "Kyoto Outdoor KK"},
                                               "currencyId": {"value": "JPY"}})
    _visma_invoice("300020", "10901", "JPY", [("Tent", "8000", "3")])

    # when
    stream_poll(nok_company.integration, "visma_invoices")

    # then
    assert nok_company.record("visma_invoices", "300020").status == "posted"
    [invoice] = _stripe("invoice")
    [tax_rate] = _stripe("tax_rate")
    assert _billed(invoice) == ("jpy", 8000, [(2000, tax_rate["id"])], 10000, 10000)


def test_a_visma_invoice_whose_twins_do_not_fit_its_rate_is_flagged_and_nothing_is_sent(nok_company):
    # given: the EUR invoice's exchange rate says 5 NOK per euro, its NOK figures say 11.73
    document = _visma_invoice("300030", "10004", "EUR", [("Tent", "800.00", "3")])
    document.body["exchangeRate"] = 5.0
    document.save(update_fields=["body"])

    # when
    run = stream_poll(nok_company.integration, "visma_invoices")

    # then
    record = nok_company.record("visma_invoices", "300030")
    assert (run.flagged, record.status) == (1, "flagged")
    assert record.reasons == [
        "visma_invoices 300030: Visma invoice 300030 in EUR (base currency NOK, exchangeRate 5.0): its amounts do not "
        "fit the rate either way (detailTotal 9387.76 / detailTotalInCurrency 800.0; vatTotal 2346.94 / "
        "vatTotalInCurrency 200.0; amount 11734.7 / amountInCurrency 1000.0; balance 11734.7 / balanceInCurrency "
        "1000.0): refusing to guess which is in EUR"]
    assert (_stripe("invoice"), _stripe("customer"), _stripe("tax_rate")) == ([], [], [])


def test_vat_stripe_would_round_differently_from_visma_is_flagged_naming_both_before_anything_is_sent(nok_company):
    # given: three lines of 0.35 EUR at 25 %: Visma's VAT on the code's total is 0.26, Stripe's per line 3 × 0.09
    _visma_invoice("300040", "10004", "EUR", [("Peg", "0.35", "3")] * 3)

    # when
    stream_poll(nok_company.integration, "visma_invoices")

    # then
    record = nok_company.record("visma_invoices", "300040")
    assert record.status == "flagged"
    assert record.reasons == [
        "visma_invoices 300040: Visma invoice 300040: Stripe would bill VAT 0.27 EUR (its tax rates on each line), "
        "Visma's vatTotal is 0.26: not sent, the totals would differ"]
    assert (_stripe("invoice"), _stripe("tax_rate")) == ([], [])
    assert VismaDocument.objects.get(collection="customer_invoice", key="300040").body["vatTotalInCurrency"] == 0.26
