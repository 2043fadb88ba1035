"""The Square client: Square-Version and the bearer token on every call, the base URL of the connection, lists
followed cursor by cursor with the original query, SearchOrders by ten locations, errors in Square's words."""
import json
from datetime import UTC, datetime
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from connectors.errors import AuthenticationError, PermanentError, TransientError
from connectors.models import Connection
from connectors.square.client import (
    SQUARE_VERSION,
    SquareApi,
    SquareInvalidCursor,
    SquarePermanentError,
    SquareTransientError,
    square_datetime,
    square_ping,
    square_time,
)
from tests.factories import ConnectionFactory, IntegrationFactory

OURS = "http://sandbox.test/sandbox/square"
START = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
UPDATED = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)


@pytest.fixture
def square_connection(db):
    return ConnectionFactory(system="square", base_url=OURS, credentials={"access_token": "EAAA-personal-s3cr3t"})


@pytest.fixture
def mocked(settings):
    settings.HTTP_BACKOFF_BASE_SECONDS = 0
    settings.HTTP_BACKOFF_MAX_SECONDS = 0
    with responses.RequestsMock() as mock:
        yield mock


def api(connection, **settings) -> SquareApi:
    return SquareApi(connection, settings=settings, sleep=lambda seconds: None)


def query(call) -> dict:
    return {key: values[0] for key, values in parse_qs(urlsplit(call.request.url).query).items()}


def payment(number: int) -> dict:
    return {"id": f"pay-{number}", "status": "COMPLETED", "amount_money": {"amount": 1000 + number, "currency": "NOK"}}


def test_every_call_names_square_version_and_the_bearer_token_at_the_connections_base_url(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/payments/pay-1", json={"payment": payment(1)})

    # when
    found = api(square_connection).payment("pay-1")

    # then
    assert found["id"] == "pay-1"
    sent = mocked.calls[0].request
    assert sent.headers["Square-Version"] == SQUARE_VERSION == "2025-08-20"
    assert sent.headers["Authorization"] == "Bearer EAAA-personal-s3cr3t"


def test_the_square_version_is_the_integrations_setting(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    client = api(square_connection, square_version="2026-01-22")
    client.locations()

    # then
    assert client.version == "2026-01-22"
    assert mocked.calls[0].request.headers["Square-Version"] == "2026-01-22"


def test_a_connection_without_base_url_speaks_to_square_production(db, mocked):
    # given
    connection = ConnectionFactory(system="square", base_url="", credentials={"access_token": "EAAA-x"})
    mocked.add(responses.GET, "https://connect.squareup.com/v2/locations", json={"locations": [{"id": "L1"}]})

    # then
    assert api(connection).locations() == [{"id": "L1"}]


def test_numbers_are_read_as_decimal_never_float(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/orders/o-1",
               body='{"order": {"id": "o-1", "taxes": [{"percentage": "25.0", "rate": 12.5}]}}',
               content_type="application/json")

    # when
    order = api(square_connection).order("o-1")

    # then
    assert order["taxes"][0]["rate"] == Decimal("12.5") and isinstance(order["taxes"][0]["rate"], Decimal)


def test_a_missing_object_is_none(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/refunds/nope", status=404, json={"errors": [
        {"category": "INVALID_REQUEST_ERROR", "code": "NOT_FOUND", "detail": "Could not find refund"}]})

    # then
    assert api(square_connection).refund("nope") is None


def test_payments_of_one_location_follow_the_cursor_with_the_original_query_page_by_page(square_connection, mocked):
    # given: 13 payments, 5 a page
    pages = [[payment(n) for n in range(start, min(start + 5, 13))] for start in (0, 5, 10)]
    mocked.add(responses.GET, f"{OURS}/v2/payments", json={"payments": pages[0], "cursor": "c1"})
    mocked.add(responses.GET, f"{OURS}/v2/payments", json={"payments": pages[1], "cursor": "c2"})
    mocked.add(responses.GET, f"{OURS}/v2/payments", json={"payments": pages[2], "cursor": ""})

    # when
    listing = api(square_connection).payments(location_id="L-BERGEN", updated_from=UPDATED, updated_to=None,
                                              begin_time=START, page_size=5)
    first = next(listing)

    # then: streamed (one page asked for the first payment), then every payment once
    assert first["id"] == "pay-0" and len(mocked.calls) == 1
    assert [first["id"], *(found["id"] for found in listing)] == [f"pay-{n}" for n in range(13)]
    asked = [query(call) for call in mocked.calls]
    original = {"location_id": "L-BERGEN", "begin_time": "2026-03-01T00:00:00.000Z",
                "updated_at_begin_time": "2026-03-05T09:30:00.000Z", "sort_field": "UPDATED_AT",
                "sort_order": "ASC", "limit": "5"}
    assert asked == [original, {**original, "cursor": "c1"}, {**original, "cursor": "c2"}]


