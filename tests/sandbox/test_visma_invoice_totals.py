"""The Visma emulator's customer invoice totals as CustomerInvoiceDto defines them: VAT per VAT code from /v1/vat,
amount = detailTotal + vatTotal, both currencies, the twins rendered in either reading, the base currency switchable
and named by /v1/currency."""
import pytest

from tests.sandbox.conftest import value

pytestmark = pytest.mark.django_db


def _line(text: str, price: float, vat_code: str | None = None) -> dict:
    line = {"operation": "Insert", "accountNumber": value("3000"), "description": value(text),
            "quantity": value(1), "unitPriceInCurrency": value(price)}
    if vat_code:
        line["vatCodeId"] = value(vat_code)
    return line


def _invoice(visma, currency: str, lines: list[dict], **fields) -> dict:
    response = visma.post("/v2/customerinvoice", {"customerNumber": value("10002"), "currencyId": value(currency),
                                                  "documentDate": value("2026-05-04T00:00:00"),
                                                  "invoiceLines": lines, **fields})
    assert response.status_code == 201, response.content
    return visma.get(f"/v1/customerinvoice/{response['Location'].rsplit('/', 1)[1]}").json()


def _control(visma, switch: str, **data) -> None:
    response = visma.client.post(f"/sandbox/visma/_control/{switch}", data, content_type="application/json")
    assert response.status_code == 200, response.content


def test_vat_is_computed_per_vat_code_and_added_to_the_lines_total(visma):
    # given: the VAT codes as /v1/vat lists them
    codes = {vat["vatId"]: vat["schedules"][0]["vatRate"] for vat in visma.get("/v1/vat").json()}
    assert codes == {"3": 25.0, "31": 15.0, "33": 12.0, "5": 0.0}

    # when: three lines at 25 % (0.35 each: VAT on the code's total 1.05, not per line) and one at 12 %
    invoice = _invoice(visma, "SEK", [_line("Peg", 0.35, "3"), _line("Peg", 0.35, "3"), _line("Peg", 0.35, "3"),
                                      _line("Map", 100.0, "33"), _line("Gift card", 50.0)])

    # then
    assert (invoice["detailTotalInCurrency"], invoice["vatTotalInCurrency"], invoice["amountInCurrency"],
            invoice["balanceInCurrency"]) == (151.05, 12.26, 163.31, 163.31)
    assert (invoice["detailTotal"], invoice["vatTotal"], invoice["amount"]) == (151.05, 12.26, 163.31)
    assert [line["vatCode"]["id"] if line.get("vatCode") else None for line in invoice["invoiceLines"]] == [
        "3", "3", "3", "33", None]


def test_an_unknown_vat_code_is_refused(visma):
    # when
    response = visma.post("/v2/customerinvoice", {"customerNumber": value("10002"), "currencyId": value("SEK"),
                                                  "invoiceLines": [_line("Tent", 100.0, "99")]})

    # then
    assert response.status_code == 400
    assert "invoiceLines[0].vatCodeId: VAT '99' cannot be found in the system." in response.content.decode()


@pytest.mark.parametrize("mode, eur_field, nok_field", [("document", "amountInCurrency", "amount"),
                                                       ("base", "amount", "amountInCurrency")])
def test_the_twins_are_rendered_in_the_switched_reading(visma, mode, eur_field, nok_field):
    # given: a NOK company, a EUR invoice at 11.70
    _control(visma, "base-currency", currency="NOK")
    _control(visma, "amount-twins", mode=mode)

    # when
    invoice = _invoice(visma, "EUR", [_line("Tent", 800.0, "3")], exchangeRate=value(11.7))

    # then
    assert (invoice[eur_field], invoice[nok_field]) == (1000.0, 11700.0)
    assert (invoice[eur_field.replace("amount", "vatTotal")], invoice[nok_field.replace("amount", "vatTotal")]) == (
        200.0, 2340.0)
    [line] = invoice["invoiceLines"]
    assert (line[eur_field], line[nok_field]) == (800.0, 9360.0)


def test_the_base_currency_is_the_one_currency_flagged_so(visma):
    # given
    _control(visma, "base-currency", currency="NOK")

    # when
    currencies = visma.get("/v1/currency").json()

    # then
    assert [currency["id"] for currency in currencies if currency["isBaseCurrency"]] == ["NOK"]
    assert visma.get("/v1/currency/JPY").json()["decimalPrecision"] == 0
