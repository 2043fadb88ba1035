"""Reads of Visma reference data (GL accounts, subaccount segment values, customers, suppliers, the customer
invoices a payment may settle) as typed rows."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import quote

from django.utils.dateparse import parse_datetime

from .client import VismaClient

SUBACCOUNT = "SUBACCOUNT"
# Statuses in which Visma takes no new documents for the customer or supplier.
INACTIVE_STATUSES = frozenset({"Inactive", "OnHold"})
CUSTOMER_INVOICES = "/v1/customerinvoice"
# CustomerInvoiceDto.status values a payment can still be applied to (swagger: Hold, Balanced, Voided, Scheduled,
# Open, Closed, PendingPrint, PendingEmail, CreditHold, CcHold, Reserved): released and not yet paid.
PAYABLE_INVOICE_STATUSES = frozenset({"Open"})


@dataclass(frozen=True)
class VismaAccount:
    number: str
    description: str
    account_type: str
    currency: str
    active: bool
    last_modified: datetime | None
    # AccountDto.controlAccountModule: the ledger (AR, AP...) the account is a control account of; "" when none.
    control_account_module: str = ""


@dataclass(frozen=True)
class VismaSegmentValue:
    dimension: str
    segment_id: int
    segment_name: str
    value: str
    description: str
    active: bool
    last_modified: datetime | None


@dataclass(frozen=True)
class VismaParty:
    """A customer or a supplier: who it is, its class and currency, and whether it takes new documents."""

    number: str
    name: str
    party_class: str
    currency: str
    active: bool
    last_modified: datetime | None


@dataclass(frozen=True)
class VismaInvoiceRef:
    """A customer invoice as a payment needs to find it: its number, the external reference it carries, whose it is,
    its currency, and whether a payment can still settle it."""

    number: str
    external_reference: str
    customer: str
    currency: str
    status: str
    active: bool
    last_modified: datetime | None


@dataclass(frozen=True)
class VismaFinancialPeriod:
    """A financial period of the company's calendar (FinancialPeriodDto): its id (YYYYPP), its first and last day,
    whether it is open for posting (`active`) and in which ledgers it is closed."""

    period_id: str
    year: int
    start_date: date
    end_date: date
    description: str
    active: bool
    closed_in_general_ledger: bool
    closed_in_customer_ledger: bool
    closed_in_supplier_ledger: bool
    closed_in_cash_management: bool
    last_modified: datetime | None = None


@dataclass(frozen=True)
class VismaCurrency:
    """A currency of the company (CurrencyDto): its code, whether it is the company's base currency, its decimals."""

    code: str
    description: str
    is_base: bool
    decimals: int | None


def visma_timestamp(value: str | None) -> datetime | None:
    """A Visma timestamp as an aware datetime; one without an offset is taken as UTC (Visma does not say)."""
    if not value:
        return None
    moment = parse_datetime(str(value))
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _account(row: dict) -> VismaAccount:
    return VismaAccount(
        number=str(row["accountCD"]).strip(),
        description=str(row.get("description") or ""),
        account_type=str(row.get("type") or ""),
        currency=str(row.get("currency") or ""),
        active=bool(row.get("active", True)),
        last_modified=visma_timestamp(row.get("lastModifiedDateTime")),
        control_account_module=str(row.get("controlAccountModule") or "").strip(),
    )


def _party(row: dict, class_field: str) -> VismaParty:
    party_class = row.get(class_field) or {}
    return VismaParty(
        number=str(row["number"]).strip(),
        name=str(row.get("name") or ""),
        party_class=str(party_class.get("id") or "") if isinstance(party_class, dict) else str(party_class),
        currency=str(row.get("currencyId") or ""),
        active=str(row.get("status") or "Active") not in INACTIVE_STATUSES,
        last_modified=visma_timestamp(row.get("lastModifiedDateTime")),
    )


def visma_accounts_read(client: VismaClient, *, since: datetime | None = None) -> Iterator[VismaAccount]:
    """GL accounts, active and inactive (GET /v1/account has no pageNumber paging: one response)."""
    for row in client.changed("/v1/account", since=since, key="accountCD", paged=False):
        yield _account(row)


def visma_account_read(client: VismaClient, number: str) -> VismaAccount | None:
    row = client.get_one(f"/v1/account/{quote(number, safe='')}")
    return _account(row) if row else None


def visma_dimension_values_read(client: VismaClient, dimension: str = SUBACCOUNT) -> list[VismaSegmentValue]:
    """Every value of every segment of a dimension (GET /v1/dimension/{id} with the segment values expanded)."""
    document = client.get_json(f"/v1/dimension/{quote(dimension, safe='')}", params={"expandSegmentsValues": "true"})
    values = []
    for segment in (document or {}).get("segments") or []:
        segment_id = int(segment["segmentId"])
        for row in segment.get("segmentValues") or []:
            values.append(
                VismaSegmentValue(
                    dimension=dimension,
                    segment_id=segment_id,
                    segment_name=str(segment.get("description") or ""),
                    value=str(row["valueId"]).strip(),
                    description=str(row.get("description") or ""),
                    active=bool(row.get("active", True)),
                    last_modified=visma_timestamp(row.get("lastModified")),
                )
            )
    return values


