"""Keeps the tenant's mirror of Visma reference data current: full or delta refreshes, and one-value live checks."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from django.conf import settings
from django.db import models
from django.db.models import Max
from django.utils import timezone

from connectors.errors import PermanentError, TransientError
from connectors.models import Integration, SyncCursor
from connectors.visma import reference as visma
from connectors.visma.client import VismaClient, visma_client_for

from .models import Currency, Customer, CustomerInvoice, DimensionValue, FinancialPeriod, GLAccount, Supplier
from .services import LiveCheck, mapping_rules_revalidate

ACCOUNTS, DIMENSION_VALUES, CUSTOMERS, SUPPLIERS = "accounts", "dimension_values", "customers", "suppliers"
CUSTOMER_INVOICES, CURRENCIES = "customer_invoices", "currencies"
FINANCIAL_PERIODS = "financial_periods"
REFERENCE_KINDS = (ACCOUNTS, DIMENSION_VALUES, CUSTOMERS, SUPPLIERS, CUSTOMER_INVOICES, CURRENCIES, FINANCIAL_PERIODS)
MIRROR_MODEL: dict[str, type[models.Model]] = {
    ACCOUNTS: GLAccount, DIMENSION_VALUES: DimensionValue, CUSTOMERS: Customer, SUPPLIERS: Supplier,
    CUSTOMER_INVOICES: CustomerInvoice, CURRENCIES: Currency, FINANCIAL_PERIODS: FinancialPeriod,
}
# Kinds read whole every time: small, and without a documented delta.
READ_WHOLE = (DIMENSION_VALUES, CURRENCIES, FINANCIAL_PERIODS)
BATCH_SIZE = 500


@dataclass(frozen=True)
class ReferenceRefresh:
    """Rows read per kind, mirror rows marked inactive because Visma no longer has them, rules now invalid."""

    accounts: int = 0
    dimension_values: int = 0
    customers: int = 0
    suppliers: int = 0
    customer_invoices: int = 0
    currencies: int = 0
    financial_periods: int = 0
    deactivated: int = 0
    invalid_rules: int = 0


# --- upserts into the mirror ----------------------------------------------------------------------------------


def _batches(items: Iterable, size: int = BATCH_SIZE) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _upsert(model: type[models.Model], rows: list[models.Model], unique: list[str], update: list[str]) -> None:
    model.objects.bulk_create(
        rows, update_conflicts=True, unique_fields=unique, update_fields=[*update, "refreshed_at"]
    )


def _account_row(tenant, account: visma.VismaAccount) -> GLAccount:
    return GLAccount(
        tenant=tenant, number=account.number, description=account.description[:255],
        account_type=account.account_type[:32], currency=account.currency[:3], active=account.active,
        visma_last_modified=account.last_modified, control_account_module=account.control_account_module[:32],
    )


def _dimension_row(tenant, value: visma.VismaSegmentValue) -> DimensionValue:
    return DimensionValue(
        tenant=tenant, dimension=value.dimension, segment_id=value.segment_id, segment_name=value.segment_name[:100],
        value=value.value, description=value.description[:255], active=value.active,
        visma_last_modified=value.last_modified,
    )


def _customer_row(tenant, party: visma.VismaParty) -> Customer:
    return Customer(
        tenant=tenant, number=party.number, name=party.name[:255], customer_class=party.party_class[:64],
        currency=party.currency[:3], active=party.active, visma_last_modified=party.last_modified,
    )


def _supplier_row(tenant, party: visma.VismaParty) -> Supplier:
    return Supplier(
        tenant=tenant, number=party.number, name=party.name[:255], supplier_class=party.party_class[:64],
        currency=party.currency[:3], active=party.active, visma_last_modified=party.last_modified,
    )


def _customer_invoice_row(tenant, invoice: visma.VismaInvoiceRef) -> CustomerInvoice:
    return CustomerInvoice(
        tenant=tenant, number=invoice.number[:32], external_reference=invoice.external_reference[:64],
        customer=invoice.customer[:64], currency=invoice.currency[:3], status=invoice.status[:32],
        active=invoice.active, visma_last_modified=invoice.last_modified,
    )


def _currency_row(tenant, currency: visma.VismaCurrency) -> Currency:
    return Currency(tenant=tenant, code=currency.code[:3], description=currency.description[:100],
                    is_base=currency.is_base, decimals=currency.decimals, active=True)


def _financial_period_row(tenant, period: visma.VismaFinancialPeriod) -> FinancialPeriod:
    return FinancialPeriod(
        tenant=tenant, period_id=period.period_id[:6], year=period.year, start_date=period.start_date,
        end_date=period.end_date, description=period.description[:100], active=period.active,
        closed_in_general_ledger=period.closed_in_general_ledger,
        closed_in_customer_ledger=period.closed_in_customer_ledger,
        closed_in_supplier_ledger=period.closed_in_supplier_ledger,
        closed_in_cash_management=period.closed_in_cash_management,
    )


@dataclass(frozen=True)
class _Kind:
    """How one kind of reference data is read from Visma and stored in the mirror."""

    read_all: Callable[..., Iterable]
    row: Callable
    unique: list[str]
    update: list[str]


_KINDS: dict[str, _Kind] = {
    ACCOUNTS: _Kind(
        read_all=visma.visma_accounts_read, row=_account_row, unique=["tenant", "number"],
        update=["description", "account_type", "currency", "active", "visma_last_modified", "control_account_module"],
    ),
    DIMENSION_VALUES: _Kind(
        read_all=lambda client, since: visma.visma_dimension_values_read(client, visma.SUBACCOUNT),
        row=_dimension_row, unique=["tenant", "dimension", "segment_id", "value"],
        update=["segment_name", "description", "active", "visma_last_modified"],
    ),
    CUSTOMERS: _Kind(
        read_all=visma.visma_customers_read, row=_customer_row, unique=["tenant", "number"],
        update=["name", "customer_class", "currency", "active", "visma_last_modified"],
    ),
    SUPPLIERS: _Kind(
        read_all=visma.visma_suppliers_read, row=_supplier_row, unique=["tenant", "number"],
        update=["name", "supplier_class", "currency", "active", "visma_last_modified"],
    ),
    CUSTOMER_INVOICES: _Kind(
        read_all=visma.visma_customer_invoices_read, row=_customer_invoice_row, unique=["tenant", "number"],
        update=["external_reference", "customer", "currency", "status", "active", "visma_last_modified"],
    ),
    CURRENCIES: _Kind(
        read_all=visma.visma_currencies_read, row=_currency_row, unique=["tenant", "code"],
        update=["description", "is_base", "decimals", "active"],
    ),
    FINANCIAL_PERIODS: _Kind(
        read_all=visma.visma_financial_periods_read, row=_financial_period_row, unique=["tenant", "period_id"],
        update=["year", "start_date", "end_date", "description", "active", "closed_in_general_ledger",
                "closed_in_customer_ledger", "closed_in_supplier_ledger", "closed_in_cash_management"],
    ),
}


def _kind_refresh(tenant, kind: str, client: VismaClient, *, since: datetime | None) -> tuple[int, int]:
    """Stream one kind into the mirror page by page; a complete read also retires rows Visma no longer has."""
    spec = _KINDS[kind]
    model = MIRROR_MODEL[kind]
    started = timezone.now()
    read = 0
    for batch in _batches(spec.read_all(client, since=since)):
        _upsert(model, [spec.row(tenant, item) for item in batch], spec.unique, spec.update)
        read += len(batch)
    deactivated = 0
    if since is None:
        # Every row Visma still has was just stamped; an older stamp means Visma no longer lists it.
        gone = model.objects.filter(tenant=tenant, active=True, refreshed_at__lt=started)
        if kind == DIMENSION_VALUES:
            gone = gone.filter(dimension=visma.SUBACCOUNT)
        deactivated = gone.update(active=False)
    return read, deactivated


# --- where the last refresh got to ----------------------------------------------------------------------------


def _cursor_integration(tenant) -> Integration | None:
    """The tenant's oldest integration carries the reference cursors (SyncCursor needs an integration)."""
    return Integration.objects.filter(tenant=tenant).order_by("created_at", "pk").first()


