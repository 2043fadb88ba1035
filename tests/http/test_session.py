import http.server
import json
import threading
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
import requests
import responses
import time_machine
from urllib3.exceptions import MaxRetryError, NewConnectionError

from connectors.errors import (
    AuthenticationError,
    PermanentError,
    RetryLater,
    TransientError,
)
from connectors.http import ApiSession, body_for_log, exchanges_for
from connectors.models import HttpExchange
from tests.factories import ConnectionFactory, SyncRecordFactory

pytestmark = pytest.mark.django_db

API = "https://api.vendor.test/v1/orders"


def _identity(ceiling: float) -> float:
    return ceiling


@pytest.fixture
def connection():
    return ConnectionFactory(system="stripe", base_url="https://api.vendor.test")


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def session(connection, sleeps):
    return ApiSession(connection, sleep=sleeps.append, jitter=_identity)


@pytest.fixture
def backoff(settings):
    settings.HTTP_BACKOFF_BASE_SECONDS = 0.5
    settings.HTTP_BACKOFF_MAX_SECONDS = 3.0
    settings.HTTP_MAX_RETRIES = 4
    return settings


@responses.activate
def test_every_call_carries_connect_and_read_timeouts(session, settings):
    # given
    settings.HTTP_CONNECT_TIMEOUT, settings.HTTP_READ_TIMEOUT = 2.5, 17.0
    responses.add(responses.GET, API, json=[])

    # when
    session.request("GET", API)

    # then
    assert responses.calls[0].request.req_kwargs["timeout"] == (2.5, 17.0)


@responses.activate
def test_a_read_timeout_on_a_get_is_retried_and_both_attempts_are_logged(session, sleeps):
    # given
    responses.add(responses.GET, API, body=requests.ReadTimeout("read timed out"))
    responses.add(responses.GET, API, json={"orders": []})

    # when
    response = session.request("GET", API)

    # then
    assert response.json() == {"orders": []}
    assert len(responses.calls) == 2
    assert sleeps == [0.0]
    exchanges = list(HttpExchange.objects.order_by("id").values_list("status_code", "error"))
    assert exchanges == [(None, "ReadTimeout: read timed out"), (200, "")]


@responses.activate
def test_a_5xx_storm_backs_off_exponentially_up_to_the_cap_then_raises_transient(session, sleeps, backoff):
    # given
    for _ in range(5):
        responses.add(responses.GET, API, status=502, body="Bad gateway")

    # when
    with pytest.raises(TransientError) as raised:
        session.request("GET", API)

    # then
    assert sleeps == [0.5, 1.0, 2.0, 3.0]
    assert len(responses.calls) == 5
    assert raised.value.status_code == 502
    assert "failed after 5 attempt(s) (HTTP 502)" in str(raised.value)
    assert HttpExchange.objects.count() == 5


@responses.activate
def test_full_jitter_picks_each_delay_between_zero_and_its_ceiling(connection, backoff):
    # given
    sleeps = []
    session = ApiSession(connection, sleep=sleeps.append)
    for _ in range(5):
        responses.add(responses.GET, API, status=500)

    # when
    with pytest.raises(TransientError):
        session.request("GET", API)

    # then
    assert len(sleeps) == 4
    assert all(0 <= delay <= ceiling for delay, ceiling in zip(sleeps, [0.5, 1.0, 2.0, 3.0], strict=True))


@responses.activate
def test_429_with_retry_after_seconds_waits_that_long(session, sleeps, backoff):
    # given
    responses.add(responses.GET, API, status=429, headers={"Retry-After": "2"}, json={"message": "Rate limit"})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    response = session.request("GET", API)

    # then
    assert response.json() == {"ok": True}
    assert sleeps == [2.0]


@time_machine.travel(datetime(2026, 3, 5, 9, 0, 0, tzinfo=UTC), tick=False)
@responses.activate
def test_429_with_retry_after_as_http_date_waits_until_then(session, sleeps, backoff):
    # given
    later = format_datetime(datetime(2026, 3, 5, 9, 0, 3, tzinfo=UTC), usegmt=True)
    responses.add(responses.GET, API, status=429, headers={"Retry-After": later})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    session.request("GET", API)

    # then
    assert sleeps == [3.0]


