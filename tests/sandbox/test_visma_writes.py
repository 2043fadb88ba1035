"""Writes as Visma answers them: 201 + Location + ETag, 204 + new ETag, 412 on a stale If-Match, the ledger checks."""
from decimal import Decimal

import pytest

from sandbox.models import VismaDocument, VismaGLBalance
from sandbox.services import visma_gl_balances
from tests.sandbox.conftest import journal_body, value

pytestmark = pytest.mark.django_db

IPP_KEYS = {"ExceptionType", "ExceptionMessage", "ExceptionFaultCode", "ExceptionMessageID", "ExceptionDetails"}


def test_a_new_customer_answers_201_with_its_location_and_etag(visma):
    # when
    response = visma.post("/v1/customer", {"name": value("Lapland Lodge Oy"), "currencyId": value("EUR")})

    # then
    assert response.status_code == 201
    assert response.content == b""
    assert response["Location"] == "http://testserver/sandbox/visma/v1/customer/10251"
    created = visma.get("/v1/customer/10251")
    assert created.status_code == 200
    assert created["ETag"] == response["ETag"]
    assert created.json()["timeStamp"] == response["ETag"].strip('"')
    assert (created.json()["name"], created.json()["currencyId"], created.json()["status"]) == (
        "Lapland Lodge Oy", "EUR", "Active",
    )


def test_an_update_answers_204_with_a_new_etag(visma):
    # given
    before = visma.get("/v1/customer/10001")

    # when
    response = visma.put(
        "/v1/customer/10001",
        {"mainContact": value({"email": value("billing@nordic-outdoor.example")})},
        **{"If-Match": before["ETag"]},
    )

    # then
    assert response.status_code == 204
    assert response["ETag"] != before["ETag"]
    after = visma.get("/v1/customer/10001").json()
    assert after["mainContact"] == {"name": "Nordic Outdoor AB", "email": "billing@nordic-outdoor.example"}
    assert after["timeStamp"] == response["ETag"].strip('"')
    assert after["lastModifiedDateTime"] > before.json()["lastModifiedDateTime"]


def test_an_update_with_a_stale_if_match_is_refused_with_412(visma):
    # given
    stale = visma.get("/v1/supplier/20001")["ETag"]
    assert visma.put("/v1/supplier/20001", {"note": value("first")}, **{"If-Match": stale}).status_code == 204

    # when
    response = visma.put("/v1/supplier/20001", {"note": value("second")}, **{"If-Match": stale})

    # then
    assert response.status_code == 412
    assert set(response.json()) == IPP_KEYS
    assert response.json()["ExceptionMessage"] == "Supplier version does not match with If-Match header."
    assert visma.get("/v1/supplier/20001").json()["note"] == "first"


def test_a_balanced_journal_is_posted_and_moves_the_gl_balances(visma):
    # given
    lines = [("1920", 96.6, 0, [(1, "100")]), ("7770", 3.4, 0, [(1, "100"), (2, "P-100")]), ("1580", 0, 100.0, [])]

    # when
    response = visma.post("/v2/journaltransaction", journal_body(lines))

    # then
    assert response.status_code == 201
    assert response["Location"] == "http://testserver/sandbox/visma/v2/journaltransaction/000002"
    journal = visma.get("/v2/journaltransaction/000002").json()
    assert (journal["status"], journal["debitTotalInCurrency"], journal["creditTotalInCurrency"]) == (
        "Posted", 100.0, 100.0,
    )
    assert journal["journalTransactionLines"][1]["subaccount"]["subaccountNumber"] == "100-P-100"
    assert visma_gl_balances() == [
        {"account": "1580", "description": "PayPal clearing", "debit": "0.00", "credit": "100.00",
         "balance": "-100.00"},
        {"account": "1920", "description": "Bank", "debit": "50096.60", "credit": "0.00", "balance": "50096.60"},
        {"account": "2081", "description": "Share capital", "debit": "0.00", "credit": "50000.00",
         "balance": "-50000.00"},
        {"account": "7770", "description": "Payment fees", "debit": "3.40", "credit": "0.00", "balance": "3.40"},
    ]
    assert visma.get("/_state/balances").json()["balances"][1]["balance"] == "50096.60"


