"""The emulator's read DTOs have the shapes of the published response schemas, so clients parse real shapes."""
import pytest

from sandbox.openapi import visma_response_problems
from tests.sandbox.conftest import journal_body, value

READ_PATHS = [
    "/v1/account",
    "/v1/account/1920",
    "/v1/subaccount",
    "/v1/dimension",
    "/v1/dimension/SUBACCOUNT",
    "/v1/customer",
    "/v1/customer/10001",
    "/v1/supplier",
    "/v1/supplier/20001",
    "/v2/journaltransaction?periodId=202603",
    "/v2/journaltransaction/000002",
    "/v1/customerinvoice",
    "/v1/customerinvoice/100001",
    "/v1/customerPayment",
    "/v1/customerPayment/200001",
    "/v1/supplierInvoice",
    "/v1/supplierInvoice/Invoice/300001",
    "/v1/supplierPayment",
    "/v1/supplierPayment/Payment/400001",
    "/v1/financialPeriod",
    "/v1/financialPeriod/202602",
]


@pytest.mark.django_db
def test_every_read_endpoint_answers_in_the_published_response_shape(visma):
    # given: one document of each kind that is not seeded
    journal = journal_body([("1920", 100, 0, [(1, "100"), (2, "P-200")]), ("1580", 0, 100, [])])
    assert visma.post("/v2/journaltransaction", journal).status_code == 201
    payment = {"customer": value("10001"), "paymentLines": [{"operation": "Insert", "refNbr": value("100001")}]}
    assert visma.post("/v1/customerPayment", payment).status_code == 201
    supplier_line = {"operation": "Insert", "refNbr": value("300001")}
    supplier_payment = {"supplier": value("20001"), "paymentLines": [supplier_line]}
    assert visma.post("/v1/supplierPayment", supplier_payment).status_code == 201

    # when
    answers = {path: visma.client.get(f"/sandbox/visma{path}", headers=visma.headers()) for path in READ_PATHS}

    # then
    assert {path: response.status_code for path, response in answers.items()} == dict.fromkeys(READ_PATHS, 200)
    assert {
        path: visma_response_problems("GET", path, 200, response.json()) for path, response in answers.items()
    } == dict.fromkeys(READ_PATHS, [])


def test_a_response_of_the_wrong_shape_is_reported():
    # when
    problems = visma_response_problems(
        "GET", "/v1/account/1920", 200, {"accountCD": "1920", "active": "yes", "type": "Equity", "timeStamp": "x"}
    )

    # then
    assert problems == [
        'active: "yes" is not of type boolean',
        'type: "Equity" is not one of Asset, Liability, Income, Expense',
    ]
