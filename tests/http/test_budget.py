import threading
from datetime import UTC, datetime

import pytest
import responses
import time_machine
from django.db import connection as db_connection

from connectors.errors import RetryLater
from connectors.http import ApiSession
from connectors.models import CallBudgetWindow
from tests.factories import ConnectionFactory

API = "https://api.vendor.test/v1/orders"
TEN_O_CLOCK = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 20, tzinfo=UTC), tick=False)
@responses.activate
def test_two_workers_together_never_pass_the_hourly_budget():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=3)
    workers = [ApiSession(connection, budget_max_wait_seconds=0), ApiSession(connection, budget_max_wait_seconds=0)]
    responses.add(responses.GET, API, json={})
    refusals = []

    # when
    for call in range(6):
        try:
            workers[call % 2].request("GET", API)
        except RetryLater as exc:
            refusals.append(exc.retry_at)

    # then
    assert len(responses.calls) == 3
    assert refusals == [datetime(2026, 3, 5, 11, 0, tzinfo=UTC)] * 3
    window = CallBudgetWindow.objects.get(connection=connection)
    assert (window.window_start, window.calls, window.limit) == (TEN_O_CLOCK, 3, 3)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 59, 58, tzinfo=UTC), tick=False)
@responses.activate
def test_a_spent_budget_close_to_its_reset_is_waited_for():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=1)
    waited = []

    def sleep(seconds):
        waited.append(seconds)
        traveller.shift(seconds)

    session = ApiSession(connection, sleep=sleep, budget_max_wait_seconds=5)
    responses.add(responses.GET, API, json={})
    session.request("GET", API)

    # when
    with time_machine.travel(datetime(2026, 3, 5, 10, 59, 58, tzinfo=UTC), tick=False) as traveller:
        session.request("GET", API)

    # then
    assert waited == [2.0]
    assert len(responses.calls) == 2
    assert list(CallBudgetWindow.objects.order_by("window_start").values_list("window_start", "calls")) == [
        (TEN_O_CLOCK, 1), (datetime(2026, 3, 5, 11, 0, tzinfo=UTC), 1),
    ]


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 20, tzinfo=UTC), tick=False)
@responses.activate
def test_rate_limit_headers_set_the_window_and_stop_calls_when_none_remain():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=None)
    session = ApiSession(connection, budget_max_wait_seconds=0)
    responses.add(
        responses.GET, API, json={}, headers={"X-RateLimit-Limit": "100", "X-RateLimit-Remaining": "0"}
    )

    # when
    session.request("GET", API)
    with pytest.raises(RetryLater) as raised:
        session.request("GET", API)

    # then
    assert len(responses.calls) == 1
    assert raised.value.retry_at == datetime(2026, 3, 5, 11, 0, tzinfo=UTC)
    window = CallBudgetWindow.objects.get(connection=connection)
    assert (window.limit, window.remaining_reported, window.calls) == (100, 0, 0)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 20, tzinfo=UTC), tick=False)
@responses.activate
def test_a_configured_budget_below_the_reported_limit_is_kept_and_remaining_counts_down():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=50)
    session = ApiSession(connection)
    responses.add(
        responses.GET, API, json={}, headers={"X-RateLimit-Limit": "15000", "X-RateLimit-Remaining": "9"}
    )
    responses.add(responses.GET, API, json={})

    # when
    session.request("GET", API)
    session.request("GET", API)

    # then
    window = CallBudgetWindow.objects.get(connection=connection)
    assert (window.limit, window.calls, window.remaining_reported) == (50, 2, 8)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 34, tzinfo=UTC), tick=False)
@responses.activate
def test_a_429_while_calls_remain_leaves_the_budget_open():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=None)
    session = ApiSession(connection, sleep=lambda seconds: None, budget_max_wait_seconds=0)
    throttled = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "4985", "X-RateLimit-Reset": "1560"}
    responses.add(responses.GET, API, status=429, headers=throttled)
    responses.add(responses.GET, API, json={}, headers={**throttled, "X-RateLimit-Remaining": "4984"})

    # when
    session.request("GET", API)
    session.request("GET", API)

    # then
    assert len(responses.calls) == 3
    window = CallBudgetWindow.objects.get(connection=connection)
    # Between stored reports each call counts the remaining calls down itself (the throttled call too, to be safe).
    assert (window.calls, window.limit, window.remaining_reported) == (2, 5000, 4983)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 20, tzinfo=UTC), tick=False)