def test_a_journal_in_a_foreign_currency_posts_base_amounts(visma):
    # when
    response = visma.post(
        "/v2/journaltransaction",
        journal_body([("1580", 10, 0, []), ("3010", 0, 10, [])], currencyId="EUR", exchangeRate=11.0),
    )

    # then
    assert response.status_code == 201
    assert VismaGLBalance.objects.get(account_cd="3010").credit_total == Decimal("110.00")


def test_an_unbalanced_journal_is_refused_with_the_visma_error_body(visma):
    # given
    journals_before = VismaDocument.objects.filter(collection="journal").count()

    # when
    response = visma.post("/v2/journaltransaction", journal_body([("1920", 100, 0, []), ("1580", 0, 90, [])]))

    # then
    assert response.status_code == 400
    body = response.json()
    assert set(body) == IPP_KEYS
    assert body["ExceptionType"] == "IPPException"
    assert body["ExceptionFaultCode"] == "10000"
    assert body["ExceptionMessage"] == (
        "journalTransactionLines: The batch is out of balance: debit total 100.00 SEK is not equal to "
        "credit total 90.00 SEK."
    )
    assert body["ExceptionDetails"] == ""
    assert VismaDocument.objects.filter(collection="journal").count() == journals_before
    assert VismaGLBalance.objects.get(account_cd="1920").debit_total == Decimal("50000.00")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (("3099", 0, 100, []), "journalTransactionLines[1].accountNumber: Account '3099' is inactive."),
        (("9999", 0, 100, []),
         "journalTransactionLines[1].accountNumber: Account '9999' cannot be found in the system."),
        (("3000", 0, 100, [(1, "900")]),
         "journalTransactionLines[1].subaccount: Value '900' of segment 1 (Department) is inactive."),
        (("3000", 0, 100, [(2, "P-999")]),
         "journalTransactionLines[1].subaccount: 'P-999' is not a value of segment 2 (Project)."),
        (("3000", 0, 100, [(3, "X")]),
         "journalTransactionLines[1].subaccount: Segment 3 of dimension SUBACCOUNT does not exist."),
    ],
)
def test_a_journal_line_needs_an_active_account_and_active_segment_values(visma, line, message):
    # when
    response = visma.post("/v2/journaltransaction", journal_body([("1920", 100, 0, []), line]))

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == message
    assert not VismaDocument.objects.filter(collection="journal", key="000002").exists()
    assert VismaGLBalance.objects.count() == 2


def test_a_body_the_published_schema_rejects_is_refused_naming_the_field(visma):
    # given
    body = journal_body([("1920", 100, 0, []), ("1580", 0, 100, [])])
    body["journalTransactionLines"][0]["debitAmount"] = value(100)
    body["journalTransactionLines"][1]["creditAmountInCurrency"] = value("100.00")

    # when
    response = visma.post("/v2/journaltransaction", body)

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        "The request does not match the Visma.net ERP API: "
        "journalTransactionLines[0].debitAmount: unknown property; "
        'journalTransactionLines[1].creditAmountInCurrency.value: "100.00" is not of type number'
    )
    assert not VismaDocument.objects.filter(collection="journal", key="000002").exists()


def test_a_customer_invoice_must_name_an_existing_customer(visma):
    # given
    invoices_before = VismaDocument.objects.filter(collection="customer_invoice").count()
    body = {
        "customerNumber": value("99999"),
        "externalReference": value("WEB-2001"),
        "invoiceLines": [{"operation": "Insert", "accountNumber": value("3000"), "unitPriceInCurrency": value(10.0)}],
    }

    # when
    response = visma.post("/v2/customerinvoice", body)

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == "customerNumber: Customer '99999' cannot be found in the system."
    assert VismaDocument.objects.filter(collection="customer_invoice").count() == invoices_before


