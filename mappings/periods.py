"""The tenant's financial calendar as mirrored from Visma: the period a date posts to, whether it is open for a
document, and the first open one after a closed one."""
from __future__ import annotations

from bisect import bisect_right
from datetime import date

from .models import FinancialPeriod

# The ledgers whose close stops each document kind (FinancialPeriodDto closedIn…); every kind posts to the GL too.
GENERAL, CUSTOMER, SUPPLIER, CASH = ("closed_in_general_ledger", "closed_in_customer_ledger",
                                     "closed_in_supplier_ledger", "closed_in_cash_management")
LEDGERS_OF_DOCUMENT = {
    "journal": (GENERAL,),
    "customer_invoice": (CUSTOMER, GENERAL),
    "customer_payment": (CUSTOMER, GENERAL),
    "credit_note": (CUSTOMER, GENERAL),
    "customer_refund": (CUSTOMER, GENERAL),
    "supplier_invoice": (SUPPLIER, GENERAL),
    "supplier_payment": (SUPPLIER, GENERAL),
}
LEDGER_NAMES = {GENERAL: "the general ledger", CUSTOMER: "the customer ledger", SUPPLIER: "the supplier ledger",
                CASH: "cash management"}


class FinancialPeriodError(ValueError):
    """A date that cannot be booked: no period in the calendar, or its period is not open for the document."""


class FinancialCalendar:
    """The tenant's mirrored periods, read once: the period of a date, and whether a document may post to it."""

    def __init__(self, tenant):
        self.tenant = tenant
        self.refresh()

    def refresh(self) -> None:
        # Zero-length periods (an adjustment period) hold no date; inactive rows Visma no longer lists are kept:
        # a date in one is refused, never booked elsewhere.
        self._periods = [period for period in FinancialPeriod.objects.filter(tenant=self.tenant)
                         .order_by("start_date", "period_id") if period.end_date >= period.start_date]
        self._starts = [period.start_date for period in self._periods]

    def period_of(self, day: date) -> FinancialPeriod | None:
        """The period whose first and last day hold `day`; None when the calendar has none."""
        index = bisect_right(self._starts, day) - 1
        if index < 0:
            return None
        period = self._periods[index]
        return period if day <= period.end_date else None

    def problem(self, day: date, document: str) -> str | None:
        """Why a document dated `day` cannot be booked, in finance's words; None when its period is open."""
        period = self.period_of(day)
        if period is None:
            return (f"no financial period in Visma holds {day.isoformat()}: refresh the reference data, or add the "
                    "period in Visma (Financial periods), or approve the record into an open period")
        closed = _closed_in(period, document)
        if not period.active or closed:
            where = f"closed in {LEDGER_NAMES[closed]}" if closed else "not open for posting"
            return (f"financial period {period.period_id} ({period.description or period.start_date.isoformat()}) "
                    f"of {day.isoformat()} is {where} in Visma: approve the record into the first open period, or "
                    "reject it")
        return None

    def period_id(self, day: date) -> str:
        """The Visma period id (YYYYPP) a date posts to; FinancialPeriodError when the calendar has none (whether it
        is open for a document is `problem`'s question)."""
        period = self.period_of(day)
        if period is None:
            raise FinancialPeriodError(f"no financial period in Visma holds {day.isoformat()}: refresh the reference "
                                       "data, or add the period in Visma")
        return period.period_id

    def first_open(self, day: date, document: str) -> FinancialPeriod | None:
        """The first period open for the document, starting with the one holding `day` (or the next after it)."""
        for period in self._periods:
            if period.end_date >= day and period.active and not _closed_in(period, document):
                return period
        return None


def _closed_in(period: FinancialPeriod, document: str) -> str:
    """The first ledger (field name) in which the period is closed for the document; "" when none."""
    return next((ledger for ledger in LEDGERS_OF_DOCUMENT.get(document, (GENERAL,)) if getattr(period, ledger)), "")


def financial_period_first_open(tenant, day: date, document: str) -> FinancialPeriod | None:
    return FinancialCalendar(tenant).first_open(day, document)