@responses.activate
def test_a_spent_budget_waits_for_the_reset_the_system_names_not_for_the_clock_hour():
    # given: the system's window turns over in 300 s, at 10:25
    connection = ConnectionFactory(system="stripe", hourly_call_budget=None)
    session = ApiSession(connection, budget_max_wait_seconds=0)
    responses.add(responses.GET, API, json={}, headers={
        "X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "300"})
    responses.add(responses.GET, API, json={}, headers={
        "X-RateLimit-Limit": "500", "X-RateLimit-Remaining": "499", "X-RateLimit-Reset": "3600"})
    session.request("GET", API)

    # when
    with pytest.raises(RetryLater) as raised:
        session.request("GET", API)
    with time_machine.travel(datetime(2026, 3, 5, 10, 25, 1, tzinfo=UTC), tick=False):
        session.request("GET", API)

    # then
    assert raised.value.retry_at == datetime(2026, 3, 5, 10, 25, tzinfo=UTC)
    assert len(responses.calls) == 2
    window = CallBudgetWindow.objects.get(connection=connection)
    assert (window.calls, window.remaining_reported) == (1, 499)


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 50, tzinfo=UTC), tick=False)
@responses.activate
def test_a_spent_budget_whose_reset_falls_in_the_next_clock_hour_stays_spent_until_then():
    # given: at 10:50 the system says none remain until 11:16
    connection = ConnectionFactory(system="stripe", hourly_call_budget=None)
    session = ApiSession(connection, budget_max_wait_seconds=0)
    responses.add(responses.GET, API, json={}, headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1560"})
    session.request("GET", API)

    # when
    with time_machine.travel(datetime(2026, 3, 5, 11, 5, tzinfo=UTC), tick=False):
        with pytest.raises(RetryLater) as raised:
            session.request("GET", API)

    # then
    assert raised.value.retry_at == datetime(2026, 3, 5, 11, 16, tzinfo=UTC)
    assert len(responses.calls) == 1


@pytest.mark.django_db
@responses.activate
def test_no_budget_and_no_rate_limit_headers_keep_no_window():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=None)
    responses.add(responses.GET, API, json={})

    # when
    ApiSession(connection).request("GET", API)

    # then
    assert CallBudgetWindow.objects.count() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_racing_workers_on_postgres_make_exactly_the_budgeted_number_of_calls():
    # given
    connection = ConnectionFactory(system="stripe", hourly_call_budget=5)
    start = threading.Barrier(4)
    made, refused, failures = [], [], []

    def worker():
        session = ApiSession(connection, budget_max_wait_seconds=0)
        start.wait()
        try:
            for _ in range(4):
                try:
                    session.request("GET", API)
                    made.append(1)
                except RetryLater:
                    refused.append(1)
        except Exception as exc:  # surfaced in the assertion below
            failures.append(exc)
        finally:
            db_connection.close()

    # when
    with responses.RequestsMock() as mocked:
        mocked.add(responses.GET, API, json={})
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        calls = len(mocked.calls)

    # then
    assert failures == []
    assert (len(made), len(refused), calls) == (5, 11, 5)
    assert CallBudgetWindow.objects.get(connection=connection).calls == 5


def _budget_statements(queries) -> list[str]:
    return [query["sql"].split()[0] for query in queries if "callbudgetwindow" in query["sql"]]


@pytest.mark.django_db
@time_machine.travel(datetime(2026, 3, 5, 10, 20, tzinfo=UTC), tick=False)
@responses.activate
def test_a_call_costs_at_most_one_budget_statement_once_the_hour_is_known(settings):
    # given a budgeted connection whose system reports plenty remaining, and one with no budget at all
    from django.test.utils import CaptureQueriesContext

    settings.HTTP_LOG_EXCHANGES = False
    budgeted = ConnectionFactory(system="stripe", hourly_call_budget=5000)
    unbudgeted = ConnectionFactory(system="paypal", hourly_call_budget=None)
    responses.add(responses.GET, API, json={}, headers={"X-RateLimit-Limit": "5000",
                                                        "X-RateLimit-Remaining": "4990"})
    responses.add(responses.GET, "https://api-m.paypal.test/v2/payments/captures/1", json={})
    visma, paypal = ApiSession(budgeted), ApiSession(unbudgeted)
    visma.request("GET", API)
    paypal.request("GET", "https://api-m.paypal.test/v2/payments/captures/1")

    # when
    with CaptureQueriesContext(db_connection) as visma_calls:
        for _ in range(3):
            visma.request("GET", API)
    with CaptureQueriesContext(db_connection) as paypal_calls:
        for _ in range(3):
            paypal.request("GET", "https://api-m.paypal.test/v2/payments/captures/1")

    # then: the budgeted call's one counting UPDATE; nothing for the connection without a budget
    assert _budget_statements(visma_calls.captured_queries) == ["UPDATE"] * 3
    assert _budget_statements(paypal_calls.captured_queries) == []
    window = CallBudgetWindow.objects.get(connection=budgeted)
    assert (window.calls, window.remaining_reported) == (4, 4987)
