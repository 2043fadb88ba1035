"""The tenant's financial calendar as mirrored from Visma: the period of a date, closed periods, the first open one."""
from datetime import date

import pytest

from mappings.periods import FinancialCalendar, FinancialPeriodError
from tests.factories import TenantFactory, financial_periods_mirror

pytestmark = pytest.mark.django_db


def _calendar(**shape) -> FinancialCalendar:
    tenant = TenantFactory(financial_periods=False)
    financial_periods_mirror(tenant, **shape)
    return FinancialCalendar(tenant)


@pytest.mark.parametrize(("day", "period_id"), [
    (date(2025, 7, 1), "202601"),   # the year's first day: named after the year it ends in
    (date(2025, 12, 31), "202606"),
    (date(2026, 2, 10), "202608"),
    (date(2026, 6, 30), "202612"),
    (date(2026, 7, 1), "202701"),
])
def test_a_fiscal_year_starting_in_july_gives_the_visma_period_not_the_calendar_month(day, period_id):
    # given
    calendar = _calendar(first_month=7)

    # then
    assert calendar.period_id(day) == period_id


def test_a_fiscal_year_named_by_the_year_it_starts_in_is_read_as_visma_has_it():
    # given
    calendar = _calendar(first_month=7, year_named_by="start")

    # then
    assert (calendar.period_id(date(2025, 7, 1)), calendar.period_id(date(2026, 2, 10))) == ("202501", "202508")


@pytest.mark.parametrize(("day", "period_id"), [
    (date(2026, 1, 28), "202601"),
    (date(2026, 1, 29), "202602"),
    (date(2026, 2, 26), "202603"),
    (date(2026, 12, 3), "202613"),
    (date(2026, 12, 31), "202613"),
])
def test_a_thirteen_period_year_books_by_its_four_week_periods(day, period_id):
    # given
    calendar = _calendar(periods=13)

    # then
    assert calendar.period_id(day) == period_id


def test_a_date_with_no_period_in_the_mirror_is_refused_with_the_reason():
    # given
    calendar = _calendar(years=[2026])

    # when
    with pytest.raises(FinancialPeriodError) as raised:
        calendar.period_id(date(2027, 1, 1))

    # then
    assert str(raised.value) == ("no financial period in Visma holds 2027-01-01: refresh the reference data, or add "
                                 "the period in Visma")
    assert calendar.problem(date(2027, 1, 1), "journal").startswith("no financial period in Visma holds 2027-01-01")


def test_a_closed_period_is_a_problem_and_the_first_open_one_follows_it():
    # given
    calendar = _calendar(years=[2026], closed={"202602", "202603"})

    # when
    problem = calendar.problem(date(2026, 2, 10), "customer_payment")
    first_open = calendar.first_open(date(2026, 2, 10), "customer_payment")

    # then
    assert problem == ("financial period 202602 (February) of 2026-02-10 is closed in the customer ledger in Visma: "
                       "approve the record into the first open period, or reject it")
    assert (first_open.period_id, first_open.start_date) == ("202604", date(2026, 4, 1))
    assert calendar.problem(date(2026, 4, 1), "customer_payment") is None


def test_a_period_closed_only_in_the_supplier_ledger_still_takes_a_journal():
    # given
    tenant = TenantFactory(financial_periods=False)
    financial_periods_mirror(tenant, years=[2026])
    tenant_periods = tenant_period(tenant, "202602")
    tenant_periods.closed_in_supplier_ledger = True
    tenant_periods.save()
    calendar = FinancialCalendar(tenant)

    # then
    assert calendar.problem(date(2026, 2, 10), "journal") is None
    assert "closed in the supplier ledger" in calendar.problem(date(2026, 2, 10), "supplier_invoice")


def tenant_period(tenant, period_id):
    from mappings.models import FinancialPeriod

    return FinancialPeriod.objects.get(tenant=tenant, period_id=period_id)