def test_a_customer_invoice_is_created_by_v2_and_read_and_changed_by_v1(visma):
    # given
    body = {
        "customerNumber": value("10004"),
        "externalReference": value("WEB-2002"),
        "documentDate": value("2026-03-01T00:00:00"),
        "invoiceLines": [
            {"operation": "Insert", "accountNumber": value("3010"), "quantity": value(2),
             "unitPriceInCurrency": value(45.5), "subaccount": [{"segmentId": 1, "segmentValue": "100"}]},
        ],
    }

    # when
    created = visma.post("/v2/customerinvoice", body)
    changed = visma.put(
        "/v1/customerinvoice/100005",
        {"invoiceLines": [
            {"operation": "Insert", "accountNumber": value("3010"), "manualAmountInCurrency": value(9.0)},
        ]},
        **{"If-Match": created["ETag"]},
    )

    # then
    assert created.status_code == 201
    assert created["Location"] == "http://testserver/sandbox/visma/v1/customerinvoice/100005"
    assert changed.status_code == 204
    invoice = visma.get("/v1/customerinvoice/100005").json()
    assert (invoice["currencyId"], invoice["amountInCurrency"], invoice["amount"], invoice["financialPeriod"]) == (
        "EUR", 100.0, 1150.0, "202603",
    )
    assert [line["lineNumber"] for line in invoice["invoiceLines"]] == [1, 2]
    assert visma.get("/v1/customerinvoice", {"externalReference": "WEB-2002"}).json()[0]["referenceNumber"] == "100005"


def test_a_customer_payment_settles_an_open_invoice_of_the_same_customer(visma):
    # given
    line = {"operation": "Insert", "documentType": value("Invoice"), "refNbr": value("100001"),
            "amountPaid": value(1250.0)}

    # when
    paid = visma.post("/v1/customerPayment", {"customer": value("10001"), "paymentAmount": value(1250.0),
                                              "paymentRef": value("pp_7H2"), "paymentLines": [line]})
    wrong_customer = visma.post("/v1/customerPayment", {"customer": value("10002"), "paymentLines": [line]})

    # then
    assert paid.status_code == 201
    assert paid["Location"] == "http://testserver/sandbox/visma/v1/customerPayment/200001"
    payment = visma.get("/v1/customerPayment/200001").json()
    assert (payment["paymentAmount"], payment["availableBalance"], payment["paymentRef"]) == (1250.0, 0.0, "pp_7H2")
    assert wrong_customer.status_code == 400
    assert wrong_customer.json()["ExceptionMessage"] == (
        "paymentLines[0].refNbr: Invoice '100001' belongs to another customer."
    )
    assert visma.get("/v1/customerPayment", {"customer": "10002"}).json() == []


