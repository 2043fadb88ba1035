"""The PayPal client: client-credentials token cached on the connection, errors in PayPal's words, Transaction Search
in windows of at most 31 days with RESULTSET_TOO_LARGE split, captures, refunds and invoices."""
from base64 import b64encode
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import time_machine
from django.db import connection as db_connection

from connectors.errors import AuthenticationError, PermanentError
from connectors.models import Connection, HttpExchange
from connectors.paypal.client import (
    PayPalAuthenticationError,
    PayPalClient,
    PayPalPermanentError,
    ResultSetTooLarge,
    SearchHorizon,
    paypal_datetime,
    paypal_time,
)
from tests.factories import ConnectionFactory
from tests.paypal.conftest import payload

API = "https://api-m.paypal.com"
TOKEN_URL = f"{API}/v1/oauth2/token"
SEARCH_URL = f"{API}/v1/reporting/transactions"
NINE = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


@pytest.fixture
def paypal_connection(db):
    return ConnectionFactory(system="paypal", base_url=API, token_url="")


@pytest.fixture
def mocked():
    with responses.RequestsMock() as mock:
        yield mock


def token_reply(mocked, access_token: str = "pp-token-1", expires_in: int = 32400):
    return mocked.add(responses.POST, TOKEN_URL,
                      json={**payload("token.json"), "access_token": access_token, "expires_in": expires_in})


def _api_calls(mocked):
    return [call for call in mocked.calls if not call.request.url.startswith(TOKEN_URL)]


def _token_calls(mocked):
    return [call for call in mocked.calls if call.request.url.startswith(TOKEN_URL)]


def test_the_token_is_fetched_with_basic_client_credentials_and_used_as_bearer(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v2/payments/captures/2GG279541U471931P", json=payload("capture_completed.json"))

    # when
    capture = PayPalClient(paypal_connection).capture_get("2GG279541U471931P")

    # then
    assert capture["id"] == "2GG279541U471931P"
    token_request = _token_calls(mocked)[0].request
    assert token_request.headers["Authorization"] == "Basic " + b64encode(b"pp-client:pp-secret-s3cr3t").decode()
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.body) == {"grant_type": ["client_credentials"]}
    assert _api_calls(mocked)[0].request.headers["Authorization"] == "Bearer pp-token-1"


def test_the_token_is_cached_on_the_connection_encrypted_and_shared_by_a_second_client(paypal_connection, mocked):
    # given
    token_reply(mocked, "pp-token-plain-text")
    mocked.add(responses.GET, f"{API}/v2/payments/refunds/1JU08902781691411", json=payload("refund_partial.json"))
    PayPalClient(paypal_connection).refund_get("1JU08902781691411")

    # when
    PayPalClient(Connection.objects.get(pk=paypal_connection.pk)).refund_get("1JU08902781691411")

    # then
    assert len(_token_calls(mocked)) == 1
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == ["Bearer pp-token-plain-text"] * 2
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM connectors_connection WHERE id = %s", [paypal_connection.pk])
        assert b"pp-token-plain-text" not in bytes(cursor.fetchone()[0])


def test_a_new_token_is_fetched_five_minutes_before_expires_in_runs_out_not_earlier(paypal_connection, mocked):
    # given
    token_reply(mocked, "pp-token-1", expires_in=900)
    token_reply(mocked, "pp-token-2", expires_in=900)
    mocked.add(responses.GET, f"{API}/v2/payments/refunds/R", json=payload("refund_partial.json"))

    with time_machine.travel(NINE, tick=False) as traveller:
        client = PayPalClient(paypal_connection)
        client.refund_get("R")

        # when
        traveller.move_to(NINE + timedelta(minutes=9, seconds=59))
        client.refund_get("R")
        traveller.move_to(NINE + timedelta(minutes=10))
        client.refund_get("R")

    # then
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == [
        "Bearer pp-token-1", "Bearer pp-token-1", "Bearer pp-token-2",
    ]
    assert Connection.objects.get(pk=paypal_connection.pk).token_expires_at == NINE + timedelta(minutes=25)


