"""The emulated company's financial calendar: GET /v1/financialPeriod (FinancialPeriodDto), and the period checks a
document's date and period pass before Visma takes it.

Visma's calendar is the company's own (ScreenId GL201000, "Financial periods"): a financial year may start in any
month, have 12 monthly periods or 13 four-week ones, and each period is open (`active`) and closed per ledger
(`closedInGeneralLedger`, `closedInCustomerLedger`, ...). The switches below make each shape (control switch
`financial-periods`), so the connector is proven against a calendar that is not the calendar month.
"""
from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db import transaction

from .models import VismaDocument
from .visma_store import VismaError, visma_document_create, visma_document_find, visma_documents_all

COLLECTION = "financial_period"
DEFAULT_YEARS = tuple(range(2024, 2029))
# FinancialPeriodDto's "closedIn…" flag that stops a document of each ledger (swagger FinancialPeriodDto).
LEDGER_FLAGS = {
    "GL": ("closedInGeneralLedger", "General ledger"),
    "AR": ("closedInCustomerLedger", "Customer ledger"),
    "AP": ("closedInSupplierLedger", "Supplier ledger"),
    "CA": ("closedInCashManagement", "Cash management"),
}
# FinancialPeriodDto.endDate: the period's last day ("inclusive"), or, as Acumatica's FinPeriod.EndDate stores it,
# the next period's first day ("exclusive"). The swagger says only "the date when the financial period ends".
END_DATE_READINGS = ("inclusive", "exclusive")


@dataclass(frozen=True)
class CalendarShape:
    """How the company's financial years are cut: first month, 12 months or 13 four-week periods, which calendar
    year names the financial year (the one it ends in, or the one it starts in), and how endDate is written."""

    first_month: int = 1
    periods: int = 12
    year_named_by: str = "end"
    end_date: str = "inclusive"

    def __post_init__(self):
        if not 1 <= self.first_month <= 12:
            raise ValueError("first_month must be 1..12")
        if self.periods not in (12, 13):
            raise ValueError("periods must be 12 (months) or 13 (four-week periods)")
        if self.year_named_by not in ("end", "start"):
            raise ValueError("year_named_by must be end or start")
        if self.end_date not in END_DATE_READINGS:
            raise ValueError(f"end_date must be one of {', '.join(END_DATE_READINGS)}")


def _visma_date(day: date) -> str:
    return f"{day.isoformat()}T00:00:00"


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, 1)


def _year_bounds(year: int, shape: CalendarShape) -> date:
    """The first day of financial year `year`."""
    if shape.first_month == 1:
        return date(year, 1, 1)
    start_year = year - 1 if shape.year_named_by == "end" else year
    return date(start_year, shape.first_month, 1)


def financial_periods_build(shape: CalendarShape, years=DEFAULT_YEARS, *, closed=(), inactive=()) -> list[dict]:
    """FinancialPeriodDto bodies for the years; `closed` period ids are closed in every ledger, `inactive` ones are
    not open for posting."""
    bodies = []
    for year in years:
        start = _year_bounds(year, shape)
        for number in range(1, shape.periods + 1):
            if shape.periods == 12:
                first, following = _add_months(start, number - 1), _add_months(start, number)
                description = calendar.month_name[first.month]
            else:
                first = start + timedelta(weeks=4 * (number - 1))
                # The 13th four-week period runs to the end of the year (364 days and one or two more).
                following = start + timedelta(weeks=4 * number) if number < 13 else _add_months(start, 12)
                description = f"Period {number}"
            period_id = f"{year:04d}{number:02d}"
            is_closed = period_id in closed
            end = following if shape.end_date == "exclusive" else following - timedelta(days=1)
            bodies.append({
                "year": year,
                "period": period_id,
                "startDate": _visma_date(first),
                "endDate": _visma_date(end),
                "description": description,
                "active": period_id not in inactive,
                "closedInSupplierLedger": is_closed,
                "closedInCustomerLedger": is_closed,
                "closedInInventoryManagement": is_closed,
                "closedInGeneralLedger": is_closed,
                "closedInCashManagement": is_closed,
                "closedInFixedAssets": is_closed,
            })
    return bodies


