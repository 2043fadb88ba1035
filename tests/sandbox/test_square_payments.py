"""The Square emulator's requests, locations, payments and refunds: Square-Version, tokens, the api.json check, the
list traps of docs/square.md §5 (main-location default, all-locations refunds, limit, cursors) and answers that fit
the spec's response schemas."""
from datetime import timedelta

import pytest

from sandbox import square_api
from sandbox.models import SquareObject, SquareRequest
from sandbox.square_openapi import square_response_problems
from tests.sandbox.square_helpers import SquareSession


@pytest.fixture
def merchant(db):
    return square_api.square_merchant_create(locations=(("Oslo Sentrum", "ACTIVE"), ("Bergen", "ACTIVE"),
                                                        ("Web shop", "ACTIVE"), ("Trondheim", "INACTIVE")))


@pytest.fixture
def square(client, merchant) -> SquareSession:
    return SquareSession(client, square_api.square_personal_token(merchant))


def _location_ids(merchant) -> dict[str, str]:
    return {name: body["id"] for name, body in square_api.square_locations(merchant).items()}


def test_a_request_without_square_version_is_refused_and_logged(square):
    # when
    response = square.get("/v2/locations", version=None)

    # then
    assert response.status_code == 400
    assert response.json() == {"errors": [{"category": "INVALID_REQUEST_ERROR", "code": "INVALID_SQUARE_VERSION_FORMAT",
                                           "detail": "The Square-Version header is required by the sandbox "
                                                     "(YYYY-MM-DD).", "field": "Square-Version"}]}
    logged = SquareRequest.objects.get()
    assert (logged.method, logged.path, logged.status, logged.square_version) == ("GET", "/v2/locations", 400, "")


def test_a_malformed_square_version_is_refused(square):
    # when
    response = square.get("/v2/locations", version="2025-8-20")

    # then
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "INVALID_SQUARE_VERSION_FORMAT"


def test_an_answer_carries_the_square_version_and_the_request_is_logged_as_fitting_the_spec(square, merchant):
    # when
    response = square.get("/v2/locations")

    # then
    assert response.status_code == 200
    assert response["Square-Version"] == "2025-08-20"
    logged = SquareRequest.objects.get()
    assert (logged.merchant, logged.status, logged.square_version, logged.fits_spec) == (merchant, 200, "2025-08-20",
                                                                                        True)


@pytest.mark.parametrize(("authorization", "code"), [
    (None, "UNAUTHORIZED"), ("Bearer EAAAnot-a-token", "UNAUTHORIZED"), ("Basic abc", "UNAUTHORIZED"),
])
def test_a_missing_or_unknown_token_is_401_unauthorized(client, merchant, authorization, code):
    # given
    square = SquareSession(client, "")

    # when
    response = square.get("/v2/locations", authorization=authorization)

    # then
    assert response.status_code == 401
    assert response.json()["errors"][0] == {"category": "AUTHENTICATION_ERROR", "code": code,
                                            "detail": response.json()["errors"][0]["detail"]}


def test_locations_are_all_listed_alphabetically_inactive_included_and_main_is_retrievable(square, merchant):
    # when
    listed = square.get("/v2/locations")
    main = square.get("/v2/locations/main")

    # then
    assert [(body["name"], body["status"]) for body in listed.json()["locations"]] == [
        ("Bergen", "ACTIVE"), ("Oslo Sentrum", "ACTIVE"), ("Trondheim", "INACTIVE"), ("Web shop", "ACTIVE")]
    assert main.json()["location"]["name"] == "Oslo Sentrum"
    assert {body["currency"] for body in listed.json()["locations"]} == {"NOK"}
    assert square_response_problems("GET", "/v2/locations", 200, listed.json()) == []
    assert square_response_problems("GET", "/v2/locations/main", 200, main.json()) == []