@pytest.mark.django_db(transaction=True)
def test_the_token_is_fetched_without_holding_sqlite_s_writer_and_under_the_row_lock_on_postgresql(mocked):
    # given
    connection = ConnectionFactory(system="paypal", base_url=API, token_url="")
    seen = []

    def token_answer(request):
        seen.append(db_connection.in_atomic_block)
        return 200, {}, '{"access_token": "pp-token-1", "expires_in": 32400, "token_type": "Bearer"}'

    mocked.add_callback(responses.POST, TOKEN_URL, callback=token_answer)

    # when
    PayPalClient(connection).token()

    # then: SQLite has one writer, never held across the HTTP call; PostgreSQL shares one fetch under a row lock
    assert seen == [db_connection.features.has_select_for_update]
    assert Connection.objects.get(pk=connection.pk).access_token == "pp-token-1"


def test_a_401_fetches_a_new_token_once_and_repeats_the_call(paypal_connection, mocked):
    # given
    token_reply(mocked, "pp-token-1")
    token_reply(mocked, "pp-token-2")
    mocked.add(responses.GET, f"{API}/v2/payments/captures/C", status=401,
               json={"error": "invalid_token", "error_description": "Token signature verification failed"})
    mocked.add(responses.GET, f"{API}/v2/payments/captures/C", json=payload("capture_completed.json"))

    # when
    PayPalClient(paypal_connection).capture_get("C")

    # then
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == [
        "Bearer pp-token-1", "Bearer pp-token-2",
    ]
    assert Connection.objects.get(pk=paypal_connection.pk).access_token == "pp-token-2"


def test_refused_client_credentials_raise_authentication_error_and_store_no_token(paypal_connection, mocked):
    # given
    mocked.add(responses.POST, TOKEN_URL, status=401,
               json={"error": "invalid_client", "error_description": "Client Authentication failed"})

    # when
    with pytest.raises(PayPalAuthenticationError) as raised:
        PayPalClient(paypal_connection).token()

    # then
    assert isinstance(raised.value, AuthenticationError)
    assert raised.value.system_message == "invalid_client Client Authentication failed"
    assert Connection.objects.get(pk=paypal_connection.pk).access_token is None
    exchange = HttpExchange.objects.get()
    assert '"access_token"' not in exchange.response_body and "pp-secret-s3cr3t" not in exchange.request_body


def test_a_refusal_keeps_paypals_name_debug_id_and_issue(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.POST, f"{API}/v2/payments/captures/C/refund", status=422, json={
        "name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be performed.",
        "debug_id": "90b5c8b7a1c3d", "details": [{"issue": "REFUND_AMOUNT_EXCEEDED",
                                                  "description": "The refund amount exceeds what is left."}],
    })

    # when
    with pytest.raises(PayPalPermanentError) as raised:
        PayPalClient(paypal_connection).capture_refund("C", amount="60.00", currency="EUR", request_id="r-1")

    # then
    assert isinstance(raised.value, PermanentError)
    assert (raised.value.name, raised.value.debug_id, raised.value.status_code) == (
        "UNPROCESSABLE_ENTITY", "90b5c8b7a1c3d", 422)
    assert raised.value.system_message == ("UNPROCESSABLE_ENTITY The requested action could not be performed. "
                                           "(REFUND_AMOUNT_EXCEEDED: The refund amount exceeds what is left.)")
    assert mocked.calls[-1].request.headers["PayPal-Request-Id"] == "r-1"


def test_a_missing_object_is_none(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v2/payments/captures/NOPE", status=404,
               json={"name": "RESOURCE_NOT_FOUND", "message": "The specified resource does not exist."})

    # when
    found = PayPalClient(paypal_connection).capture_get("NOPE")

    # then
    assert found is None


def _search_windows(mocked) -> list[tuple[str, str, str]]:
    windows = []
    for call in _api_calls(mocked):
        query = parse_qs(urlsplit(call.request.url).query)
        windows.append((query["start_date"][0], query["end_date"][0], query["page"][0]))
    return windows


def test_transaction_search_reads_every_page_with_all_fields(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page1.json"))
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page2.json"))

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 1, tzinfo=UTC),
                                                              datetime(2026, 3, 5, tzinfo=UTC)))

    # then
    assert [row["transaction_info"]["transaction_id"] for row in rows] == [
        "2GG279541U471931P", "1JU08902781691411", "6HN14583PX8471043",
    ]
    assert _search_windows(mocked) == [("2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z", "1"),
                                       ("2026-03-01T00:00:00Z", "2026-03-05T00:00:00Z", "2")]
    query = parse_qs(urlsplit(_api_calls(mocked)[0].request.url).query)
    assert (query["fields"], query["balance_affecting_records_only"], query["page_size"]) == (["all"], ["Y"], ["500"])


