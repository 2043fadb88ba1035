"""The PayPal emulator: tokens, captures with fees, refunds with `up` links, Transaction Search's limits, invoicing,
request shapes checked against PayPal's OpenAPI files, and responses shaped like PayPal's."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import time_machine

from sandbox.models import PayPalToken, PayPalTransaction, PayPalWebhookEvent
from sandbox.paypal import (
    Payer, paypal_capture_create, paypal_invoice_search_row, paypal_refund_create, paypal_sandbox_configure,
)
from sandbox.paypal_openapi import paypal_response_problems
from tests.paypal.conftest import BASE, basic

BUYER = Payer("QYR5Z8XDVJNXQ", "anna@example.se", "Anna", "Lindqvist", "SE")
NOON = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_token_is_issued_for_the_apps_client_credentials(paypal_app, client):
    # when
    response = client.post(f"{BASE}/v1/oauth2/token", "grant_type=client_credentials",
                           content_type="application/x-www-form-urlencoded", headers={"Authorization": basic()})

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["token_type"], body["expires_in"], body["app_id"]) == ("Bearer", 32400, "APP-80W284485P519543T")
    assert "https://uri.paypal.com/services/reporting/search/read" in body["scope"].split()
    assert PayPalToken.objects.count() == 1


def test_a_wrong_secret_gets_invalid_client_and_no_token(paypal_app, client):
    # when
    response = client.post(f"{BASE}/v1/oauth2/token", "grant_type=client_credentials",
                           content_type="application/x-www-form-urlencoded",
                           headers={"Authorization": basic(secret="wrong")})

    # then
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client", "error_description": "Client Authentication failed"}
    assert PayPalToken.objects.count() == 0


def test_the_api_refuses_a_call_without_a_valid_token(paypal_app, client):
    # when
    response = client.get(f"{BASE}/v2/payments/captures/X", headers={"Authorization": "Bearer nope"})

    # then
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"


def test_a_capture_carries_gross_fee_and_net_and_is_served_as_payments_v2_shapes_it(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, invoice_id="WEB-1001",
                                    at=NOON, notify=False)

    # when
    response = paypal.get(f"/v2/payments/captures/{capture.object_id}")

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "COMPLETED"
    assert body["seller_receivable_breakdown"] == {
        "gross_amount": {"currency_code": "EUR", "value": "100.00"},
        "paypal_fee": {"currency_code": "EUR", "value": "3.88"},
        "net_amount": {"currency_code": "EUR", "value": "96.12"},
    }
    assert body["invoice_id"] == "WEB-1001"
    assert body["links"][0] == {"href": f"http://testserver/sandbox/paypal/v2/payments/captures/{capture.object_id}",
                                "rel": "self", "method": "GET"}
    assert paypal_response_problems("GET", f"/v2/payments/captures/{capture.object_id}", 200, body) == []


def test_the_order_of_a_capture_names_its_payer(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("10.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)
    order_id = capture.body["supplementary_data"]["related_ids"]["order_id"]

    # when
    response = paypal.get(f"/v2/checkout/orders/{order_id}")

    # then
    assert response.status_code == 200
    assert response.json()["payer"]["payer_id"] == "QYR5Z8XDVJNXQ"
    assert paypal_response_problems("GET", f"/v2/checkout/orders/{order_id}", 200, response.json()) == []


def test_a_yen_capture_has_no_decimals(paypal_app):
    # when
    capture = paypal_capture_create(amount=Decimal("5000"), currency="JPY", payer=BUYER, at=NOON, notify=False)

    # then
    assert capture.body["seller_receivable_breakdown"]["paypal_fee"] == {"currency_code": "JPY", "value": "215"}
    assert capture.body["seller_receivable_breakdown"]["net_amount"] == {"currency_code": "JPY", "value": "4785"}


def test_a_partial_then_full_refund_returns_the_fee_in_proportion_and_links_up_to_the_capture(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)

    # when
    first = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund",
                        {"amount": {"currency_code": "EUR", "value": "40.00"}}, **{"PayPal-Request-Id": "r-1"})
    rest = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund", {}, **{"PayPal-Request-Id": "r-2"})

    # then
    assert (first.status_code, rest.status_code) == (201, 201)
    assert first.json()["seller_payable_breakdown"] == {
        "gross_amount": {"currency_code": "EUR", "value": "40.00"},
        "paypal_fee": {"currency_code": "EUR", "value": "1.55"},
        "net_amount": {"currency_code": "EUR", "value": "38.45"},
        "total_refunded_amount": {"currency_code": "EUR", "value": "40.00"},
    }
    assert rest.json()["seller_payable_breakdown"]["paypal_fee"]["value"] == "2.33"
    assert rest.json()["seller_payable_breakdown"]["total_refunded_amount"]["value"] == "100.00"
    up = [link["href"] for link in rest.json()["links"] if link["rel"] == "up"]
    assert up == [f"http://testserver/sandbox/paypal/v2/payments/captures/{capture.object_id}"]
    assert paypal.get(f"/v2/payments/captures/{capture.object_id}").json()["status"] == "REFUNDED"
    assert paypal_response_problems("GET", "/v2/payments/refunds/X", 200, rest.json()) == []


def test_a_repeated_refund_request_id_gets_the_first_answer_and_refunds_once(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)
    body = {"amount": {"currency_code": "EUR", "value": "10.00"}}

    # when
    first = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund", body, **{"PayPal-Request-Id": "same"})
    again = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund", body, **{"PayPal-Request-Id": "same"})

    # then
    assert first.json()["id"] == again.json()["id"]
    assert PayPalTransaction.objects.filter(event_code="T1107").count() == 1


def test_a_refund_over_what_is_left_is_refused(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)
    paypal_refund_create(capture.object_id, amount=Decimal("60.00"), at=NOON, notify=False)

    # when
    response = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund",
                           {"amount": {"currency_code": "EUR", "value": "60.00"}})

    # then
    assert response.status_code == 422
    assert response.json()["details"][0]["issue"] == "REFUND_AMOUNT_EXCEEDED"
    assert PayPalTransaction.objects.filter(event_code="T1107").count() == 1


def test_a_request_body_that_breaks_the_openapi_file_is_refused_with_the_field(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)

    # when
    response = paypal.post(f"/v2/payments/captures/{capture.object_id}/refund",
                           {"amount": {"currency_code": "EUR", "value": 10}, "reason": "x"})

    # then
    assert response.status_code == 400
    body = response.json()
    assert body["name"] == "INVALID_REQUEST"
    assert [detail["description"] for detail in body["details"]] == [
        "reason: unknown property", "amount.value: 10 is not of type string",
    ]
    assert PayPalTransaction.objects.filter(event_code="T1107").count() == 0


def _search(paypal, start: str, end: str, **query):
    return paypal.get("/v1/reporting/transactions",
                      {"start_date": start, "end_date": end, "fields": "all", **query})


def test_transaction_search_lists_captures_and_refunds_with_fees_and_payer(paypal):
    # given
    capture = paypal_capture_create(amount=Decimal("100.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)
    refund = paypal_refund_create(capture.object_id, amount=Decimal("40.00"), at=NOON + timedelta(hours=1),
                                  notify=False)

    # when
    with time_machine.travel(NOON + timedelta(hours=5), tick=False):
        response = _search(paypal, "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z")

    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["total_items"], body["total_pages"], body["page"]) == (2, 1, 1)
    rows = [detail["transaction_info"] for detail in body["transaction_details"]]
    assert [(row["transaction_id"], row["transaction_event_code"], row["transaction_amount"]["value"],
             row["fee_amount"]["value"]) for row in rows] == [
        (capture.object_id, "T0006", "100.00", "-3.88"), (refund.object_id, "T1107", "-40.00", "1.55"),
    ]
    assert rows[1]["paypal_reference_id"] == capture.object_id
    assert body["transaction_details"][0]["payer_info"]["account_id"] == "QYR5Z8XDVJNXQ"
    assert rows[0]["transaction_initiation_date"] == "2026-03-02T12:00:00+0000"
    # PayPal writes "+0000" in these rows (its documented samples do), where its own schema wants "+00:00".
    assert [problem for problem in paypal_response_problems("GET", "/v1/reporting/transactions", 200, body)
            if "+0000' does not match" not in problem] == []


def test_transaction_search_refuses_a_range_over_31_days(paypal):
    # when
    response = _search(paypal, "2026-01-01T00:00:00Z", "2026-02-01T00:00:01Z")

    # then
    assert response.status_code == 400
    assert response.json()["name"] == "INVALID_REQUEST"
    assert "The maximum supported range is 31 days" in response.json()["details"][0]["description"]


def test_transaction_search_takes_exactly_31_days(paypal):
    # when
    response = _search(paypal, "2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z")

    # then
    assert response.status_code == 200


def test_transaction_search_refuses_an_offset_without_a_colon_as_the_openapi_file_does(paypal):
    # when
    response = _search(paypal, "2026-01-01T00:00:00-0700", "2026-01-02T00:00:00Z")

    # then
    assert response.status_code == 400
    assert response.json()["details"][0]["field"] == "start_date"


def test_transaction_search_shows_a_transaction_only_once_it_is_published(paypal):
    # given
    paypal_sandbox_configure(publication_delay=timedelta(hours=3))
    paypal_capture_create(amount=Decimal("10.00"), currency="EUR", payer=BUYER, at=NOON, notify=False)

    # when
    with time_machine.travel(NOON + timedelta(hours=2, minutes=59), tick=False):
        early = _search(paypal, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z").json()
    with time_machine.travel(NOON + timedelta(hours=3), tick=False):
        published = _search(paypal, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z").json()

    # then
    assert (early["total_items"], early["last_refreshed_datetime"]) == (0, "2026-03-02T11:59:00+0000")
    assert (published["total_items"], published["last_refreshed_datetime"]) == (1, "2026-03-02T12:00:00+0000")


def test_transaction_search_says_how_far_it_has_published_and_serves_the_range_to_there(paypal):
    # given
    paypal_sandbox_configure(publication_delay=timedelta(hours=3))

    # when
    with time_machine.travel(NOON, tick=False):
        answer = _search(paypal, "2026-03-02T06:00:00Z", "2026-03-02T12:00:00Z").json()

    # then
    assert (answer["start_date"], answer["end_date"], answer["last_refreshed_datetime"]) == (
        "2026-03-02T06:00:00+0000", "2026-03-02T09:00:00+0000", "2026-03-02T09:00:00+0000")


def test_transaction_search_refuses_a_start_after_what_it_has_published(paypal):
    # given
    paypal_sandbox_configure(publication_delay=timedelta(hours=3))

    # when
    with time_machine.travel(NOON, tick=False):
        response = _search(paypal, "2026-03-02T09:00:01Z", "2026-03-02T12:00:00Z")

    # then
    assert response.status_code == 400
    assert (response.json()["name"], response.json()["message"]) == (
        "INVALID_REQUEST", "Data for the given start date is not available.")


def test_transaction_search_answers_resultset_too_large_instead_of_cutting(paypal):
    # given
    paypal_sandbox_configure(search_result_limit=2)
    for minute in range(3):
        paypal_capture_create(amount=Decimal("10.00"), currency="EUR", payer=BUYER,
                              at=NOON + timedelta(minutes=minute), notify=False)

    # when
    with time_machine.travel(NOON + timedelta(hours=1), tick=False):
        response = _search(paypal, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z")

    # then
    assert response.status_code == 400
    assert response.json()["name"] == "RESULTSET_TOO_LARGE"


def test_transaction_search_pages(paypal):
    # given
    for minute in range(5):
        paypal_capture_create(amount=Decimal("10.00"), currency="EUR", payer=BUYER,
                              at=NOON + timedelta(minutes=minute), notify=False)

    # when
    with time_machine.travel(NOON + timedelta(hours=1), tick=False):
        pages = [_search(paypal, "2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", page_size="2", page=str(page)).json()
                 for page in (1, 2, 3)]

    # then
    assert [len(page["transaction_details"]) for page in pages] == [2, 2, 1]
    assert {page["total_pages"] for page in pages} == {3}


def test_an_invoice_is_created_as_a_draft_sent_and_found_by_creation_date(paypal):
    # given
    created = paypal.post("/v2/invoicing/invoices", {
        "detail": {"currency_code": "EUR", "invoice_number": "PP-7"},
        "primary_recipients": [{"billing_info": {"email_address": "info@helsinki-trail.example"}}],
        "items": [{"name": "Trail day", "quantity": "2", "unit_amount": {"currency_code": "EUR", "value": "85.00"}}],
    })
    invoice_id = created.json()["id"]

    # when
    sent = paypal.post(f"/v2/invoicing/invoices/{invoice_id}/send", {"send_to_recipient": True})
    found = paypal.post("/v2/invoicing/search-invoices",
                        {"creation_date_range": {"start": "2020-01-01T00:00:00Z", "end": "2030-01-01T00:00:00Z"}},
                        )

    # then
    assert (created.status_code, sent.status_code, found.status_code) == (201, 200, 200)
    invoice = paypal.get(f"/v2/invoicing/invoices/{invoice_id}").json()
    assert (invoice["status"], invoice["amount"]["value"], invoice["due_amount"]["value"]) == ("UNPAID", "170.00",
                                                                                               "170.00")
    assert [item["id"] for item in found.json()["items"]] == [invoice_id]
    assert paypal_response_problems("GET", f"/v2/invoicing/invoices/{invoice_id}", 200, invoice) == []
    assert list(PayPalWebhookEvent.objects.values_list("event_type", flat=True)) == [
        "INVOICING.INVOICE.CREATED", "INVOICING.INVOICE.UPDATED",
    ]


def test_the_signing_certificate_is_served_as_pem(paypal_app, client):
    # given
    from sandbox.paypal_webhooks import paypal_certificate_ensure

    certificate = paypal_certificate_ensure()

    # when
    response = client.get(f"{BASE}/certs/{certificate.cert_id}")

    # then
    assert response.status_code == 200
    assert response.content.decode() == certificate.certificate_pem
    assert response.content.startswith(b"-----BEGIN CERTIFICATE-----")

def test_the_sandbox_search_row_carries_only_the_collections_fields_names():
    # given
    invoice = {"id": "INV2-1", "items": [{"name": "Tent"}], "payments": {"paid_amount": {}}, "refunds": {},
               "detail": {"attachments": [{"id": "a"}], "currency_code": "EUR"}, "additional_recipients": ["x"]}

    # then
    assert paypal_invoice_search_row(invoice, None) == {"id": "INV2-1", "detail": {"currency_code": "EUR"}}
    assert paypal_invoice_search_row(invoice, ["items", "refunds"]) == {
        "id": "INV2-1", "items": [{"name": "Tent"}], "refunds": {}, "detail": {"currency_code": "EUR"}}
    assert paypal_invoice_search_row(invoice, "payments,attachments")["payments"] == {"paid_amount": {}}
