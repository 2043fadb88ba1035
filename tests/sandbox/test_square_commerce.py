"""The Square emulator's orders, invoices, customers and vendors: amounts as Square computes them, SearchOrders'
traps (10 locations, date filter and sort on one field, cursor with the original query), invoices paid by card,
reference-id search, vendors (beta), each answer checked against api.json."""
import json
from datetime import timedelta

import pytest
import responses

from sandbox import square_api
from sandbox.square_openapi import square_response_problems, square_schema_problems
from sandbox.square_webhooks import square_events_deliver
from tests.sandbox.square_helpers import SquareSession


@pytest.fixture
def merchant(db):
    return square_api.square_merchant_create(locations=(("Oslo Sentrum", "ACTIVE"), ("Bergen", "ACTIVE")),
                                             notification_url="https://connector.example/webhooks/square/1")


@pytest.fixture
def square(client, merchant) -> SquareSession:
    return SquareSession(client, square_api.square_personal_token(merchant))


def _order(merchant, **overrides):
    arguments = {"lines": [{"name": "Telt", "quantity": "2", "base_price": 10000},
                           {"name": "Sovepose", "quantity": "1", "base_price": 5000}],
                 "taxes": [{"name": "MVA 25 %", "percentage": "25", "type": "ADDITIVE", "scope": "ORDER"}],
                 "discounts": [{"name": "Vårsalg", "percentage": "10", "scope": "ORDER"}]}
    arguments.update(overrides)
    return square_api.square_order_create(merchant, None, **arguments)


def test_an_order_with_two_lines_25_percent_vat_and_a_discount_has_squares_totals(square, merchant):
    # when
    order = _order(merchant)
    read = square.get(f"/v2/orders/{order['id']}").json()

    # then
    lines = read["order"]["line_items"]
    assert [(line["gross_sales_money"]["amount"], line["total_discount_money"]["amount"],
             line["total_tax_money"]["amount"], line["total_money"]["amount"]) for line in lines] == [
        (20000, 2000, 4500, 22500), (5000, 500, 1125, 5625)]
    assert (read["order"]["total_money"]["amount"], read["order"]["total_tax_money"]["amount"],
            read["order"]["total_discount_money"]["amount"]) == (28125, 5625, 2500)
    assert read["order"]["taxes"][0]["applied_money"]["amount"] == 5625
    assert square_response_problems("GET", "/v2/orders/{order_id}", 200, read) == []


def test_inclusive_vat_stays_in_the_gross_sale_and_a_fixed_discount_is_shared_by_gross(merchant):
    # when
    order = square_api.square_order_create(
        merchant, None, lines=[{"name": "Jakke", "base_price": 7500}, {"name": "Lue", "base_price": 2500}],
        taxes=[{"name": "MVA", "percentage": "25", "type": "INCLUSIVE"}],
        discounts=[{"name": "Kupong", "amount": 1000}])

    # then
    assert [(line["total_discount_money"]["amount"], line["total_tax_money"]["amount"], line["total_money"]["amount"])
            for line in order["line_items"]] == [(750, 1350, 6750), (250, 450, 2250)]
    assert (order["total_money"]["amount"], order["total_tax_money"]["amount"]) == (9000, 1800)


def test_search_orders_refuses_11_locations(square, merchant):
    # when
    response = square.post("/v2/orders/search", {"location_ids": [f"L{index:012d}" for index in range(11)]})

    # then
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "ARRAY_LENGTH_TOO_LONG"


def test_search_orders_refuses_a_date_filter_on_another_field_than_the_sort(square, merchant):
    # when
    response = square.post("/v2/orders/search", {
        "location_ids": [merchant.main_location_id],
        "query": {"filter": {"date_time_filter": {"updated_at": {"start_at": "2026-01-01T00:00:00Z"}}},
                  "sort": {"sort_field": "CREATED_AT"}}})

    # then
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "query.sort.sort_field"