def test_list_payments_answers_only_the_main_location_unless_one_is_named(square, merchant):
    # given
    ids = _location_ids(merchant)
    oslo = square_api.square_payment_create(merchant, ids["Oslo Sentrum"], 10000)
    bergen = square_api.square_payment_create(merchant, ids["Bergen"], 20000, tip=1500)

    # when
    default = square.get("/v2/payments")
    at_bergen = square.get("/v2/payments", {"location_id": ids["Bergen"]})

    # then
    assert [body["id"] for body in default.json()["payments"]] == [oslo["id"]]
    assert [body["id"] for body in at_bergen.json()["payments"]] == [bergen["id"]]
    payment = at_bergen.json()["payments"][0]
    assert (payment["amount_money"], payment["tip_money"], payment["total_money"]) == (
        {"amount": 20000, "currency": "NOK"}, {"amount": 1500, "currency": "NOK"}, {"amount": 21500, "currency": "NOK"})
    assert square_response_problems("GET", "/v2/payments", 200, at_bergen.json()) == []


def test_a_card_payment_gets_its_fee_later_with_a_new_updated_at_and_version(square, merchant):
    # given
    payment = square_api.square_payment_create(merchant, None, 10000, tip=1000)
    square_api.square_clock_advance(merchant, timedelta(seconds=10))

    # when
    updated = square_api.square_payment_fee_add(merchant, payment["id"])
    read = square.get(f"/v2/payments/{payment['id']}").json()["payment"]

    # then
    assert "processing_fee" not in payment
    assert read["processing_fee"] == [{"effective_at": updated["processing_fee"][0]["effective_at"], "type": "INITIAL",
                                       "amount_money": {"amount": 286, "currency": "NOK"}}]
    assert read["updated_at"] > payment["updated_at"]
    assert read["version_token"] != payment["version_token"]
    assert square_response_problems("GET", "/v2/payments/{payment_id}", 200, {"payment": read}) == []


def test_a_cash_payment_without_the_switch_carries_no_fee_and_a_card_one_has_it_at_once(merchant):
    # when
    cash = square_api.square_payment_create(merchant, None, 10000, source_type="CASH", fee_later=False)
    card = square_api.square_payment_create(merchant, None, 10000, fee=199, fee_later=False)

    # then
    assert "processing_fee" not in cash
    assert cash["cash_details"] == {"buyer_supplied_money": {"amount": 10000, "currency": "NOK"},
                                    "change_back_money": {"amount": 0, "currency": "NOK"}}
    assert [fee["amount_money"]["amount"] for fee in card["processing_fee"]] == [199]


def test_limit_above_100_is_ignored_and_100_is_used(square, merchant):
    # given
    for _ in range(101):
        square_api.square_payment_create(merchant, None, 1000, fee_later=False)

    # when
    first = square.get("/v2/payments", {"limit": "500"}).json()

    # then
    assert len(first["payments"]) == 100
    assert first["cursor"]


def test_a_cursor_walks_every_payment_once_in_updated_order(square, merchant):
    # given
    made = []
    for amount in range(13):
        made.append(square_api.square_payment_create(merchant, None, 1000 + amount)["id"])
        square_api.square_clock_advance(merchant, timedelta(seconds=1))
    query = {"sort_field": "UPDATED_AT", "sort_order": "ASC", "limit": "5"}

    # when
    seen, pages = [], 0
    cursor = None
    while True:
        answer = square.get("/v2/payments", {**query, **({"cursor": cursor} if cursor else {})}).json()
        pages += 1
        seen += [body["id"] for body in answer["payments"]]
        cursor = answer.get("cursor")
        if not cursor:
            break

    # then
    assert (seen, pages) == (made, 3)


def test_a_cursor_with_a_changed_query_is_refused(square, merchant):
    # given
    for _ in range(3):
        square_api.square_payment_create(merchant, None, 1000)
    cursor = square.get("/v2/payments", {"limit": "2"}).json()["cursor"]

    # when
    changed = square.get("/v2/payments", {"limit": "2", "sort_order": "ASC", "cursor": cursor})
    garbage = square.get("/v2/payments", {"limit": "2", "cursor": "not-a-cursor"})

    # then
    assert changed.status_code == garbage.status_code == 400
    assert changed.json()["errors"][0]["code"] == garbage.json()["errors"][0]["code"] == "INVALID_CURSOR"


