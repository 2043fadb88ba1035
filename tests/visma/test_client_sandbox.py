"""The Visma client over real HTTP against the sandbox emulator (pytest-django's live_server)."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine

from connectors.errors import RetryLater
from connectors.models import Connection, HttpExchange
from connectors.visma.client import (
    VismaClient,
    VismaConflictError,
    VismaTransientError,
    visma_ping,
)
from mappings.models import Customer, DimensionValue, GLAccount
from mappings.reference import reference_data_refresh
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_client_configure,
    visma_fault_concurrent_edit,
    visma_fault_fail,
    visma_fault_stale_puts,
    visma_sandbox_seed,
)
from sandbox.visma_seed import (
    ACCOUNTS,
    SUBACCOUNT_SEGMENTS,
    SUPPLIERS,
    VISMA_SANDBOX_CUSTOMER_COUNT,
)
from tests.factories import ConnectionFactory, TenantFactory

LATE_IN_THE_HOUR = datetime(2026, 3, 10, 10, 59, 58, tzinfo=UTC)


@pytest.fixture
def sandbox(transactional_db, live_server):
    visma_sandbox_seed()
    return f"{live_server.url}/sandbox/visma"


def _connection(base_url: str, **fields) -> Connection:
    return ConnectionFactory(
        system="visma", base_url=base_url, token_url=f"{base_url}/connect/token",
        credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                     "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID},
        **fields,
    )


@pytest.fixture
def connection(sandbox):
    return _connection(sandbox)


@pytest.fixture
def new_client():
    """VismaClients whose sessions are closed after the test (no keep-alive outlives the live server)."""
    clients = []

    def make(connection: Connection, **options) -> VismaClient:
        clients.append(VismaClient(connection, **options))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def _statuses(path: str) -> list[int | None]:
    return list(HttpExchange.objects.filter(url__contains=path).order_by("id").values_list("status_code", flat=True))


def test_ping_against_the_sandbox(connection):
    # when
    message = visma_ping(connection)

    # then
    assert message == f"token OK, company {VISMA_SANDBOX_COMPANY_ID}, {len(ACCOUNTS)} GL accounts"


def test_the_customer_list_is_paged_at_visma_s_cap_and_streamed(connection, new_client):
    # given
    client = new_client(connection)

    # when
    pages = [len(page) for page in client.pages("/v1/customer")]

    # then
    assert pages == [100, 100, 50]
    assert sum(pages) == VISMA_SANDBOX_CUSTOMER_COUNT
    assert _statuses("/v1/customer") == [200, 200, 200]


def test_a_full_reference_refresh_mirrors_the_sandbox_company(connection):
    # given
    tenant = connection.tenant

    # when
    refresh = reference_data_refresh(tenant, full=True)

    # then
    values = sum(len(segment[3]) for segment in SUBACCOUNT_SEGMENTS)
    assert (refresh.accounts, refresh.dimension_values, refresh.customers, refresh.suppliers) == (
        len(ACCOUNTS), values, VISMA_SANDBOX_CUSTOMER_COUNT, len(SUPPLIERS),
    )
    assert GLAccount.objects.get(tenant=tenant, number="3099").active is False
    assert DimensionValue.objects.get(tenant=tenant, segment_id=1, value="900").active is False
    assert Customer.objects.get(tenant=tenant, number="10006").active is False
    assert Customer.objects.filter(tenant=tenant).count() == VISMA_SANDBOX_CUSTOMER_COUNT


def test_a_journal_is_created_in_the_wrapped_shape_and_read_back_by_its_location_id(connection, new_client):
    # given
    client = new_client(connection)
    journal = {
        "transactionDate": "2026-03-10T00:00:00",
        "description": "PayPal capture CAP-1",
        "journalTransactionLines": [
            {"operation": "Insert", "accountNumber": "1580", "subaccount": {"1": "100"}, "referenceNumber": "CAP-1",
             "debitAmountInCurrency": Decimal("96.60")},
            {"operation": "Insert", "accountNumber": "7770", "subaccount": {"1": "100"}, "referenceNumber": "CAP-1",
             "debitAmountInCurrency": Decimal("3.40")},
            {"operation": "Insert", "accountNumber": "3000", "subaccount": {"1": "100"}, "referenceNumber": "CAP-1",
             "creditAmountInCurrency": Decimal("100.00")},
        ],
    }

    # when
    batch_number = client.create("/v2/journaltransaction", journal)

    # then
    stored = client.get_json(f"/v2/journaltransaction/{batch_number}")
    assert stored["description"] == "PayPal capture CAP-1"
    assert [line["accountNumber"] for line in stored["journalTransactionLines"]] == ["1580", "7770", "3000"]


def test_a_token_that_expires_mid_run_is_renewed_before_it_is_refused(connection, new_client):
    # given
    client = new_client(connection)
    with time_machine.travel(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)) as traveller:
        client.get_json("/v1/account")
        first_token = client.connection.access_token

        # when
        traveller.shift(timedelta(minutes=56))
        client.get_json("/v1/account")

    # then
    assert client.connection.access_token != first_token
    assert _statuses("/v1/account") == [200, 200]
    assert _statuses("/connect/token") == [200, 200]


def test_a_token_the_sandbox_has_expired_is_refused_once_then_renewed(connection, new_client):
    # given
    client = new_client(connection)
    with time_machine.travel(datetime(2026, 3, 10, 9, 0, tzinfo=UTC)) as traveller:
        client.get_json("/v1/account")
        # This worker's clock says the token is good for hours; the sandbox knows it has expired.
        Connection.objects.filter(pk=connection.pk).update(token_expires_at=datetime(2026, 3, 10, 14, 0, tzinfo=UTC))
        client.connection.token_expires_at = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)
        traveller.shift(timedelta(minutes=61))

        # when
        accounts = client.get_json("/v1/account")

    # then
    assert len(accounts) == len(ACCOUNTS)
    assert _statuses("/v1/account") == [200, 401, 200]
    assert _statuses("/connect/token") == [200, 200]


def test_an_update_refused_once_as_stale_is_read_again_and_succeeds(connection, new_client):
    # given
    client = new_client(connection)
    visma_fault_stale_puts(1)

    # when
    etag = client.update("/v1/supplier/20002", lambda current: {"name": f"{current['name']} (hosting)"})

    # then
    assert etag
    assert client.get_json("/v1/supplier/20002")["name"] == "Oslo Cloud Hosting AS (hosting)"
    puts = HttpExchange.objects.filter(method="PUT").order_by("id").values_list("status_code", flat=True)
    assert list(puts) == [412, 204]


def test_an_update_refused_as_stale_every_time_is_a_conflict(connection, new_client):
    # given
    client = new_client(connection)
    visma_fault_stale_puts(3)

    # when
    with pytest.raises(VismaConflictError) as raised:
        client.update("/v1/supplier/20002", lambda current: {"name": "Renamed"})

    # then
    assert raised.value.status_code == 412
    assert client.get_json("/v1/supplier/20002")["name"] == "Oslo Cloud Hosting AS"
    assert list(HttpExchange.objects.filter(method="PUT").values_list("status_code", flat=True)) == [412] * 3


def test_a_429_from_the_sandbox_is_waited_out_with_its_retry_after(sandbox, settings, new_client):
    # given
    settings.HTTP_BACKOFF_MAX_SECONDS = 5.0
    visma_client_configure(hourly_call_budget=1)
    other_installation = new_client(_connection(sandbox, tenant=TenantFactory()))
    waited = []
    with time_machine.travel(LATE_IN_THE_HOUR, tick=False) as traveller:
        def sleep(seconds):
            waited.append(seconds)
            traveller.shift(timedelta(seconds=seconds))

        client = new_client(_connection(sandbox), sleep=sleep)
        client.token()
        other_installation.get_json("/v1/account")

        # when
        accounts = client.get_json("/v1/account")

    # then
    assert len(accounts) == len(ACCOUNTS)
    assert waited == [2.0]
    assert _statuses("/v1/account") == [200, 429, 200]


def test_a_429_with_a_long_retry_after_is_handed_back_as_retry_later(sandbox, new_client):
    # given
    visma_client_configure(hourly_call_budget=1)
    other_installation = new_client(_connection(sandbox, tenant=TenantFactory()))
    with time_machine.travel(datetime(2026, 3, 10, 10, 30, tzinfo=UTC), tick=False):
        client = new_client(_connection(sandbox))
        client.token()
        other_installation.get_json("/v1/account")

        # when
        with pytest.raises(RetryLater) as raised:
            client.get_json("/v1/account")

    # then
    assert raised.value.retry_at == datetime(2026, 3, 10, 11, 0, tzinfo=UTC)
    assert _statuses("/v1/account") == [200, 429]


def test_a_500_storm_shorter_than_the_retries_is_ridden_out(connection, new_client):
    # given
    client = new_client(connection)
    client.token()
    visma_fault_fail(3)

    # when
    accounts = client.get_json("/v1/account")

    # then
    assert len(accounts) == len(ACCOUNTS)
    assert _statuses("/v1/account") == [500, 500, 500, 200]


def test_a_500_storm_longer_than_the_retries_is_transient_with_visma_s_message(connection, settings, new_client):
    # given
    settings.HTTP_MAX_RETRIES = 2
    client = new_client(connection)
    client.token()
    visma_fault_fail(5)

    # when
    with pytest.raises(VismaTransientError) as raised:
        client.get_json("/v1/account")

    # then
    assert raised.value.system_message == "An error has occurred."
    assert _statuses("/v1/account") == [500, 500, 500]


def test_a_delta_read_reaches_back_by_the_overlap_and_serves_each_customer_once(connection, new_client):
    # given the sandbox's customers and when each last changed
    client = new_client(connection)
    stamps = {
        row["number"]: datetime.fromisoformat(row["lastModifiedDateTime"]).replace(tzinfo=UTC)
        for row in client.items("/v1/customer")
    }
    since = sorted(stamps.values())[-20]

    # when the delta since then is read in small pages, and the first customer served is saved again meanwhile
    rows = client.changed("/v1/customer", since=since, key="number", page_size=5)
    first = next(rows)
    visma_fault_concurrent_edit("customer", first["number"])
    numbers = [first["number"], *(row["number"] for row in rows)]

    # then everything changed since three hours (the overlap) before `since` comes, each customer once
    expected = {number for number, stamp in stamps.items() if stamp >= since - timedelta(hours=3)}
    assert len(expected) == 21
    assert sorted(numbers) == sorted(expected)