def test_refunds_of_all_locations_with_an_end_and_a_limit_never_above_100(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/refunds", json={"refunds": [{"id": "r-1"}]})

    # when
    found = list(api(square_connection).refunds(updated_from=UPDATED, updated_to=datetime(2026, 3, 6, tzinfo=UTC),
                                                begin_time=START, page_size=500))

    # then
    assert [refund["id"] for refund in found] == ["r-1"]
    asked = query(mocked.calls[0])
    assert "location_id" not in asked
    assert asked["limit"] == "100" and asked["updated_at_end_time"] == "2026-03-06T00:00:00.000Z"


def test_orders_search_asks_at_most_ten_locations_a_call_sorted_by_the_filtered_field(square_connection, mocked):
    # given: 23 locations → 10 + 10 + 3; the first batch has two pages
    locations = [f"L{n:02}" for n in range(23)]
    mocked.add(responses.POST, f"{OURS}/v2/orders/search", json={"orders": [{"id": "o-1"}], "cursor": "next"})
    mocked.add(responses.POST, f"{OURS}/v2/orders/search", json={"orders": [{"id": "o-2"}]})
    mocked.add(responses.POST, f"{OURS}/v2/orders/search", json={"orders": [{"id": "o-3"}]})
    mocked.add(responses.POST, f"{OURS}/v2/orders/search", json={})

    # when
    found = list(api(square_connection).orders_search(location_ids=locations, updated_from=UPDATED, updated_to=None,
                                                      page_size=5))

    # then
    assert [order["id"] for order in found] == ["o-1", "o-2", "o-3"]
    bodies = [json.loads(call.request.body) for call in mocked.calls]
    assert [len(body["location_ids"]) for body in bodies] == [10, 10, 10, 3]
    assert bodies[1] == {**bodies[0], "cursor": "next"}
    assert bodies[0]["query"] == {"filter": {"date_time_filter": {"updated_at": {
                                      "start_at": "2026-03-05T09:30:00.000Z"}}},
                                  "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"}}
    assert bodies[2]["location_ids"] == locations[10:20] and "cursor" not in bodies[2]


def test_customers_by_reference_search_exactly(square_connection, mocked):
    # given
    mocked.add(responses.POST, f"{OURS}/v2/customers/search",
               json={"customers": [{"id": "C1", "reference_id": "10002"}]})

    # when
    found = api(square_connection).customers_by_reference("10002")

    # then
    assert [customer["id"] for customer in found] == ["C1"]
    assert json.loads(mocked.calls[0].request.body) == {"query": {"filter": {"reference_id": {"exact": "10002"}}},
                                                        "limit": 100}


def test_vendors_and_invoices_follow_their_cursors(square_connection, mocked):
    # given
    mocked.add(responses.POST, f"{OURS}/v2/vendors/search", json={"vendors": [{"id": "V1"}], "cursor": "v2"})
    mocked.add(responses.POST, f"{OURS}/v2/vendors/search", json={"vendors": [{"id": "V2"}]})
    mocked.add(responses.GET, f"{OURS}/v2/invoices", json={"invoices": [{"id": "I1"}], "cursor": "i2"})
    mocked.add(responses.GET, f"{OURS}/v2/invoices", json={"invoices": [{"id": "I2"}]})
    client = api(square_connection)

    # then
    assert [vendor["id"] for vendor in client.vendors()] == ["V1", "V2"]
    assert [invoice["id"] for invoice in client.invoices(location_id="L1", page_size=5)] == ["I1", "I2"]
    assert json.loads(mocked.calls[1].request.body) == {"cursor": "v2"}
    assert query(mocked.calls[3]) == {"location_id": "L1", "limit": "5", "cursor": "i2"}


def test_a_refusal_names_squares_code_field_and_detail(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/payments", status=400, json={"errors": [
        {"category": "INVALID_REQUEST_ERROR", "code": "INVALID_TIME_RANGE", "field": "begin_time",
         "detail": "begin_time must be before end_time"}]})

    # when
    with pytest.raises(SquarePermanentError) as refused:
        list(api(square_connection).payments(location_id="L1", updated_from=UPDATED, updated_to=None,
                                             begin_time=START))

    # then
    assert isinstance(refused.value, PermanentError) and refused.value.status_code == 400
    assert "INVALID_TIME_RANGE (begin_time): begin_time must be before end_time" in str(refused.value)
    assert refused.value.codes == ["INVALID_TIME_RANGE"]