def test_429_saying_the_budget_is_spent_waits_for_its_reset(connection, backoff):
    # given: no Retry-After, but X-RateLimit-Remaining 0: the window's reset is what the answer asks to wait for
    with time_machine.travel(datetime(2026, 3, 5, 10, 34, 0, tzinfo=UTC), tick=False) as traveller, \
            responses.RequestsMock() as mocked:
        waited = []

        def sleep(seconds):
            waited.append(seconds)
            traveller.shift(seconds)

        mocked.add(responses.GET, API, status=429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"})
        mocked.add(responses.GET, API, json={"ok": True})

        # when
        response = ApiSession(connection, sleep=sleep, jitter=_identity).request("GET", API)

    # then
    assert response.json() == {"ok": True}
    assert waited == [2.0]


@time_machine.travel(datetime(2026, 3, 5, 10, 34, 0, tzinfo=UTC), tick=False)
@responses.activate
def test_429_without_retry_after_and_calls_remaining_backs_off_briefly_not_until_the_window_resets(
        session, sleeps, backoff):
    # given: throttled while the hourly window still has 4985 calls and resets in 26 minutes
    responses.add(responses.GET, API, status=429, headers={
        "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4985", "X-RateLimit-Reset": "1560"})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    response = session.request("GET", API)

    # then
    assert response.json() == {"ok": True}
    assert sleeps == [0.5]
    assert len(responses.calls) == 2


@responses.activate
def test_429_without_any_rate_limit_header_backs_off_exponentially(session, sleeps, backoff):
    # given: PayPal's RATE_LIMIT_REACHED and Stripe's 429 name no wait
    responses.add(responses.GET, API, status=429, json={"name": "RATE_LIMIT_REACHED"})
    responses.add(responses.GET, API, status=429, json={"name": "RATE_LIMIT_REACHED"})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    session.request("GET", API)

    # then
    assert sleeps == [0.5, 1.0]


@time_machine.travel(datetime(2026, 3, 5, 10, 34, 0, tzinfo=UTC), tick=False)
@responses.activate
def test_a_429_storm_with_calls_remaining_ends_transient_never_parked_until_the_window_resets(
        session, sleeps, backoff):
    # given
    for _ in range(5):
        responses.add(responses.GET, API, status=429, headers={
            "X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4985", "X-RateLimit-Reset": "1560"})

    # when
    with pytest.raises(TransientError) as raised:
        session.request("GET", API)

    # then
    assert not isinstance(raised.value, RetryLater)
    assert raised.value.status_code == 429
    assert sleeps == [0.5, 1.0, 2.0, 3.0]
    assert len(responses.calls) == 5


def test_retry_after_wins_over_the_window_reset(connection, backoff):
    # given
    with time_machine.travel(datetime(2026, 3, 5, 10, 34, 0, tzinfo=UTC), tick=False) as traveller, \
            responses.RequestsMock() as mocked:
        waited = []

        def sleep(seconds):
            waited.append(seconds)
            traveller.shift(seconds)

        mocked.add(responses.GET, API, status=429, headers={
            "Retry-After": "1", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2191"})
        mocked.add(responses.GET, API, json={"ok": True})

        # when
        response = ApiSession(connection, sleep=sleep, jitter=_identity).request("GET", API)

    # then
    assert response.json() == {"ok": True}
    assert waited == [1.0]


@time_machine.travel(datetime(2026, 3, 5, 10, 34, 0, tzinfo=UTC), tick=False)
@responses.activate
def test_429_saying_the_budget_is_spent_for_long_is_handed_back_for_its_reset(session, sleeps, backoff):
    # given
    responses.add(responses.GET, API, status=429, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1560"})

    # when
    with pytest.raises(RetryLater) as raised:
        session.request("GET", API)

    # then
    assert raised.value.retry_at == datetime(2026, 3, 5, 11, 0, 0, tzinfo=UTC)
    assert sleeps == []


@responses.activate
def test_the_budget_reset_header_on_a_5xx_is_not_taken_as_a_wait(session, sleeps, backoff):
    # given
    responses.add(responses.GET, API, status=500, headers={"X-RateLimit-Reset": "2191"})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    session.request("GET", API)

    # then
    assert sleeps == [0.5]


@time_machine.travel(datetime(2026, 3, 5, 9, 0, 0, tzinfo=UTC), tick=False)
@responses.activate
def test_a_requested_wait_longer_than_the_cap_raises_retry_later_without_sleeping(session, sleeps, backoff):
    # given
    responses.add(responses.GET, API, status=429, headers={"Retry-After": "1800"})

    # when
    with pytest.raises(RetryLater) as raised:
        session.request("GET", API)

    # then
    assert raised.value.retry_at == datetime(2026, 3, 5, 9, 30, 0, tzinfo=UTC)
    assert isinstance(raised.value, TransientError)
    assert sleeps == []
    assert len(responses.calls) == 1


@responses.activate
def test_a_400_is_not_retried_and_keeps_the_vendors_message(session, sleeps):
    # given
    responses.add(responses.POST, API, status=400, json={"message": "amount must be positive"})

    # when
    with pytest.raises(PermanentError) as raised:
        session.request("POST", API, json={"amount": -1})

    # then
    assert raised.value.status_code == 400
    assert raised.value.system_message == "amount must be positive"
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_a_404_is_not_retried(session, sleeps):
    # given
    responses.add(responses.GET, API, status=404, body="Not Found")

    # when
    with pytest.raises(PermanentError) as raised:
        session.request("GET", API)

    # then
    assert raised.value.status_code == 404
    assert len(responses.calls) == 1
    assert sleeps == []


class _Token(requests.auth.AuthBase):
    def __init__(self):
        self.value, self.renewals = "stale", 0

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.value}"
        return request

    def renew(self):
        self.renewals += 1
        self.value = f"fresh-{self.renewals}"


@responses.activate
def test_a_401_reauthenticates_once_and_repeats_the_request_with_the_new_token(connection, sleeps):
    # given
    token = _Token()
    session = ApiSession(connection, auth=token, reauthenticate=token.renew, sleep=sleeps.append)
    responses.add(responses.GET, API, status=401, json={"message": "token expired"})
    responses.add(responses.GET, API, json={"ok": True})

    # when
    response = session.request("GET", API)

    # then
    assert response.json() == {"ok": True}
    assert token.renewals == 1
    assert [call.request.headers["Authorization"] for call in responses.calls] == ["Bearer stale", "Bearer fresh-1"]
    assert sleeps == []


@responses.activate
def test_a_second_401_after_reauthenticating_raises_authentication_error(connection):
    # given
    token = _Token()
    session = ApiSession(connection, auth=token, reauthenticate=token.renew)
    responses.add(responses.GET, API, status=401, json={"message": "token expired"})
    responses.add(responses.GET, API, status=401, json={"message": "Invalid company"})

    # when
    with pytest.raises(AuthenticationError) as raised:
        session.request("GET", API)

    # then
    assert raised.value.system_message == "Invalid company"
    assert token.renewals == 1
    assert len(responses.calls) == 2


@responses.activate
def test_a_post_is_not_repeated_after_a_read_timeout(session, sleeps):
    # given
    responses.add(responses.POST, API, body=requests.ReadTimeout("read timed out"))

    # when
    with pytest.raises(TransientError) as raised:
        session.request("POST", API, json={"amount": 10})

    # then
    assert len(responses.calls) == 1
    assert sleeps == []
    assert "ReadTimeout" in str(raised.value)


@responses.activate
def test_a_post_is_not_repeated_after_a_500(session, sleeps):
    # given
    responses.add(responses.POST, API, status=500)

    # when
    with pytest.raises(TransientError):
        session.request("POST", API, json={"amount": 10})

    # then
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_a_post_that_never_connected_is_repeated(session):
    # given
    responses.add(responses.POST, API, body=requests.ConnectTimeout("connect timed out"))
    refused = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    responses.add(responses.POST, API, body=requests.ConnectionError(MaxRetryError(None, API, reason=refused)))
    responses.add(responses.POST, API, status=201, json={})

    # when
    response = session.request("POST", API, json={"amount": 10})

    # then
    assert response.status_code == 201
    assert len(responses.calls) == 3


@responses.activate
def test_a_post_is_repeated_on_429_and_on_503_with_retry_after(session, sleeps, backoff):
    # given
    responses.add(responses.POST, API, status=429, headers={"Retry-After": "1"})
    responses.add(responses.POST, API, status=503, headers={"Retry-After": "2"})
    responses.add(responses.POST, API, status=201, json={})

    # when
    response = session.request("POST", API, json={"amount": 10})

    # then
    assert response.status_code == 201
    assert sleeps == [1.0, 2.0]


@responses.activate
def test_a_post_with_an_idempotency_key_is_repeated_after_a_read_timeout_with_the_same_key(connection):
    # given
    session = ApiSession(connection, idempotency_header="Idempotency-Key")
    responses.add(responses.POST, API, body=requests.ReadTimeout("read timed out"))
    responses.add(responses.POST, API, status=200, json={"id": "ch_1"})

    # when
    response = session.request("POST", API, json={"amount": 10}, idempotency_key="record-42")

    # then
    assert response.json() == {"id": "ch_1"}
    assert [call.request.headers["Idempotency-Key"] for call in responses.calls] == ["record-42", "record-42"]


@responses.activate
def test_the_exchange_log_keeps_method_url_status_and_bodies_with_secrets_masked(session):
    # given
    responses.add(
        responses.POST, "https://api.vendor.test/oauth/token",
        json={"access_token": "at-s3cr3t", "token_type": "Bearer", "expires_in": 3600},
    )

    # when
    session.request(
        "POST", "https://api.vendor.test/oauth/token", params={"api_key": "k-s3cr3t", "page": "2"},
        data={"grant_type": "client_credentials", "client_id": "cid", "client_secret": "cs-s3cr3t"},
    )

    # then
    exchange = HttpExchange.objects.get()
    assert (exchange.method, exchange.status_code) == ("POST", 200)
    assert exchange.url == "https://api.vendor.test/oauth/token?api_key=***&page=2"
    assert exchange.request_body == "grant_type=client_credentials&client_id=cid&client_secret=***"
    assert json.loads(exchange.response_body) == {"access_token": "***", "token_type": "Bearer", "expires_in": 3600}
    stored = " ".join([exchange.url, exchange.request_body, exchange.response_body, exchange.error])
    assert "s3cr3t" not in stored


@responses.activate
def test_nested_json_secrets_are_masked_and_long_bodies_are_capped(session, settings):
    # given
    settings.HTTP_LOG_BODY_MAX_CHARS = 200
    responses.add(responses.POST, API, json={"ok": True})
    document = {"order": {"amount": "12.50", "password": "pw-s3cr3t"},
                "headers": {"Authorization": "Bearer b-s3cr3t"}, "note": "x" * 500}

    # when
    session.request("POST", API, json=document)

    # then
    logged = HttpExchange.objects.get().request_body
    assert '"amount": "12.50"' in logged
    assert '"password": "***"' in logged
    assert '"Authorization": "***"' in logged
    assert "s3cr3t" not in logged
    assert logged.endswith("more characters not kept)")
    assert len(logged) < 260


def test_a_plain_text_body_with_a_bearer_token_is_redacted():
    # when
    logged = body_for_log("upstream said: Authorization: Bearer abc.def.ghi expired")

    # then
    assert logged == "upstream said: Authorization: Bearer *** expired"


@responses.activate
def test_exchanges_are_linked_to_the_record_they_serve(session):
    # given
    record = SyncRecordFactory()
    other = SyncRecordFactory()
    responses.add(responses.GET, API, json={})
    responses.add(responses.GET, API, json={})
    responses.add(responses.GET, API, json={})

    # when
    with exchanges_for(record):
        session.request("GET", API)
    session.request("GET", API, sync_record=other)
    session.request("GET", API)

    # then
    assert list(HttpExchange.objects.order_by("id").values_list("sync_record_id", flat=True)) == [
        record.pk, other.pk, None,
    ]


@responses.activate
def test_no_exchange_is_kept_when_logging_is_off(session, settings):
    # given
    settings.HTTP_LOG_EXCHANGES = False
    responses.add(responses.GET, API, json={})

    # when
    session.request("GET", API)

    # then
    assert HttpExchange.objects.count() == 0


class _Failing(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"message": "An error has occurred."}'
        self.send_response(500)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_closing_the_session_closes_its_kept_alive_sockets_even_while_an_error_is_held(connection, settings):
    # given
    settings.HTTP_MAX_RETRIES = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    session = ApiSession(connection)
    try:
        with pytest.raises(TransientError) as held:
            session.request("GET", f"http://127.0.0.1:{server.server_address[1]}/v1/account")
        pools = session.session.adapters["http://"].poolmanager.pools
        pool = pools[next(iter(pools.keys()))]
        kept_alive = [conn for conn in pool.pool.queue if conn is not None and conn.sock is not None]

        # when
        session.close()

        # then
        assert held.value.status_code == 500
        assert len(kept_alive) == 1
        assert kept_alive[0].sock is None
    finally:
        server.shutdown()
        server.server_close()