def reference_cursor_stream(kind: str) -> str:
    return f"visma:reference:{kind}"


def reference_refreshed_since(tenant, kind: str, integration: Integration | None = None) -> datetime | None:
    """When the last refresh of a kind started; without a cursor, the newest Visma change the mirror holds.

    The fallback is Visma's own lastModifiedDateTime, not refreshed_at: a live check moves refreshed_at for one
    row, and a delta from there would skip everything else changed since the last refresh.
    """
    if integration is not None:
        cursor = SyncCursor.objects.filter(integration=integration, stream=reference_cursor_stream(kind)).first()
        if cursor is not None and cursor.position is not None:
            return cursor.position
    latest = MIRROR_MODEL[kind].objects.filter(tenant=tenant).aggregate(latest=Max("visma_last_modified"))
    return latest["latest"]


# --- the services ---------------------------------------------------------------------------------------------


def reference_data_refresh(tenant, *, full: bool = False, kinds: Iterable[str] = REFERENCE_KINDS,
                           client: VismaClient | None = None, revalidate_rules: bool = True) -> ReferenceRefresh:
    """Bring the mirror in line with Visma (delta since the last refresh, with an overlap, unless `full`), then
    re-check every mapping rule of the tenant against it (not needed when only invoices were read)."""
    kinds = list(kinds)
    unknown = [kind for kind in kinds if kind not in _KINDS]
    if unknown:
        raise ValueError(f"unknown reference kind(s) {', '.join(unknown)}; known: {', '.join(REFERENCE_KINDS)}")
    own_client = client is None
    client = client or visma_client_for(tenant)
    integration = _cursor_integration(tenant)
    counts: dict[str, int] = {}
    deactivated = 0
    try:
        for kind in kinds:
            started = timezone.now()
            # A dimension is read whole each time: it is small, and its delta semantics are not documented.
            since = None if full or kind in READ_WHOLE else reference_refreshed_since(tenant, kind, integration)
            counts[kind], retired = _kind_refresh(tenant, kind, client, since=since)
            deactivated += retired
            if kind == CUSTOMER_INVOICES:
                _invoices_read_at[tenant.pk] = started
            if integration is not None:
                SyncCursor.objects.update_or_create(
                    integration=integration, stream=reference_cursor_stream(kind), defaults={"position": started}
                )
    finally:
        if own_client:
            client.close()
    invalid_rules = mapping_rules_revalidate(tenant) if revalidate_rules else 0
    return ReferenceRefresh(**counts, deactivated=deactivated, invalid_rules=invalid_rules)