def test_an_invalid_cursor_is_a_permanent_error_of_its_own_for_the_caller_to_restart(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/refunds", json={"refunds": [{"id": "r-1"}], "cursor": "stale"})
    mocked.add(responses.GET, f"{OURS}/v2/refunds", status=400, json={"errors": [
        {"category": "INVALID_REQUEST_ERROR", "code": "INVALID_CURSOR", "detail": "The cursor is invalid"}]})

    # then
    with pytest.raises(SquareInvalidCursor, match="INVALID_CURSOR"):
        list(api(square_connection).refunds(updated_from=UPDATED, updated_to=None, begin_time=START))


def test_rate_limits_and_server_errors_are_retried_then_transient(square_connection, mocked, settings):
    # given: 429 then 200; then 500 on every attempt
    settings.HTTP_MAX_RETRIES = 2
    rate_limited = {"errors": [{"category": "RATE_LIMIT_ERROR", "code": "RATE_LIMITED"}]}
    mocked.add(responses.GET, f"{OURS}/v2/locations", status=429, json=rate_limited)
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": [{"id": "L1"}]})
    mocked.add(responses.GET, f"{OURS}/v2/payments/pay-9", status=500, json={"errors": [
        {"category": "API_ERROR", "code": "INTERNAL_SERVER_ERROR"}]})
    client = api(square_connection)

    # then
    assert client.locations() == [{"id": "L1"}]
    with pytest.raises(SquareTransientError, match="INTERNAL_SERVER_ERROR") as failed:
        client.payment("pay-9")
    assert isinstance(failed.value, TransientError)
    assert len([call for call in mocked.calls if call.request.url.endswith("pay-9")]) == 3


def test_a_personal_token_refused_is_not_renewed_and_says_replace_it(square_connection, mocked):
    # given
    mocked.add(responses.GET, f"{OURS}/v2/locations", status=401, json={"errors": [
        {"category": "AUTHENTICATION_ERROR", "code": "UNAUTHORIZED",
         "detail": "This request could not be authorized."}]})

    # when
    with pytest.raises(AuthenticationError, match="the access token was refused: replace it"):
        api(square_connection).locations()

    # then: one call, no token request; the connection says why
    assert len(mocked.calls) == 1
    assert Connection.objects.get(pk=square_connection.pk).authorization_problem == \
        "the access token was refused: replace it"


def test_ping_reads_the_token_status_and_the_locations(square_connection, mocked):
    # given
    IntegrationFactory(tenant=square_connection.tenant, kind="square", partner_connection=square_connection,
                       settings={"square_version": "2025-08-20"})
    mocked.add(responses.POST, f"{OURS}/oauth2/token/status",
               json={"merchant_id": "MLEFBHHSJGVHD", "expires_at": "2026-04-01T10:00:00Z", "scopes": []})
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": [
        {"id": "L1", "status": "ACTIVE"}, {"id": "L2", "status": "INACTIVE"}]})

    # when
    said = square_ping(square_connection)

    # then
    assert said.startswith("token OK (expires 2026-04-01 10:00 UTC), merchant MLEFBHHSJGVHD, 2 location(s), 1 active")
    assert all(call.request.headers["Square-Version"] == "2025-08-20" for call in mocked.calls)
    assert not mocked.calls[0].request.body  # RetrieveTokenStatus takes no body


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-02T10:15:00Z", datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
    ("2026-03-02T11:15:00+01:00", datetime(2026, 3, 2, 10, 15, tzinfo=UTC)),
    ("2022-07-13T20:30:59.037339943Z", datetime(2022, 7, 13, 20, 30, 59, 37339, tzinfo=UTC)),
    ("2026-03-02T10:15:00.5Z", datetime(2026, 3, 2, 10, 15, 0, 500000, tzinfo=UTC)),
    ("", None), ("yesterday", None), (None, None),
])
def test_square_times_are_read_as_utc(text, expected):
    assert square_time(text) == expected


def test_square_datetime_is_utc_with_z():
    assert square_datetime(datetime(2026, 3, 2, 11, 15, tzinfo=UTC)) == "2026-03-02T11:15:00.000Z"


def test_square_registers_its_verifier_ping_and_the_contracts_settings():
    # given
    from connectors import registry
    from connectors.services import integration_settings_clean
    from connectors.square.webhooks import SquareWebhookVerifier

    spec = registry.kind_spec("square")

    # then
    assert isinstance(spec.verifier, SquareWebhookVerifier) and spec.ping is square_ping
    assert integration_settings_clean("square", {}) == {
        "square_version": "2025-08-20", "webhook_notification_url": None, "token_renew_after_days": 7,
        "page_size": 100, "begin_time": None, "fee_wait_minutes": 120, "refund_wait_hours": 72,
        "create_customers": False, "customer_class": None, "supplier_class": None,
    }
    assert {"access_token"} == set(spec.required_credentials)
    assert {"expires_at", "refresh_token", "client_id", "client_secret", "webhook_signature_key",
            "webhook_signature_keys"} <= set(spec.optional_credentials)
