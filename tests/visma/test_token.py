import threading
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import responses
import time_machine
from django.db import connection as db_connection

from connectors.errors import AuthenticationError
from connectors.models import Connection, HttpExchange
from connectors.visma.client import SERVICE_SCOPES, VismaAuthenticationError, VismaClient
from tests.factories import ConnectionFactory
from tests.visma.conftest import API, TOKEN_URL, payload, token_reply

NINE = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


def _api_calls(mocked):
    return [call for call in mocked.calls if call.request.url.startswith(API)]


def _token_calls(mocked):
    return [call for call in mocked.calls if call.request.url == TOKEN_URL]


def test_the_token_is_fetched_with_client_credentials_for_the_company_tenant(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account", json=[])

    # when
    VismaClient(visma_connection).get_json("/v1/account")

    # then
    token_request = _token_calls(mocked)[0].request
    assert token_request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(token_request.body) == {
        "grant_type": ["client_credentials"], "client_id": ["visma-client"], "client_secret": ["visma-secret-s3cr3t"],
        "tenant_id": ["t-1"], "scope": [SERVICE_SCOPES],
    }
    api_request = _api_calls(mocked)[0].request
    assert api_request.headers["Authorization"] == "Bearer visma-token-1"
    assert api_request.headers["ipp-company-id"] == "1234567"
    assert api_request.headers["Accept"] == "application/json"


def test_the_scopes_asked_for_are_the_four_service_scopes():
    # then
    assert SERVICE_SCOPES.split() == [
        "vismanet_erp_service_api:read", "vismanet_erp_service_api:create",
        "vismanet_erp_service_api:update", "vismanet_erp_service_api:delete",
    ]


def test_the_token_is_cached_on_the_connection_and_shared_by_a_second_client(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account", json=[])
    VismaClient(visma_connection).get_json("/v1/account")

    # when
    VismaClient(Connection.objects.get(pk=visma_connection.pk)).get_json("/v1/account")

    # then
    assert len(_token_calls(mocked)) == 1
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == ["Bearer visma-token-1"] * 2


def test_a_new_token_is_fetched_five_minutes_before_expiry_not_earlier(visma_connection, mocked):
    # given
    token_reply(mocked, "visma-token-1")
    token_reply(mocked, "visma-token-2")
    mocked.add(responses.GET, f"{API}/v1/account", json=[])

    with time_machine.travel(NINE, tick=False) as traveller:
        client = VismaClient(visma_connection)
        client.get_json("/v1/account")

        # when
        traveller.move_to(NINE + timedelta(minutes=54))
        client.get_json("/v1/account")
        traveller.move_to(NINE + timedelta(minutes=56))
        client.get_json("/v1/account")

    # then
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == [
        "Bearer visma-token-1", "Bearer visma-token-1", "Bearer visma-token-2",
    ]
    assert Connection.objects.get(pk=visma_connection.pk).token_expires_at == NINE + timedelta(minutes=116)


def test_a_401_fetches_a_new_token_once_and_repeats_the_call(visma_connection, mocked):
    # given
    token_reply(mocked, "visma-token-1")
    token_reply(mocked, "visma-token-2")
    mocked.add(responses.GET, f"{API}/v1/account", status=401, json={"message": "Authorization has been denied"})
    mocked.add(responses.GET, f"{API}/v1/account", json=payload("accounts.json"))

    # when
    accounts = VismaClient(visma_connection).get_json("/v1/account")

    # then
    assert len(accounts) == 3
    assert [call.request.headers["Authorization"] for call in _api_calls(mocked)] == [
        "Bearer visma-token-1", "Bearer visma-token-2",
    ]
    assert Connection.objects.get(pk=visma_connection.pk).access_token == "visma-token-2"


def test_a_401_with_a_fresh_token_raises_authentication_error(visma_connection, mocked):
    # given
    token_reply(mocked, "visma-token-1")
    token_reply(mocked, "visma-token-2")
    mocked.add(responses.GET, f"{API}/v1/account", status=401, json=payload("error_ipp.json"))

    # when
    with pytest.raises(VismaAuthenticationError) as raised:
        VismaClient(visma_connection).get_json("/v1/account")

    # then
    assert isinstance(raised.value, AuthenticationError)
    assert raised.value.system_message == "No license for this company (IPPException 12027)"
    assert len(_token_calls(mocked)) == 2
    assert len(_api_calls(mocked)) == 2


def test_credentials_refused_by_visma_connect_raise_authentication_error_without_retrying(visma_connection, mocked):
    # given
    mocked.add(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_client"})

    # when
    with pytest.raises(VismaAuthenticationError) as raised:
        VismaClient(visma_connection).token()

    # then
    assert raised.value.system_message == "invalid_client"
    assert len(mocked.calls) == 1
    assert Connection.objects.get(pk=visma_connection.pk).access_token is None
    assert list(HttpExchange.objects.values_list("url", "status_code")) == [(TOKEN_URL, 400)]


def test_the_cached_token_is_encrypted_at_rest(visma_connection, mocked):
    # given
    token_reply(mocked, "visma-token-plain-text")

    # when
    VismaClient(visma_connection).token()

    # then
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token FROM connectors_connection WHERE id = %s", [visma_connection.pk])
        stored = bytes(cursor.fetchone()[0])
    assert b"visma-token-plain-text" not in stored
    assert Connection.objects.get(pk=visma_connection.pk).access_token == "visma-token-plain-text"


def test_the_token_exchange_is_logged_without_the_secret_or_the_token(visma_connection, mocked):
    # given
    token_reply(mocked, "visma-token-plain-text")

    # when
    VismaClient(visma_connection).token()

    # then
    exchange = HttpExchange.objects.get()
    assert exchange.url == TOKEN_URL
    assert "client_secret=***" in exchange.request_body
    assert '"access_token": "***"' in exchange.response_body
    assert "visma-secret-s3cr3t" not in exchange.request_body
    assert "visma-token-plain-text" not in exchange.response_body


def test_a_token_renewed_by_another_worker_meanwhile_is_adopted_without_fetching(visma_connection, mocked):
    # given
    client = VismaClient(visma_connection)
    Connection.objects.filter(pk=visma_connection.pk).update(
        access_token="renewed-by-worker-2", token_expires_at=datetime.now(UTC) + timedelta(minutes=50)
    )

    # when
    token = client.token()

    # then
    assert token == "renewed-by-worker-2"
    assert len(mocked.calls) == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_renewing_at_once_on_postgres_fetch_one_token():
    # given
    connection = ConnectionFactory(system="visma")
    start = threading.Barrier(3)
    tokens, failures = [], []

    def slow_token(request):
        time.sleep(0.3)
        return 200, {}, '{"access_token": "shared-token", "expires_in": 3600, "token_type": "Bearer"}'

    def worker():
        client = VismaClient(Connection.objects.get(pk=connection.pk))
        start.wait()
        try:
            tokens.append(client.token())
        except Exception as exc:  # surfaced in the assertion below
            failures.append(exc)
        finally:
            db_connection.close()

    # when
    with responses.RequestsMock() as mocked:
        mocked.add_callback(responses.POST, TOKEN_URL, callback=slow_token)
        threads = [threading.Thread(target=worker) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        token_calls = len(mocked.calls)

    # then
    assert failures == []
    assert tokens == ["shared-token"] * 3
    assert token_calls == 1