def test_a_payment_settles_its_invoice_and_a_refund_pays_out_a_credit_note(visma):
    # given: invoice 100001 (SEK 1250.00) paid in full, then a credit note of 300.00 for it
    line = {"operation": "Insert", "documentType": value("Invoice"), "refNbr": value("100001"),
            "amountPaid": value(1250.0)}
    visma.post("/v1/customerPayment", {"customer": value("10001"), "paymentAmount": value(1250.0),
                                       "paymentLines": [line]})
    visma.post("/v1/customerPayment/200001/action/release", {"type": {"value": "Payment"}})
    created = visma.post("/v2/customerCreditNote", {
        "customerNumber": value("10001"), "currencyId": value("SEK"), "externalReference": value("MLCREDITNOTE001"),
        "customerRefNumber": value("100001"),
        "lines": [{"operation": "Insert", "description": value("Hiking boots"), "quantity": value(1),
                   "manualAmountInCurrency": value(300.0), "accountNumber": value("3000"),
                   "subaccount": [{"segmentId": 1, "segmentValue": "100"}]}]})

    # when: a refund of the credit note before it is released, then after; the refund settles it once released
    refund_line = {"operation": "Insert", "documentType": value("CreditNote"), "refNbr": value("500001"),
                   "amountPaid": value(300.0)}
    refund = {"type": value("Refund"), "customer": value("10001"), "paymentAmount": value(300.0),
              "paymentLines": [refund_line]}
    too_early = visma.post("/v1/customerPayment", refund)
    # POST /v1/customerCreditNote/{creditNoteNumber}/action/release takes no body (swagger)
    released = visma.client.post("/sandbox/visma/v1/customerCreditNote/500001/action/release", "",
                                 content_type="application/json", headers=visma.headers())
    refunded = visma.post("/v1/customerPayment", refund)
    visma.post(f"/v1/customerPayment/{refunded['Location'].rsplit('/', 1)[-1]}/action/release",
               {"type": {"value": "Refund"}})
    refund_on_invoice = visma.post("/v1/customerPayment", {"type": value("Refund"), "customer": value("10001"),
                                                           "paymentLines": [line]})

    # then
    assert created.status_code == 201
    assert created["Location"] == "http://testserver/sandbox/visma/v1/customerCreditNote/500001"
    assert too_early.status_code == 400
    assert too_early.json()["ExceptionMessage"] == (
        "paymentLines[0].refNbr: CreditNote '500001' is Balanced: only an open (released) document can be applied.")
    assert (released.status_code, released.json()["actionResult"]) == (200, "Done")
    assert refunded.status_code == 201
    note = visma.get("/v1/customerCreditNote/500001").json()
    assert (note["documentType"], note["amountInCurrency"], note["balanceInCurrency"], note["status"]) == (
        "CreditNote", 300.0, 0.0, "Closed")
    invoice = visma.get("/v1/customerinvoice/100001").json()
    assert (invoice["balanceInCurrency"], invoice["status"]) == (0.0, "Closed")
    assert [row["referenceNumber"] for row in visma.get(
        "/v1/customerCreditNote", {"externalReference": "MLCREDITNOTE001"}).json()] == ["500001"]
    assert refund_on_invoice.status_code == 400
    assert refund_on_invoice.json()["ExceptionMessage"] == (
        "paymentLines[0].documentType: a Refund cannot be applied to documents of type Invoice.")


def test_supplier_invoices_and_payments_are_read_by_type_and_number(visma):
    # when
    invoice = visma.post("/v1/supplierInvoice", {
        "supplierNumber": value("20002"), "supplierReference": value("OCH-55013"),
        "invoiceLines": [{"operation": "Insert", "accountNumber": value("6540"), "costInCurrency": value(300.0)}],
    })
    payment = visma.post("/v1/supplierPayment", {
        "supplier": value("20002"),
        "paymentLines": [{"operation": "Insert", "documentType": value("Invoice"), "refNbr": value("300003")}],
    })

    # then
    assert invoice["Location"] == "http://testserver/sandbox/visma/v1/supplierInvoice/Invoice/300003"
    assert payment["Location"] == "http://testserver/sandbox/visma/v1/supplierPayment/Payment/400001"
    read = visma.get("/v1/supplierInvoice/Invoice/300003").json()
    assert (read["currencyId"], read["amount"], read["supplier"]["number"]) == ("NOK", 300.0, "20002")
    assert visma.get("/v1/supplierPayment/Payment/400001").json()["paymentAmount"] == 300.0
    assert visma.get("/v1/supplierInvoice", {"supplier": "20002"}).json()[0]["metadata"]["totalCount"] == 2


def test_a_journal_on_hold_reaches_the_ledger_only_when_released(visma):
    # given
    created = visma.post("/v2/journaltransaction", journal_body([("1920", 50, 0, []), ("3000", 0, 50, [])], hold=True))
    held_balance = VismaGLBalance.objects.filter(account_cd="3000").exists()

    # when
    released = visma.post("/v2/journaltransaction/000002/action/release", "")

    # then
    assert created.status_code == 201
    assert held_balance is False
    assert released.status_code == 200
    assert released.json()["actionResult"] == "Done"
    assert visma.get("/v2/journaltransaction/000002").json()["status"] == "Posted"
    assert VismaGLBalance.objects.get(account_cd="3000").credit_total == Decimal("50.00")


def test_an_unknown_resource_is_not_found(visma):
    # when
    response = visma.get("/v1/customer/99999")

    # then
    assert response.status_code == 404
    assert response.json()["ExceptionMessage"] == "Customer '99999' was not found."