def visma_currencies_read(client: VismaClient, *, since: datetime | None = None) -> list[VismaCurrency]:
    """Every currency of the company, the base one flagged (GET /v1/currency, CurrencyDto.isBaseCurrency; the list
    has no delta filter: read whole each time)."""
    return [VismaCurrency(code=str(row["id"]).strip().upper(), description=str(row.get("description") or ""),
                          is_base=bool(row.get("isBaseCurrency")),
                          decimals=int(row["decimalPrecision"]) if row.get("decimalPrecision") is not None else None)
            for row in client.get_json("/v1/currency") or []]


def visma_vat_rate_read(client: VismaClient, vat_id: str, day: date) -> Decimal | None:
    """The rate (%) of a VAT code on `day`: the VAT schedule row with the latest startDate not after it
    (GET /v1/vat/{vatId}, VatInformationDto.schedules[].startDate / vatRate); None when Visma lacks the code or it
    has no rate then."""
    vat = client.get_one(f"/v1/vat/{quote(vat_id, safe='')}")
    rows = [row for row in (vat or {}).get("schedules") or []
            if row.get("vatRate") is not None and str(row.get("startDate") or "")[:10] <= day.isoformat()]
    if not rows:
        return None
    rate = Decimal(str(max(rows, key=lambda row: str(row.get("startDate") or ""))["vatRate"]))
    return rate.quantize(Decimal(1)) if rate == rate.to_integral_value() else rate.normalize()


def visma_customers_read(client: VismaClient, *, since: datetime | None = None) -> Iterator[VismaParty]:
    for row in client.changed("/v1/customer", since=since, key="number"):
        yield _party(row, "customerClass")


def visma_customer_read(client: VismaClient, number: str) -> VismaParty | None:
    row = client.get_one(f"/v1/customer/{quote(number, safe='')}")
    return _party(row, "customerClass") if row else None


def visma_suppliers_read(client: VismaClient, *, since: datetime | None = None) -> Iterator[VismaParty]:
    for row in client.changed("/v1/supplier", since=since, key="number"):
        yield _party(row, "supplierClass")


def visma_supplier_read(client: VismaClient, number: str) -> VismaParty | None:
    row = client.get_one(f"/v1/supplier/{quote(number, safe='')}")
    return _party(row, "supplierClass") if row else None


def _invoice_ref(row: dict) -> VismaInvoiceRef:
    customer = row.get("customer") or {}
    status = str(row.get("status") or "")
    return VismaInvoiceRef(
        number=str(row["referenceNumber"]).strip(),
        external_reference=str(row.get("externalReference") or "").strip(),
        customer=str(customer.get("number") or "") if isinstance(customer, dict) else str(customer),
        currency=str(row.get("currencyId") or ""),
        status=status,
        active=status in PAYABLE_INVOICE_STATUSES,
        last_modified=visma_timestamp(row.get("lastModifiedDateTime")),
    )


def visma_customer_invoices_read(client: VismaClient, *, since: datetime | None = None) -> Iterator[VismaInvoiceRef]:
    """Customer invoices (documentType Invoice): every one changed since `since` (any status, so one paid or voided
    since is seen), or, for a full read, the open ones (what a payment can settle)."""
    params = {"documentType": "Invoice", **({} if since is not None else {"status": "Open"})}
    for row in client.changed(CUSTOMER_INVOICES, since=since, key="referenceNumber", params=params):
        yield _invoice_ref(row)


FINANCIAL_PERIODS = "/v1/financialPeriod"


def _visma_day(value: Any, what: str) -> date:
    moment = parse_datetime(str(value or "")) or (date.fromisoformat(str(value)) if value else None)
    if moment is None:
        raise ValueError(f"financial period {what} {value!r} is not a date")
    return moment.date() if isinstance(moment, datetime) else moment


def visma_financial_periods_read(client: VismaClient, *, since: datetime | None = None) -> list[VismaFinancialPeriod]:
    """The company's whole financial calendar (GET /v1/financialPeriod, one answer; it has no delta).

    FinancialPeriodDto.endDate is "the date when the financial period ends": written either as the period's last day
    or, as Acumatica stores FinPeriod.EndDate, as the next period's first day. Which one this company writes is
    read from the calendar itself (a period ending on the day the next one starts); without that evidence the
    shorter reading is taken, so a date is never booked into a period it may not belong to.
    """
    rows = client.get_json(FINANCIAL_PERIODS) or []
    periods = sorted(
        ((str(row["period"]).strip(), row) for row in rows if row.get("period")),
        key=lambda pair: (_visma_day(pair[1].get("startDate"), "startDate"), pair[0]),
    )
    starts = {_visma_day(row.get("startDate"), "startDate") for _, row in periods}
    ends = [_visma_day(row.get("endDate"), "endDate") for _, row in periods]
    inclusive = any(end + timedelta(days=1) in starts for end in ends) and not any(end in starts for end in ends)
    result = []
    for (period_id, row), end in zip(periods, ends):
        start = _visma_day(row.get("startDate"), "startDate")
        last_day = end if inclusive else end - timedelta(days=1)
        result.append(VismaFinancialPeriod(
            period_id=period_id, year=int(row.get("year") or period_id[:4]), start_date=start,
            end_date=last_day, description=str(row.get("description") or ""),
            active=bool(row.get("active", False)),
            closed_in_general_ledger=bool(row.get("closedInGeneralLedger")),
            closed_in_customer_ledger=bool(row.get("closedInCustomerLedger")),
            closed_in_supplier_ledger=bool(row.get("closedInSupplierLedger")),
            closed_in_cash_management=bool(row.get("closedInCashManagement")),
        ))
    return result