def test_payments_are_filtered_on_created_at_and_updated_at(square, merchant):
    # given
    old = square_api.square_payment_create(merchant, None, 1000)
    square_api.square_clock_advance(merchant, timedelta(hours=2))
    new = square_api.square_payment_create(merchant, None, 2000)
    square_api.square_payment_fee_add(merchant, old["id"])
    middle = square_api.square_time(square_api.square_now(merchant) - timedelta(hours=1))

    # when
    created_since = square.get("/v2/payments", {"begin_time": middle}).json()["payments"]
    updated_since = square.get("/v2/payments", {"updated_at_begin_time": middle}).json()["payments"]

    # then
    assert [body["id"] for body in created_since] == [new["id"]]
    assert sorted(body["id"] for body in updated_since) == sorted([old["id"], new["id"]])


def test_payments_older_than_a_year_are_not_listed_without_begin_time(square, merchant):
    # given
    old = square_api.square_payment_create(merchant, None, 1000)
    square_api.square_clock_advance(merchant, timedelta(days=366))

    # when
    default = square.get("/v2/payments").json()
    explicit = square.get("/v2/payments", {"begin_time": "2000-01-01T00:00:00Z"}).json()

    # then
    assert default == {}
    assert [body["id"] for body in explicit["payments"]] == [old["id"]]


def test_a_new_payment_is_listed_only_after_the_list_delay_but_retrieved_at_once(square, merchant):
    # given
    merchant.list_delay_seconds = 5
    merchant.save()
    payment = square_api.square_payment_create(merchant, None, 1000)

    # when
    before = square.get("/v2/payments").json()
    retrieved = square.get(f"/v2/payments/{payment['id']}")
    square_api.square_clock_advance(merchant, timedelta(seconds=6))
    after = square.get("/v2/payments").json()

    # then
    assert before == {}
    assert retrieved.status_code == 200
    assert [body["id"] for body in after["payments"]] == [payment["id"]]


def test_an_unknown_payment_is_404_not_found(square):
    # when
    response = square.get("/v2/payments/nope")

    # then
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "NOT_FOUND"


def test_an_undeclared_query_parameter_or_a_bad_enum_is_refused_and_logged_as_not_fitting(square):
    # when
    unknown = square.get("/v2/payments", {"updated_since": "2026-01-01T00:00:00Z"})
    bad_enum = square.get("/v2/payments", {"sort_field": "AMOUNT"})

    # then
    assert (unknown.status_code, unknown.json()["errors"][0]["code"]) == (400, "UNKNOWN_QUERY_PARAMETER")
    assert (bad_enum.status_code, bad_enum.json()["errors"][0]["code"]) == (400, "INVALID_ENUM_VALUE")
    assert [row.fits_spec for row in SquareRequest.objects.all()] == [False, False]


def test_refunds_are_listed_for_all_locations_by_default_and_update_their_payment(square, merchant):
    # given
    ids = _location_ids(merchant)
    oslo = square_api.square_payment_create(merchant, ids["Oslo Sentrum"], 10000, fee_later=False)
    bergen = square_api.square_payment_create(merchant, ids["Bergen"], 20000, fee_later=False)
    first = square_api.square_refund_create(merchant, oslo["id"], 4000)
    second = square_api.square_refund_create(merchant, bergen["id"], 20000, fee_returned=520)

    # when
    listed = square.get("/v2/refunds", {"sort_order": "ASC"})
    at_bergen = square.get("/v2/refunds", {"location_id": ids["Bergen"]})
    payment = square.get(f"/v2/payments/{oslo['id']}").json()["payment"]

    # then
    assert [body["id"] for body in listed.json()["refunds"]] == [first["id"], second["id"]]
    assert [body["id"] for body in at_bergen.json()["refunds"]] == [second["id"]]
    assert (payment["refunded_money"], payment["refund_ids"]) == ({"amount": 4000, "currency": "NOK"}, [first["id"]])
    assert second["processing_fee"][0]["amount_money"] == {"amount": -520, "currency": "NOK"}
    assert (second["location_id"], second["payment_id"], second["status"]) == (ids["Bergen"], bergen["id"],
                                                                               "COMPLETED")
    assert square_response_problems("GET", "/v2/refunds", 200, listed.json()) == []