def test_transaction_search_is_never_asked_for_more_than_31_days(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json={"transaction_details": [], "total_pages": 0, "page": 1})

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 1, 1, tzinfo=UTC),
                                                              datetime(2026, 3, 10, tzinfo=UTC)))

    # then
    assert rows == []
    assert _search_windows(mocked) == [
        ("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "1"),
        ("2026-02-01T00:00:00Z", "2026-03-04T00:00:00Z", "1"),
        ("2026-03-04T00:00:00Z", "2026-03-10T00:00:00Z", "1"),
    ]


def test_a_window_too_large_for_paypal_is_split_in_halves_until_each_is_served(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, status=400, json=payload("resultset_too_large.json"))
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page2.json") | {"page": 1, "total_pages": 1})
    mocked.add(responses.GET, SEARCH_URL, json={"transaction_details": [], "total_pages": 0, "page": 1})

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 1, tzinfo=UTC),
                                                              datetime(2026, 3, 3, tzinfo=UTC)))

    # then
    assert [row["transaction_info"]["transaction_id"] for row in rows] == ["6HN14583PX8471043"]
    assert _search_windows(mocked) == [
        ("2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", "1"),
        ("2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z", "1"),
        ("2026-03-02T00:00:00Z", "2026-03-03T00:00:00Z", "1"),
    ]


def test_a_window_still_too_large_at_one_minute_raises_rather_than_truncating(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, status=400, json=payload("resultset_too_large.json"))

    # when
    with pytest.raises(ResultSetTooLarge) as raised:
        list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
                                                           datetime(2026, 3, 1, 12, 1, tzinfo=UTC)))

    # then
    assert raised.value.name == "RESULTSET_TOO_LARGE"
    assert len(_api_calls(mocked)) == 1


def test_invoices_are_searched_by_creation_date_page_by_page(paypal_connection, mocked):
    # given
    token_reply(mocked)
    invoice = payload("invoice_unpaid.json")
    mocked.add(responses.POST, f"{API}/v2/invoicing/search-invoices",
               json={"items": [invoice], "total_items": 2, "total_pages": 2})
    mocked.add(responses.POST, f"{API}/v2/invoicing/search-invoices",
               json={"items": [invoice | {"id": "INV2-AAAA-BBBB-CCCC-DDDD"}], "total_items": 2, "total_pages": 2})

    # when
    found = list(PayPalClient(paypal_connection).invoices_created(datetime(2026, 3, 1, tzinfo=UTC),
                                                                   datetime(2026, 3, 2, tzinfo=UTC)))

    # then
    assert [item["id"] for item in found] == ["INV2-Z56S-5LLA-Q52L-CPZ5", "INV2-AAAA-BBBB-CCCC-DDDD"]
    first = _api_calls(mocked)[0].request
    assert parse_qs(urlsplit(first.url).query) == {"page": ["1"], "page_size": ["100"], "total_required": ["true"]}
    assert first.body == (b'{"creation_date_range": {"start": "2026-03-01T00:00:00Z", '
                          b'"end": "2026-03-02T00:00:00Z"}, "fields": ["items"]}')


def test_paypal_times_in_every_shape_it_writes_are_read_as_utc():
    # then
    assert paypal_time("2026-03-02T10:15:00Z") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert paypal_time("2026-03-02T10:15:00+0000") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert paypal_time("2026-03-02T12:15:00+02:00") == datetime(2026, 3, 2, 10, 15, tzinfo=UTC)
    assert paypal_time("not a time") is None
    assert paypal_datetime(datetime(2026, 3, 2, 12, 15, tzinfo=UTC)) == "2026-03-02T12:15:00Z"


def test_a_window_reaching_past_what_paypal_has_published_is_read_and_says_how_far(paypal_connection, mocked):
    # given: PayPal's data is complete only to 2026-03-04 20:00
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page1.json")
               | {"last_refreshed_datetime": "2026-03-04T20:00:00+0000", "total_pages": 1})
    horizon = SearchHorizon()

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 1, tzinfo=UTC),
                                                              datetime(2026, 3, 5, tzinfo=UTC), horizon=horizon))

    # then
    assert [row["transaction_info"]["transaction_id"] for row in rows] == ["2GG279541U471931P", "1JU08902781691411"]
    assert (horizon.until, horizon.unsaid) == (datetime(2026, 3, 4, 20, 0, tzinfo=UTC), False)