def financial_periods_set(company_id: str, shape: CalendarShape, years=DEFAULT_YEARS, *, closed=(),
                          inactive=()) -> int:
    """Replace the company's financial calendar; returns how many periods it has."""
    bodies = financial_periods_build(shape, years, closed=frozenset(closed), inactive=frozenset(inactive))
    with transaction.atomic():
        visma_documents_all(company_id, COLLECTION).delete()
        for body in bodies:
            visma_document_create(company_id, COLLECTION, body["period"], body, label="Financial period")
    return len(bodies)


def financial_periods_seed_rows(shape: CalendarShape = CalendarShape(), years=DEFAULT_YEARS) -> list[tuple]:
    """(key, body) of a calendar for the seed company."""
    return [(body["period"], body) for body in financial_periods_build(shape, years)]


def financial_period_close(company_id: str, period_id: str, *, ledgers=tuple(LEDGER_FLAGS)) -> dict:
    """Close one period in the named ledgers (Visma: "Close financial periods" in each ledger)."""
    document = _period_document(company_id, period_id)
    for ledger in ledgers:
        document.body[LEDGER_FLAGS[ledger][0]] = True
    document.save(update_fields=["body"])
    return document.body


def _period_document(company_id: str, period_id: str) -> VismaDocument:
    document = visma_document_find(company_id, COLLECTION, period_id)
    if document is None:
        raise VismaError.not_found(f"Financial period '{period_id}' was not found.")
    return document


def _day(text: str) -> date:
    return datetime.fromisoformat(text).date()


def _last_day(company_id: str, body: dict) -> date:
    end = _day(body["endDate"])
    following = visma_documents_all(company_id, COLLECTION).filter(key__gt=body["period"]).order_by("key").first()
    if following is not None and _day(following.body["startDate"]) == end:
        return end - timedelta(days=1)  # written the exclusive way
    return end


def financial_period_of(company_id: str, day: date) -> dict | None:
    """The period a date falls in, by the company's own calendar; None when the calendar has none."""
    for document in visma_documents_all(company_id, COLLECTION).order_by("-key"):
        if _day(document.body["startDate"]) <= day <= _last_day(company_id, document.body):
            return document.body
    return None


def _label(period_id: str) -> str:
    # Visma's screens show a period as PP-YYYY.
    return f"{period_id[4:]}-{period_id[:4]}"


def financial_period_require(company_id: str, period_id: str | None, day: date, ledger: str, field_name: str) -> str:
    """The period a document posts to: the one it names (YYYYPP), else the one its date falls in; refused as Visma
    refuses it when the calendar has no such period, or it is inactive or closed in the document's ledger.

    Visma.net's own wording of the refusal is not in its public documents; the text follows Acumatica's (which
    Visma.net ERP is built on), as MYOB Advanced, also built on it, shows it: "The 03-2026 financial period of the
    company is closed in Accounts Receivable" (enterprisesupport.myob.com, "Error: The MM-YYYY financial period of
    the XX company is closed in Accounts Receivable").
    """
    if period_id:
        if len(period_id) != 6 or not period_id.isdigit():
            raise VismaError.invalid(f"{field_name}: '{period_id}' is not a period in the format YYYYPP.")
        document = visma_document_find(company_id, COLLECTION, period_id)
        if document is None:
            raise VismaError.invalid(f"{field_name}: Financial period '{_label(period_id)}' does not exist.")
        body = document.body
    else:
        body = financial_period_of(company_id, day)
        if body is None:
            raise VismaError.invalid(f"{field_name}: No financial period is defined for the date {day.isoformat()}.")
    label = _label(body["period"])
    if not body.get("active"):
        raise VismaError.invalid(f"{field_name}: The {label} financial period of the company is inactive.")
    flag, ledger_name = LEDGER_FLAGS[ledger]
    if body.get(flag):
        raise VismaError.invalid(f"{field_name}: The {label} financial period of the company is closed in "
                                 f"{ledger_name}.")
    return body["period"]


def financial_periods_list(company_id: str, greater_than: str | None) -> list[dict]:
    """GET /v1/financialPeriod: every period, or those after `greaterThanValue` (YYYY or YYYYPP)."""
    documents = visma_documents_all(company_id, COLLECTION).order_by("key")
    if greater_than:
        if len(greater_than) == 4 and greater_than.isdigit():
            documents = documents.filter(key__gt=f"{greater_than}99")
        elif len(greater_than) == 6 and greater_than.isdigit():
            documents = documents.filter(key__gt=greater_than)
        else:
            raise VismaError.invalid(f"greaterThanValue: '{greater_than}' is neither YYYY nor YYYYPP.")
    return [document.body for document in documents]