def test_the_refunds_source_type_filter_is_the_source_type_of_the_refunds_payment(square, merchant):
    # given: a card sale refunded in cash (the refund's destination_type CASH), and a cash sale refunded
    card = square_api.square_payment_create(merchant, None, 10000, fee_later=False)
    cash = square_api.square_payment_create(merchant, None, 5000, source_type="CASH", fee_later=False)
    in_cash = square_api.square_refund_create(merchant, card["id"], 1000)
    SquareObject.objects.filter(square_id=in_cash["id"]).update(body={
        **SquareObject.objects.get(square_id=in_cash["id"]).body, "destination_type": "CASH"})
    of_cash = square_api.square_refund_create(merchant, cash["id"], 500)

    # when
    card_refunds = square.get("/v2/refunds", {"source_type": "CARD"}).json()["refunds"]
    cash_refunds = square.get("/v2/refunds", {"source_type": "CASH"}).json()["refunds"]

    # then: by the payment's source type (spec ListPaymentRefunds.source_type)
    assert [body["id"] for body in card_refunds] == [in_cash["id"]]
    assert [body["id"] for body in cash_refunds] == [of_cash["id"]]


def test_a_refund_beyond_what_is_left_is_refused(merchant):
    # given
    payment = square_api.square_payment_create(merchant, None, 10000)
    square_api.square_refund_create(merchant, payment["id"], 6000)

    # when
    with pytest.raises(square_api.SquareApiError) as raised:
        square_api.square_refund_create(merchant, payment["id"], 4001)

    # then
    assert raised.value.code == "REFUND_AMOUNT_INVALID"


def test_a_pending_refund_that_fails_gives_the_amount_back_to_the_payment(merchant):
    # given
    payment = square_api.square_payment_create(merchant, None, 10000)
    refund = square_api.square_refund_create(merchant, payment["id"], 3000, status="PENDING")

    # when
    failed = square_api.square_refund_complete(merchant, refund["id"], status="FAILED")

    # then
    assert failed["status"] == "FAILED"
    assert square_api.square_object(merchant, "payment", payment["id"])["refunded_money"]["amount"] == 0


def test_a_fault_answers_500_then_429_then_the_call_works(square):
    # given
    square_api.square_fault_set("/v2/locations", status=500, times=1)
    square_api.square_fault_set("/v2/locations", status=429, times=1)

    # when
    statuses = [square.get("/v2/locations") for _ in range(3)]

    # then
    assert [response.status_code for response in statuses] == [500, 429, 200]
    assert statuses[0].json()["errors"][0]["code"] == "INTERNAL_SERVER_ERROR"
    assert statuses[1].json()["errors"][0] == {"category": "RATE_LIMIT_ERROR", "code": "RATE_LIMITED",
                                               "detail": statuses[1].json()["errors"][0]["detail"]}
    assert "Retry-After" not in statuses[1]


def test_a_path_the_sandbox_does_not_emulate_is_a_logged_404_in_squares_shape(square):
    # when
    catalog = square.get("/v2/catalog/list")
    nowhere = square.get("/v9/nothing")

    # then
    assert (catalog.status_code, catalog.json()["errors"][0]["code"]) == (404, "NOT_FOUND")
    assert (nowhere.status_code, nowhere.json()["errors"][0]["code"]) == (404, "NOT_FOUND")
    assert [(row.path, row.status, row.fits_spec) for row in SquareRequest.objects.all()] == [
        ("/v2/catalog/list", 404, True), ("/v9/nothing", 404, False)]


def test_a_fault_after_two_calls_hits_the_third_page_only(square, merchant):
    # given
    square_api.square_fault_set("/v2/payments", status=500, after=2)

    # when
    statuses = [square.get("/v2/payments").status_code for _ in range(4)]

    # then
    assert statuses == [200, 200, 500, 200]
