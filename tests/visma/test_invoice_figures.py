"""The one reader of a Visma customer invoice's figures: document-currency net, VAT, total and balance, whichever
currency its `…InCurrency` twins hold, and a refusal to guess when they do not fit the exchange rate."""
from decimal import Decimal

import pytest

from connectors.pipeline import SourceDataError
from connectors.visma.invoices import visma_invoice_figures, visma_invoice_twins


def _invoice(currency: str, rate: float, *, document: dict, base: dict, lines: list[tuple[float, float]],
             twins: str) -> dict:
    """A CustomerInvoiceDto: `document`/`base` figures per total, written into the twin pair as `twins` reads them
    ("document": …InCurrency is the document currency; "base": …InCurrency is the base currency)."""
    invoice = {"referenceNumber": "100777", "currencyId": currency, "exchangeRate": rate, "invoiceLines": []}
    for name in ("detailTotal", "vatTotal", "amount", "balance"):
        in_currency, plain = (document[name], base[name]) if twins == "document" else (base[name], document[name])
        invoice[f"{name}InCurrency"], invoice[name] = in_currency, plain
    for number, (document_amount, base_amount) in enumerate(lines, start=1):
        in_currency, plain = (document_amount, base_amount) if twins == "document" else (base_amount, document_amount)
        invoice["invoiceLines"].append({"lineNumber": number, "description": f"Line {number}", "amount": plain,
                                        "amountInCurrency": in_currency, "vatCode": {"id": "3"}})
    return invoice


EUR = {"detailTotal": 800.0, "vatTotal": 200.0, "amount": 1000.0, "balance": 1000.0}
EUR_IN_NOK = {"detailTotal": 9360.0, "vatTotal": 2340.0, "amount": 11700.0, "balance": 11700.0}


def test_a_base_currency_invoice_gives_its_figures_with_vat():
    # given: 800 NOK + 25 % VAT in a NOK company, both twins alike
    invoice = _invoice("NOK", 1.0, document={"detailTotal": 800.0, "vatTotal": 200.0, "amount": 1000.0,
                                             "balance": 1000.0},
                       base={"detailTotal": 800.0, "vatTotal": 200.0, "amount": 1000.0, "balance": 1000.0},
                       lines=[(800.0, 800.0)], twins="document")

    # when
    figures = visma_invoice_figures(invoice, base_currency="NOK")

    # then
    assert (figures.currency, figures.net, figures.vat, figures.total, figures.balance, figures.twins) == (
        "NOK", Decimal("800.00"), Decimal("200.00"), Decimal("1000.00"), Decimal("1000.00"), "same")
    assert [(line.description, line.net, line.vat_code) for line in figures.lines] == [
        ("Line 1", Decimal("800.00"), "3")]


@pytest.mark.parametrize("twins", ["document", "base"])
def test_a_foreign_invoice_is_read_in_its_document_currency_under_either_reading(twins):
    # given: 800 EUR + 25 % VAT at 11.70 NOK in a NOK company
    invoice = _invoice("EUR", 11.7, document=EUR, base=EUR_IN_NOK, lines=[(500.0, 5850.0), (300.0, 3510.0)],
                       twins=twins)

    # when
    figures = visma_invoice_figures(invoice, base_currency="NOK")

    # then
    assert (figures.currency, figures.net, figures.vat, figures.total, figures.balance, figures.twins) == (
        "EUR", Decimal("800.00"), Decimal("200.00"), Decimal("1000.00"), Decimal("1000.00"), twins)
    assert [line.net for line in figures.lines] == [Decimal("500.00"), Decimal("300.00")]


def test_twins_rounded_per_line_still_fit_the_rate():
    # given: three lines of 0.35 EUR at 11.57, each rounded in NOK (4.05), so no NOK total is exactly EUR × rate
    invoice = _invoice("EUR", 11.57,
                       document={"detailTotal": 1.05, "vatTotal": 0.26, "amount": 1.31, "balance": 1.31},
                       base={"detailTotal": 12.15, "vatTotal": 3.01, "amount": 15.16, "balance": 15.16},
                       lines=[(0.35, 4.05)] * 3, twins="base")

    # when
    figures = visma_invoice_figures(invoice, base_currency="NOK")

    # then
    assert (figures.total, figures.twins) == (Decimal("1.31"), "base")


def test_twins_that_do_not_fit_the_rate_are_refused_naming_the_invoice_and_fields():
    # given: the EUR figures are NOK figures divided by 10, not by the rate 11.70
    invoice = _invoice("EUR", 11.7, document=EUR,
                       base={"detailTotal": 8000.0, "vatTotal": 2000.0, "amount": 10000.0, "balance": 10000.0},
                       lines=[(800.0, 8000.0)], twins="document")

    # when
    with pytest.raises(SourceDataError) as refused:
        visma_invoice_figures(invoice, base_currency="NOK")

    # then
    assert str(refused.value) == (
        "Visma invoice 100777 in EUR (base currency NOK, exchangeRate 11.7): its amounts do not fit the rate either "
        "way (detailTotal 8000.0 / detailTotalInCurrency 800.0; vatTotal 2000.0 / vatTotalInCurrency 200.0; amount "
        "10000.0 / amountInCurrency 1000.0; balance 10000.0 / balanceInCurrency 1000.0): refusing to guess which is "
        "in EUR")


def test_a_foreign_invoice_without_an_exchange_rate_is_refused():
    # given
    invoice = _invoice("EUR", 0, document=EUR, base=EUR_IN_NOK, lines=[], twins="document")

    # when / then
    with pytest.raises(SourceDataError, match="Visma invoice 100777 is in EUR .base currency NOK. with exchangeRate 0"):
        visma_invoice_twins(invoice, base_currency="NOK")


def test_a_base_currency_invoice_whose_twins_differ_is_refused():
    # given: a NOK invoice in a NOK company whose amount twins disagree
    invoice = _invoice("NOK", 1.0, document=EUR, base=EUR_IN_NOK, lines=[], twins="document")

    # when / then
    with pytest.raises(SourceDataError, match="is in the base currency NOK, but its twins differ .detailTotal 9360.0 "
                                              "/ detailTotalInCurrency 800.0"):
        visma_invoice_figures(invoice, base_currency="NOK")


def test_a_total_that_is_not_lines_plus_vat_is_refused():
    # given: amount holds the net (the old misreading) although there is VAT
    invoice = _invoice("NOK", 1.0, document={**EUR, "amount": 800.0, "balance": 800.0},
                       base={**EUR, "amount": 800.0, "balance": 800.0}, lines=[(800.0, 800.0)], twins="document")

    # when / then
    with pytest.raises(SourceDataError, match=r"amount 800.00 NOK is not detailTotal 800.00 \+ vatTotal 200.00"):
        visma_invoice_figures(invoice, base_currency="NOK")


def test_a_jpy_invoice_is_read_in_whole_yen():
    # given: 8000 JPY + 25 % in a NOK company at 0.07 NOK per yen
    invoice = _invoice("JPY", 0.07, document={"detailTotal": 8000.0, "vatTotal": 2000.0, "amount": 10000.0,
                                              "balance": 10000.0},
                       base={"detailTotal": 560.0, "vatTotal": 140.0, "amount": 700.0, "balance": 700.0},
                       lines=[(8000.0, 560.0)], twins="base")

    # when
    figures = visma_invoice_figures(invoice, base_currency="NOK")

    # then
    assert (figures.net, figures.vat, figures.total) == (Decimal("8000"), Decimal("2000"), Decimal("10000"))