def tenant_base_currency(tenant, *, client: VismaClient | None = None) -> str | None:
    """The base currency of the tenant's Visma company, from the mirror; read from Visma (/v1/currency) when the
    mirror has none yet. None when Visma names none."""
    code = Currency.objects.filter(tenant=tenant, is_base=True, active=True).values_list("code", flat=True).first()
    if code is None:
        reference_data_refresh(tenant, kinds=[CURRENCIES], client=client, revalidate_rules=False)
        code = Currency.objects.filter(tenant=tenant, is_base=True, active=True).values_list("code", flat=True).first()
    return code


LIVE_KINDS = ("account", "dimension", "customer", "supplier")


def reference_exists_live(tenant, kind: str, key: str, *, client: VismaClient | None = None) -> bool:
    """Re-read one reference value from Visma now, mirror what Visma says, and tell whether it is active.

    `kind` is a LiveCheck kind: account, dimension (a SUBACCOUNT segment value keyed "<segment id>:<value>", or a
    bare value of any segment; the whole dimension is re-read, one call), customer or supplier. A value Visma does
    not have (404) is marked inactive in the mirror.
    """
    if kind not in LIVE_KINDS:
        raise ValueError(f"unknown reference kind {kind!r}; known: {', '.join(LIVE_KINDS)}")
    client = client or visma_client_for(tenant)
    try:
        if kind == "dimension":
            _kind_refresh(tenant, DIMENSION_VALUES, client, since=None)
            return _dimension_values(tenant, key).filter(active=True).exists()
        read_one, mirror_kind = {
            "account": (visma.visma_account_read, ACCOUNTS),
            "customer": (visma.visma_customer_read, CUSTOMERS),
            "supplier": (visma.visma_supplier_read, SUPPLIERS),
        }[kind]
        found = read_one(client, key)
    except PermanentError as exc:
        # Not knowing is not "inactive": the record waits for a later check instead of being flagged wrongly.
        raise TransientError(
            f"could not check {kind} {key} in Visma: {exc}", status_code=exc.status_code,
            system_message=exc.system_message,
        ) from exc
    model = MIRROR_MODEL[mirror_kind]
    if found is None:
        model.objects.filter(tenant=tenant, number=key).update(active=False)
        return False
    spec = _KINDS[mirror_kind]
    _upsert(model, [spec.row(tenant, found)], spec.unique, spec.update)
    return found.active