def test_search_orders_walks_by_updated_at_with_a_cursor_that_needs_the_original_query(square, merchant):
    # given
    orders = [_order(merchant) for _ in range(3)]
    # In updated_at order; orders made within one clock tick tie, and the id decides (as the emulator sorts)
    made = [order["id"] for order in sorted(orders, key=lambda order: (order["updated_at"], order["id"]))]
    bergen = square_api.square_locations(merchant)["Bergen"]["id"]
    query = {"location_ids": [merchant.main_location_id, bergen], "limit": 2, "query": {
        "filter": {"date_time_filter": {"updated_at": {"start_at": "2020-01-01T00:00:00Z"}}},
        "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"}}}

    # when
    first = square.post("/v2/orders/search", query).json()
    second = square.post("/v2/orders/search", {**query, "cursor": first["cursor"]}).json()
    changed = square.post("/v2/orders/search", {**query, "limit": 3, "cursor": first["cursor"]})
    entries = square.post("/v2/orders/search", {**query, "return_entries": True}).json()

    # then
    assert [order["id"] for order in first["orders"] + second["orders"]] == made
    assert "cursor" not in second
    assert (changed.status_code, changed.json()["errors"][0]["code"]) == (400, "INVALID_CURSOR")
    assert [entry["order_id"] for entry in entries["order_entries"]] == made[:2]
    assert square_response_problems("POST", "/v2/orders/search", 200, first) == []


def test_batch_retrieve_orders_leaves_out_ids_it_does_not_know(square, merchant):
    # given
    order = _order(merchant)

    # when
    response = square.post("/v2/orders/batch-retrieve", {"order_ids": [order["id"], "missing"]})

    # then
    assert [body["id"] for body in response.json()["orders"]] == [order["id"]]


@responses.activate
def test_an_invoice_paid_by_card_is_paid_its_order_completed_and_the_events_follow(square, merchant):
    # given
    responses.post(merchant.notification_url, status=200)
    customer = square_api.square_customer_create(merchant, company_name="Fjordline Sport AS", reference_id="10002")
    order = _order(merchant, customer_id=customer["id"])
    invoice = square_api.square_invoice_create(merchant, order["id"], customer["id"], publish=True)

    # when
    payment = square_api.square_invoice_pay(merchant, invoice["id"])
    read = square.get(f"/v2/invoices/{invoice['id']}").json()["invoice"]
    square_events_deliver(merchant)

    # then
    assert (read["status"], read["invoice_number"], read["version"]) == ("PAID", "0000001", 2)
    assert read["payment_requests"][0]["total_completed_amount_money"] == {"amount": 28125, "currency": "NOK"}
    assert (payment["order_id"], payment["customer_id"], payment["total_money"]["amount"]) == (order["id"],
                                                                                              customer["id"], 28125)
    assert square_api.square_object(merchant, "order", order["id"])["state"] == "COMPLETED"

    events = [json.loads(call.request.body) for call in responses.calls]
    assert [event["type"] for event in events] == ["invoice.created", "invoice.published", "payment.created",
                                                   "invoice.payment_made"]
    assert square_schema_problems("InvoicePaymentMadeEvent", events[-1]) == []
    assert square_response_problems("GET", "/v2/invoices/{invoice_id}", 200, {"invoice": read}) == []


def test_list_invoices_needs_a_location_and_at_most_200(square, merchant):
    # given
    customer = square_api.square_customer_create(merchant, given_name="Kari", reference_id="10001")
    invoice = square_api.square_invoice_create(merchant, _order(merchant)["id"], customer["id"])

    # when
    missing = square.get("/v2/invoices")
    too_many = square.get("/v2/invoices", {"location_id": merchant.main_location_id, "limit": "201"})
    listed = square.get("/v2/invoices", {"location_id": merchant.main_location_id})

    # then
    assert (missing.status_code, missing.json()["errors"][0]["code"]) == (400, "MISSING_REQUIRED_PARAMETER")
    assert (too_many.status_code, too_many.json()["errors"][0]["code"]) == (400, "VALUE_TOO_HIGH")
    assert [body["id"] for body in listed.json()["invoices"]] == [invoice["id"]]
    assert square_response_problems("GET", "/v2/invoices", 200, listed.json()) == []