def test_a_window_ending_within_the_second_paypal_refreshed_is_published_whole(paypal_connection, mocked):
    # given: PayPal says 09:59:59 at its one-second resolution; the window ends 600 ms into that second
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page1.json") | {"total_pages": 1})
    horizon = SearchHorizon()

    # when
    list(PayPalClient(paypal_connection).transactions(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, 9, 59, 59, 600_000, tzinfo=UTC), horizon=horizon))

    # then
    assert (horizon.until, horizon.unsaid) == (None, False)
    assert _search_windows(mocked) == [("2026-03-01T00:00:00Z", "2026-03-05T09:59:59Z", "1")]


def test_a_window_ending_a_second_after_paypal_refreshed_is_not_published_whole(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json=payload("transactions_page1.json") | {"total_pages": 1})
    horizon = SearchHorizon()

    # when
    list(PayPalClient(paypal_connection).transactions(
        datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 5, 10, 0, 0, tzinfo=UTC), horizon=horizon))

    # then
    assert horizon.until == datetime(2026, 3, 5, 9, 59, 59, tzinfo=UTC)


def test_no_31_day_window_after_what_paypal_has_published_is_asked_for(paypal_connection, mocked):
    # given: 45 days asked; PayPal has published to 20 January only
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json={"transaction_details": [], "total_pages": 0, "page": 1,
                                                "last_refreshed_datetime": "2026-01-20T08:00:00+0000"})
    horizon = SearchHorizon()

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 1, 1, tzinfo=UTC),
                                                              datetime(2026, 2, 15, tzinfo=UTC), horizon=horizon))

    # then
    assert rows == []
    assert _search_windows(mocked) == [("2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z", "1")]
    assert horizon.until == datetime(2026, 1, 20, 8, 0, tzinfo=UTC)


def test_an_answer_without_last_refreshed_datetime_is_noted_as_unsaid(paypal_connection, mocked):
    # given: the field is optional in search_response (reporting_transactions_v1.json)
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, json={"transaction_details": [], "total_pages": 0, "page": 1})
    horizon = SearchHorizon()

    # when
    list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 1, tzinfo=UTC),
                                                       datetime(2026, 3, 5, tzinfo=UTC), horizon=horizon))

    # then
    assert (horizon.until, horizon.unsaid) == (None, True)


@time_machine.travel(datetime(2026, 3, 5, 1, 30, tzinfo=UTC), tick=False)
def test_data_not_yet_available_for_the_start_date_is_nothing_published_from_there(paypal_connection, mocked):
    # given: PayPal's answer when its data lags behind the start date (PayPal-node-SDK issue #452)
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, status=400, json=payload("start_date_not_available.json"))
    horizon = SearchHorizon()

    # when
    rows = list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 4, 22, tzinfo=UTC),
                                                              datetime(2026, 3, 5, 1, tzinfo=UTC), horizon=horizon))

    # then
    assert rows == []
    assert horizon.until == datetime(2026, 3, 4, 22, tzinfo=UTC)
    assert len(_api_calls(mocked)) == 1


def test_any_other_invalid_request_is_still_refused(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, status=400, json={
        "name": "INVALID_REQUEST",
        "message": "Request is not well-formed, syntactically incorrect, or violates schema.",
        "debug_id": "b1c2d3e4f5a6", "details": [{"field": "start_date", "issue": "INVALID_PARAMETER_SYNTAX"}]})
    horizon = SearchHorizon()

    # when
    with pytest.raises(PayPalPermanentError) as raised:
        list(PayPalClient(paypal_connection).transactions(datetime(2026, 3, 4, 22, tzinfo=UTC),
                                                           datetime(2026, 3, 5, 1, tzinfo=UTC), horizon=horizon))

    # then
    assert raised.value.name == "INVALID_REQUEST"
    assert horizon.until is None


@time_machine.travel(datetime(2026, 3, 5, 1, 30, tzinfo=UTC), tick=False)
def test_data_not_available_older_than_the_three_years_paypal_lists_is_refused(paypal_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, SEARCH_URL, status=400, json=payload("start_date_not_available.json"))
    horizon = SearchHorizon()

    # when
    with pytest.raises(PayPalPermanentError) as raised:
        list(PayPalClient(paypal_connection).transactions(datetime(2023, 1, 1, tzinfo=UTC),
                                                           datetime(2023, 1, 31, tzinfo=UTC), horizon=horizon))

    # then
    assert raised.value.system_message == "INVALID_REQUEST Data for the given start date is not available."
    assert horizon.until is None