def _dimension_values(tenant, key: str):
    """The mirror rows a dimension key names: "<segment id>:<value>" (as posting_validate asks), or a bare value."""
    segment, separator, value = key.partition(":")
    rows = DimensionValue.objects.filter(tenant=tenant, dimension=visma.SUBACCOUNT)
    if separator and segment.strip().isdigit():
        return rows.filter(segment_id=int(segment), value=value)
    return rows.filter(value=key)


def reference_live_check(tenant, *, client: VismaClient | None = None) -> LiveCheck:
    """A LiveCheck for posting_validate: the caller's Visma client, else one made on first use."""
    clients: list[VismaClient] = [client] if client is not None else []

    def check(kind: str, key: str) -> bool:
        if not clients:
            clients.append(visma_client_for(tenant))
        return reference_exists_live(tenant, kind, key, client=clients[0])

    return check


@dataclass(frozen=True)
class InvoiceFound:
    """A Visma customer invoice found by its external reference: number, customer, currency, status, and whether a
    payment can settle it now (released and not yet paid)."""

    number: str
    customer: str
    currency: str
    status: str
    payable: bool


def customer_invoice_by_reference(tenant, reference: str, *, client: VismaClient | None = None,
                                  paid_at: datetime | None = None) -> InvoiceFound | None:
    """The Visma customer invoice whose externalReference is `reference`, from the mirror (an open one first).

    When none is found, or none can be paid yet, the mirror is read again from Visma first (a delta: one call for
    every payment in the meantime) unless it was read within VISMA_INVOICE_MIRROR_MAX_AGE_SECONDS and, for a payment
    made at `paid_at`, after it: an invoice is written before it is paid, so a read that started after the payment
    holds it, and an invoice written a moment before the payment (after the mirror's last read) is never missed and
    the payment booked as a journal. A reference Visma lacks costs no call of its own once the mirror was read after
    its payment.
    """
    found = _invoice_by_reference(tenant, reference)
    if (found is None or not found.payable) and not _invoice_mirror_fresh(tenant, since=paid_at):
        reference_data_refresh(tenant, kinds=[CUSTOMER_INVOICES], client=client, revalidate_rules=False)
        found = _invoice_by_reference(tenant, reference)
    return found


# When this process last read each tenant's invoice mirror from Visma: a fresh read costs no query to know.
_invoices_read_at: dict[int, datetime] = {}


def _invoice_mirror_fresh(tenant, *, since: datetime | None = None) -> bool:
    oldest = timezone.now() - timedelta(seconds=settings.VISMA_INVOICE_MIRROR_MAX_AGE_SECONDS)
    if since is not None:
        oldest = max(oldest, since)
    read_at = _invoices_read_at.get(tenant.pk)
    if read_at is None or read_at < oldest:
        # Another process may have read it since.
        read_at = (SyncCursor.objects.filter(integration__tenant=tenant, stream=reference_cursor_stream(
            CUSTOMER_INVOICES)).order_by("integration__created_at", "integration").values_list(
            "position", flat=True).first())
    return read_at is not None and read_at >= oldest


def reference_memo_clear() -> None:
    """Forget when this process read the invoice mirrors (a test's database is not the next one's)."""
    _invoices_read_at.clear()


def _invoice_by_reference(tenant, reference: str) -> InvoiceFound | None:
    row = (CustomerInvoice.objects.filter(tenant=tenant, external_reference=reference)
           .values_list("number", "customer", "currency", "status", "active").order_by("-active", "number").first())
    return InvoiceFound(*row) if row else None