def test_search_invoices_takes_exactly_one_location(square, merchant):
    # given
    bergen = square_api.square_locations(merchant)["Bergen"]["id"]

    # when
    two = square.post("/v2/invoices/search", {"query": {"filter": {"location_ids": [merchant.main_location_id,
                                                                                    bergen]}}})
    one = square.post("/v2/invoices/search", {"query": {"filter": {"location_ids": [bergen]}}})

    # then
    assert two.status_code == 400
    assert (one.status_code, one.json()) == (200, {})


def test_search_invoices_sorts_by_the_invoice_date_draft_created_published_by_publication(square, merchant):
    # given: A created first but published last; B created and published in between; C a draft created last
    customer = square_api.square_customer_create(merchant, given_name="Kari", reference_id="10001")
    made = {}
    for name in ("A", "B"):
        made[name] = square_api.square_invoice_create(merchant, _order(merchant)["id"], customer["id"])
        square_api.square_clock_advance(merchant, timedelta(minutes=1))
    square_api.square_invoice_publish(merchant, made["B"]["id"])
    square_api.square_clock_advance(merchant, timedelta(minutes=1))
    made["C"] = square_api.square_invoice_create(merchant, _order(merchant)["id"], customer["id"])
    square_api.square_clock_advance(merchant, timedelta(minutes=1))
    square_api.square_invoice_publish(merchant, made["A"]["id"])
    query = {"query": {"filter": {"location_ids": [merchant.main_location_id]},
                       "sort": {"field": "INVOICE_SORT_DATE", "order": "DESC"}}}

    # when
    found = square.post("/v2/invoices/search", query).json()
    listed = square.get("/v2/invoices", {"location_id": merchant.main_location_id}).json()

    # then: A (published last), C (created after B was published), B; ListInvoices by creation; no bookkeeping key
    ids = {body["id"]: name for name, body in made.items()}
    assert [ids[body["id"]] for body in found["invoices"]] == ["A", "C", "B"]
    assert [ids[body["id"]] for body in listed["invoices"]] == ["A", "B", "C"]
    assert square_response_problems("POST", "/v2/invoices/search", 200, found) == []


def test_a_pos_payment_has_an_order_of_its_own_completed_by_it(merchant):
    # when
    payment = square_api.square_payment_create(merchant, None, 12500, tip=1000)

    # then: as at Square, every payment names an order
    order = square_api.square_object(merchant, "order", payment["order_id"])
    assert (order["location_id"], order["state"], order["total_money"]["amount"]) == (
        payment["location_id"], "COMPLETED", 12500)
    assert [tender["payment_id"] for tender in order["tenders"]] == [payment["id"]]
    assert square_response_problems("GET", "/v2/orders/{order_id}", 200, {"order": order}) == []


def test_customers_are_found_by_reference_id_exactly_and_case_insensitively(square, merchant):
    # given
    wanted = square_api.square_customer_create(merchant, company_name="Fjordline Sport AS", reference_id="AB-10002")
    square_api.square_customer_create(merchant, company_name="Other", reference_id="AB-100021")

    # when
    found = square.post("/v2/customers/search", {"query": {"filter": {"reference_id": {"exact": "ab-10002"}}}})
    too_low = square.post("/v2/customers/search", {"limit": 0})
    too_high = square.post("/v2/customers/search", {"limit": 101})

    # then
    assert [body["id"] for body in found.json()["customers"]] == [wanted["id"]]
    assert (too_low.status_code, too_low.json()["errors"][0]["code"]) == (400, "VALUE_TOO_LOW")
    assert (too_high.status_code, too_high.json()["errors"][0]["code"]) == (400, "VALUE_TOO_HIGH")
    assert square_response_problems("POST", "/v2/customers/search", 200, found.json()) == []
    assert square.get(f"/v2/customers/{wanted['id']}").json()["customer"]["reference_id"] == "AB-10002"


