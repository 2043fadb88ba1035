"""The emulator's financial calendar (GET /v1/financialPeriod, closed periods refused as Visma refuses them) and
releases: a customer payment settles its invoice when it is released, not when it is created."""
import pytest

from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.visma_periods import CalendarShape, financial_period_close, financial_periods_set
from tests.sandbox.conftest import journal_body, value

pytestmark = pytest.mark.django_db


def _payment(invoice: str, amount: float, **fields) -> dict:
    return {"customer": value("10001"), "paymentAmount": value(amount), "applicationDate": value("2026-03-10T00:00:00"),
            "paymentLines": [{"operation": "Insert", "refNbr": value(invoice), "amountPaid": value(amount)}],
            **{name: value(field) for name, field in fields.items()}}


def test_the_calendar_is_served_as_financialperioddto_rows_after_greaterthanvalue(visma):
    # given: a financial year from July (named after the year it ends in), closed in its eighth period
    financial_periods_set(VISMA_SANDBOX_COMPANY_ID, CalendarShape(first_month=7), [2026], closed={"202608"})

    # when
    rows = visma.get("/v1/financialPeriod", {"greaterThanValue": "202606"}).json()

    # then
    assert [row["period"] for row in rows] == [f"2026{number:02d}" for number in range(7, 13)]
    assert rows[0] == {
        "year": 2026, "period": "202607", "startDate": "2026-01-01T00:00:00", "endDate": "2026-01-31T00:00:00",
        "description": "January", "active": True, "closedInSupplierLedger": False, "closedInCustomerLedger": False,
        "closedInInventoryManagement": False, "closedInGeneralLedger": False, "closedInCashManagement": False,
        "closedInFixedAssets": False,
    }
    assert rows[1]["closedInGeneralLedger"] is True
    assert visma.get("/v1/financialPeriod/202701").status_code == 404


def test_a_journal_dated_in_a_closed_period_is_refused_naming_the_period_and_ledger(visma):
    # given
    financial_period_close(VISMA_SANDBOX_COMPANY_ID, "202603", ledgers=["GL"])

    # when
    response = visma.post("/v2/journaltransaction", journal_body([("1920", 100, 0, []), ("3000", 0, 100, [])]))

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        "financialPeriod: The 03-2026 financial period of the company is closed in General ledger.")


def test_a_document_takes_its_period_from_the_company_calendar_not_the_calendar_month(visma):
    # given
    financial_periods_set(VISMA_SANDBOX_COMPANY_ID, CalendarShape(first_month=7), [2026])

    # when
    created = visma.post("/v2/journaltransaction", journal_body([("1920", 100, 0, []), ("3000", 0, 100, [])]))

    # then
    journal = visma.get(created["Location"].split("/sandbox/visma")[1]).json()
    assert (journal["financialPeriod"], journal["postPeriod"]) == ("202609", "092026")


def test_a_date_outside_the_calendar_is_refused(visma):
    # when
    response = visma.post("/v2/journaltransaction", journal_body([("1920", 100, 0, []), ("3000", 0, 100, [])],
                                                                 transactionDate="2031-01-05T00:00:00"))

    # then
    assert response.json()["ExceptionMessage"] == (
        "financialPeriod: No financial period is defined for the date 2031-01-05.")


def test_a_customer_payment_settles_its_invoice_only_when_released(visma):
    # given: invoice 100001 (customer 10001) is open with 1250.00 SEK to pay
    assert visma.get("/v1/customerinvoice/100001").json()["balanceInCurrency"] == 1250.0
    created = visma.post("/v1/customerPayment", _payment("100001", 1250.0))
    number = created["Location"].rsplit("/", 1)[1]
    unreleased = visma.get(f"/v1/customerPayment/{number}").json()
    invoice_before = visma.get("/v1/customerinvoice/100001").json()

    # when
    released = visma.post(f"/v1/customerPayment/{number}/action/release", {"type": value("Payment")})

    # then
    assert unreleased["status"] == "Balanced"
    assert (invoice_before["balanceInCurrency"], invoice_before["status"]) == (1250.0, "Open")
    assert (released.status_code, released.json()["actionResult"]) == (200, "Done")
    assert visma.get(f"/v1/customerPayment/{number}").json()["status"] == "Closed"
    invoice = visma.get("/v1/customerinvoice/100001").json()
    assert (invoice["balanceInCurrency"], invoice["balance"], invoice["status"]) == (0.0, 0.0, "Closed")


def test_a_payment_on_hold_cannot_be_released_and_a_released_one_not_twice(visma):
    # given
    held = visma.post("/v1/customerPayment", _payment("100001", 100.0, hold=True))["Location"].rsplit("/", 1)[1]
    open_one = visma.post("/v1/customerPayment", _payment("100001", 100.0))["Location"].rsplit("/", 1)[1]
    assert visma.post(f"/v1/customerPayment/{open_one}/action/release", {}).status_code == 200

    # when
    on_hold = visma.post(f"/v1/customerPayment/{held}/action/release", {})
    twice = visma.post(f"/v1/customerPayment/{open_one}/action/release", {})

    # then
    assert on_hold.json()["ExceptionMessage"] == f"Payment '{held}' is on hold and cannot be released."
    assert twice.json()["ExceptionMessage"] == f"Payment '{open_one}' is Closed: it has been released already."
    assert visma.get("/v1/customerinvoice/100001").json()["balanceInCurrency"] == 1150.0


def test_a_customer_invoice_and_supplier_documents_are_released(visma):
    # given
    invoice = visma.post("/v2/customerinvoice", {
        "customerNumber": value("10001"), "documentDate": value("2026-03-10T00:00:00"),
        "invoiceLines": [{"operation": "Insert", "description": value("Tent"), "unitPriceInCurrency": value(200.0)}],
    })["Location"].rsplit("/", 1)[1]
    supplier_payment = visma.post("/v1/supplierPayment", {
        "supplier": value("20001"), "paymentLines": [{"operation": "Insert", "refNbr": value("300001")}],
    })["Location"].rsplit("/", 1)[1]

    # when
    # POST /v1/customerinvoice/{invoiceNumber}/action/release takes no body (swagger)
    invoice_release = visma.client.post(f"/sandbox/visma/v1/customerinvoice/{invoice}/action/release", "",
                                        content_type="application/json", headers=visma.headers())
    supplier_release = visma.post(f"/v1/supplierPayment/{supplier_payment}/action/release",
                                  {"type": value("Payment")})

    # then
    assert (invoice_release.status_code, supplier_release.status_code) == (200, 202), invoice_release.content
    assert visma.get(f"/v1/customerinvoice/{invoice}").json()["status"] == "Open"
    assert visma.get(f"/v1/supplierPayment/Payment/{supplier_payment}").json()["status"] == "Closed"
    supplier_invoice = visma.get("/v1/supplierInvoice/Invoice/300001").json()
    assert (supplier_invoice["balanceInCurrency"], supplier_invoice["status"]) == (0.0, "Closed")
