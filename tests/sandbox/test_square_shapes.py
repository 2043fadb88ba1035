"""Every answer of the Square emulator, on the seeded demo, checked against api.json's response schemas (types,
shapes, enums), and every request of the walk logged as fitting with a Square-Version."""
import pytest

from sandbox import square_api
from sandbox.square_openapi import square_response_problems, square_schema_problems
from sandbox.square_seed import BERGEN, OSLO, WEB_SHOP, square_sandbox_seed
from tests.sandbox.square_helpers import SquareSession


@pytest.fixture
def seeded(db):
    merchant, _ = square_sandbox_seed()
    return merchant


@pytest.fixture
def square(client, seeded) -> SquareSession:
    return SquareSession(client, square_api.square_personal_token(seeded))


def _checked(response, method, template):
    assert response.status_code == 200, response.content
    assert square_response_problems(method, template, 200, response.json()) == [], template
    return response.json()


def test_every_read_of_the_demo_fits_the_specs_response_schemas(square, seeded):
    # given
    invoice = square_api.square_objects(seeded, "invoice")[0]
    customer = square_api.square_objects(seeded, "customer")[0]
    vendor = square_api.square_objects(seeded, "vendor")[0]
    refund = square_api.square_objects(seeded, "refund")[0]

    # when / then
    _checked(square.get("/v2/locations"), "GET", "/v2/locations")
    _checked(square.get(f"/v2/locations/{BERGEN}"), "GET", "/v2/locations/{location_id}")
    payments = []
    for location_id in (OSLO, BERGEN, WEB_SHOP):
        payments += _checked(square.get("/v2/payments", {"location_id": location_id}), "GET",
                             "/v2/payments")["payments"]
    assert len(payments) == 7
    for payment in payments:
        _checked(square.get(f"/v2/payments/{payment['id']}"), "GET", "/v2/payments/{payment_id}")
    _checked(square.get("/v2/refunds"), "GET", "/v2/refunds")
    _checked(square.get(f"/v2/refunds/{refund['id']}"), "GET", "/v2/refunds/{refund_id}")
    _checked(square.get(f"/v2/orders/{invoice['order_id']}"), "GET", "/v2/orders/{order_id}")
    _checked(square.post("/v2/orders/search", {"location_ids": [OSLO, BERGEN, WEB_SHOP]}), "POST",
             "/v2/orders/search")
    _checked(square.post("/v2/orders/batch-retrieve", {"order_ids": [invoice["order_id"]]}), "POST",
             "/v2/orders/batch-retrieve")
    _checked(square.get("/v2/invoices", {"location_id": WEB_SHOP}), "GET", "/v2/invoices")
    _checked(square.get(f"/v2/invoices/{invoice['id']}"), "GET", "/v2/invoices/{invoice_id}")
    _checked(square.post("/v2/invoices/search", {"query": {"filter": {"location_ids": [WEB_SHOP]}}}), "POST",
             "/v2/invoices/search")
    _checked(square.get(f"/v2/customers/{customer['id']}"), "GET", "/v2/customers/{customer_id}")
    _checked(square.post("/v2/customers/search", {"query": {"filter": {"reference_id": {"exact": "10002"}}}}),
             "POST", "/v2/customers/search")
    _checked(square.get(f"/v2/vendors/{vendor['id']}"), "GET", "/v2/vendors/{vendor_id}")
    _checked(square.post("/v2/vendors/search", {}), "POST", "/v2/vendors/search")
    _checked(square.post("/oauth2/token/status"), "POST", "/oauth2/token/status")
    assert square_api.square_requests_unfit() == []


def test_an_error_answer_fits_the_specs_error_schema(square):
    # when
    response = square.get("/v2/payments/unknown")

    # then
    assert response.status_code == 404
    assert square_schema_problems("GetPaymentResponse", response.json()) == []
    assert response.json()["errors"][0]["code"] == "NOT_FOUND"