@responses.activate
def test_vendors_are_searched_by_status_across_pages_and_their_events_fit_the_spec(square, merchant):
    # given
    responses.post(merchant.notification_url, status=200)
    created = [square_api.square_vendor_create(merchant, f"Leverandør {index:02d}") for index in range(22)]
    inactive = square_api.square_vendor_create(merchant, "Gammel leverandør", status="INACTIVE")
    square_api.square_vendor_update(merchant, created[0]["id"], note="Ny avtale")

    # when
    first = square.post("/v2/vendors/search", {"filter": {"status": ["ACTIVE"]}}).json()
    second = square.post("/v2/vendors/search", {"filter": {"status": ["ACTIVE"]}, "cursor": first["cursor"]}).json()
    by_name = square.post("/v2/vendors/search", {"filter": {"name": ["gammel leverandør"]}}).json()
    square_events_deliver(merchant)

    # then
    assert [body["id"] for body in first["vendors"] + second["vendors"]] == [body["id"] for body in created]
    assert [body["id"] for body in by_name["vendors"]] == [inactive["id"]]
    assert square.get(f"/v2/vendors/{created[0]['id']}").json()["vendor"]["version"] == 2

    events = [json.loads(call.request.body) for call in responses.calls]
    assert square_schema_problems("VendorCreatedEvent", events[0]) == []
    assert square_schema_problems("VendorUpdatedEvent", events[-1]) == []
    assert events[-1]["data"]["object"]["operation"] == "UPDATED"
    assert square_response_problems("POST", "/v2/vendors/search", 200, first) == []


def test_a_partly_paid_then_refunded_invoice_and_a_canceled_one_queue_events_in_the_specs_shapes(merchant):
    # given
    customer = square_api.square_customer_create(merchant, company_name="Fjordline Sport AS", reference_id="10002")
    invoice = square_api.square_invoice_create(merchant, _order(merchant)["id"], customer["id"], publish=True)
    other = square_api.square_invoice_create(merchant, _order(merchant)["id"], customer["id"], publish=True)

    # when
    square_api.square_invoice_update(merchant, invoice["id"], due_date="2027-01-31")
    square_api.square_invoice_pay(merchant, invoice["id"], 10000)
    partly = square_api.square_object(merchant, "invoice", invoice["id"])
    square_api.square_invoice_pay(merchant, invoice["id"])
    square_api.square_invoice_refund(merchant, invoice["id"], 5000)
    canceled = square_api.square_invoice_cancel(merchant, other["id"])

    # then
    assert (partly["status"], partly["next_payment_amount_money"]["amount"]) == ("PARTIALLY_PAID", 18125)
    final = square_api.square_object(merchant, "invoice", invoice["id"])
    assert (final["status"], final["version"], final["payment_requests"][0]["due_date"]) == (
        "PARTIALLY_REFUNDED", 5, "2027-01-31")
    assert (canceled["status"], other["invoice_number"], invoice["invoice_number"]) == ("CANCELED", "0000002",
                                                                                       "0000001")
    schemas = {"invoice.created": "InvoiceCreatedEvent", "invoice.published": "InvoicePublishedEvent",
               "invoice.updated": "InvoiceUpdatedEvent", "invoice.payment_made": "InvoicePaymentMadeEvent",
               "invoice.refunded": "InvoiceRefundedEvent", "invoice.canceled": "InvoiceCanceledEvent"}
    events = [event for event in square_api.square_objects(merchant, "event") if event["type"].startswith("invoice.")]
    assert sorted({event["type"] for event in events}) == sorted(schemas)
    assert [(event["type"], problem) for event in events
            for problem in square_schema_problems(schemas[event["type"]], event)] == []
