"""Real races on PostgreSQL: the emulator's shared state holds when several workers call at the same instant."""
from decimal import Decimal

import pytest

from sandbox.models import VismaCallWindow, VismaGLBalance
from sandbox.services import (
    VISMA_SANDBOX_COMPANY_ID,
    VismaCaller,
    visma_call_budget_spend,
    visma_client_configure,
    visma_sandbox_seed,
)
from sandbox.visma_erp import customer_create, journal_create
from sandbox.visma_store import VismaError
from tests.connectors.test_concurrency import race
from tests.sandbox.conftest import journal_body, value

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_workers_racing_for_the_last_calls_of_the_hour_never_overspend_the_budget():
    # given
    visma_sandbox_seed()
    client = visma_client_configure(hourly_call_budget=5)
    caller = VismaCaller(client=client, company_id=VISMA_SANDBOX_COMPANY_ID, scopes=frozenset())

    # when
    outcomes = race(*[lambda: visma_call_budget_spend(caller)] * 8)

    # then
    assert sorted(outcome for outcome, _ in outcomes) == ["ok"] * 5 + ["raised"] * 3
    assert {error.status for outcome, error in outcomes if outcome == "raised"} == {429}
    assert all(isinstance(error, VismaError) for outcome, error in outcomes if outcome == "raised")
    assert VismaCallWindow.objects.get().calls == 5


def test_customers_created_at_once_get_distinct_numbers():
    # given
    visma_sandbox_seed()

    # when
    def create(index: int):
        return lambda: customer_create(VISMA_SANDBOX_COMPANY_ID, {"name": value(f"Racer {index}")})

    outcomes = race(*[create(index) for index in range(6)])

    # then
    assert sorted(document.key for _, document in outcomes) == [str(number) for number in range(10251, 10257)]


def test_journals_posted_at_once_all_reach_the_gl_balance():
    # given
    visma_sandbox_seed()
    body = journal_body([("1920", 10, 0, []), ("3000", 0, 10, [])])

    # when
    outcomes = race(*[lambda: journal_create(VISMA_SANDBOX_COMPANY_ID, body)] * 6)

    # then
    assert [outcome for outcome, _ in outcomes] == ["ok"] * 6
    assert VismaGLBalance.objects.get(account_cd="1920").debit_total == Decimal("50060.00")
    assert VismaGLBalance.objects.get(account_cd="3000").credit_total == Decimal("60.00")
