"""Square invoices → Visma customer invoices, their payments → customer payments, their refunds → credit notes; the
Square customer on an invoice → the Visma customer (by reference_id, an external reference, or created).

Which payment pays an invoice: Square's Payment does not name its invoice, but an invoice names its order
(api.json `Invoice.order_id`) and a payment of it carries that order (`Payment.order_id`). The invoices stream keeps
what it read as records of the `invoices` stream (the invoice, its order id, its location) and remembers when it last
listed each location's invoices (a cursor row per location); `square_invoice_of_payment` looks there first and lists
a location again only when that list is older than the payment (docs/square-invoices.md).
"""
from __future__ import annotations

import weakref
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from django.utils import timezone

from audit.models import SyncRecord
from connectors.models import Integration, SyncCursor
from connectors.pipeline import SourceDataError, SourceObject, record_ingest
from mappings.money import MoneyError, from_minor

SYSTEM = "square"
INVOICES = "invoices"
INVOICE_PAYMENTS = "invoice_payments"
CUSTOMERS = "customers"
# InvoiceStatus (api.json): a DRAFT is not sent to the customer, so nobody owes it yet.
NOT_PUBLISHED = frozenset({"DRAFT"})
# ListInvoices has no "changed since" filter and Square does not say how soon a published invoice is listed
# (docs/square.md §5): a listing counts as knowing a payment's invoice only when it started this long after the payment
# was created (the stricter reading of "eventually consistent", which ListPayments states).
LISTING_SETTLE = timedelta(seconds=30)


# --- money and time -----------------------------------------------------------------------------------------------


def square_time(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as Square sends it ("2026-12-06T20:07:03.123Z") → an aware datetime; None for none."""
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def square_money(money: Mapping | None, *, currency: str, field: str) -> Decimal:
    """A Square Money {amount: minor units, currency} (api.json `Money`) as a Decimal in `currency`; absent → 0."""
    if not money:
        return Decimal(0)
    if money.get("currency") != currency:
        raise SourceDataError(f"{field} is in {money.get('currency')}, the document in {currency}")
    try:
        return from_minor(money.get("amount"), currency)
    except MoneyError as exc:
        raise SourceDataError(f"{field}: {exc}") from exc


# --- what the invoices stream knows -------------------------------------------------------------------------------


def invoices_listed_cursor(location_id: str) -> str:
    """The cursor row that says when a location's invoices were last listed whole."""
    return f"square:invoices-listed:{location_id}"


def square_invoices_listed_at(integration: Integration, location_id: str) -> datetime | None:
    return SyncCursor.objects.filter(integration=integration, stream=invoices_listed_cursor(location_id)).values_list(
        "position", flat=True).first()


def square_invoices_listed_mark(integration: Integration, location_id: str, started: datetime) -> None:
    """A location's invoices were listed whole, from `started` on: never moves back (two listings racing)."""
    cursor, _ = SyncCursor.objects.get_or_create(integration=integration, stream=invoices_listed_cursor(location_id))
    SyncCursor.objects.filter(pk=cursor.pk).exclude(position__gt=started).update(position=started,
                                                                                 updated_at=timezone.now())


def square_invoice_known(integration: Integration, order_id: str) -> dict | None:
    """The Square invoice of this order among those the invoices stream stored, or None."""
    rows = SyncRecord.objects.filter(integration=integration, stream=INVOICES,
                                     source_payload__invoice__order_id=order_id).values_list("source_id",
                                                                                             "source_payload")
    for source_id, payload in rows:
        invoice = payload.get("invoice") or {}
        if source_id == invoice.get("id"):  # not a change notice (its source id carries the version)
            return invoice
    return None


def square_invoice_remember(integration: Integration, invoice: Mapping) -> None:
    """A published invoice met while listing for a payment: stored as a record of the invoices stream (received, so
    the sweep or the next poll takes it to Visma), which also makes its order id known for the next payment."""
    if invoice.get("status") in NOT_PUBLISHED or not invoice.get("id"):
        return
    if SyncRecord.objects.filter(integration=integration, stream=INVOICES, source_id=invoice["id"]).exists():
        return
    record_ingest(integration, INVOICES, SourceObject(
        source_id=str(invoice["id"]), payload={"invoice": dict(invoice)},
        updated_at=square_time(invoice.get("updated_at"))))


def square_invoices_relist(integration: Integration, square, location_id: str, *, page_size: int = 100) -> dict:
    """List a location's invoices whole (ListInvoices: no date filter); every published one is remembered.
    Returns them by order id."""
    started = timezone.now()
    by_order = {}
    for invoice in square.invoices(location_id=location_id, page_size=page_size):
        if invoice.get("order_id"):
            by_order[str(invoice["order_id"])] = invoice
        square_invoice_remember(integration, invoice)
    square_invoices_listed_mark(integration, location_id, started)
    return by_order


def square_invoice_of_payment(stream, payment: Mapping, *, square=None) -> dict | None:
    """The Square invoice a payment pays (by the order both name), or None for a payment of no invoice (a POS sale).

    Looked up among the invoices stored; when the location's invoices were last listed before the payment was made
    (plus LISTING_SETTLE), they are listed again, at most once per location for this stream instance (one poll, one
    webhook): an invoice is published before it is paid, so a listing that started after the payment holds it.
    `square`: a SquareApi to list with (default: the stream's own).
    """
    order_id = str(payment.get("order_id") or "")
    if not order_id:
        return None
    integration = stream.integration
    known = square_invoice_known(integration, order_id)
    if known is not None:
        return known
    location_id = str(payment.get("location_id") or "")
    if not location_id:
        return None
    relisted: set = stream.__dict__.setdefault("_square_invoices_relisted", set())
    if location_id in relisted:
        return None
    created = square_time(payment.get("created_at")) or timezone.now()
    listed_at = square_invoices_listed_at(integration, location_id)
    if listed_at is not None and listed_at >= created + LISTING_SETTLE:
        return None
    relisted.add(location_id)
    if square is None:
        square = square_api_of(stream)
    page_size = int((integration.settings or {}).get("page_size") or 100)
    return square_invoices_relist(integration, square, location_id, page_size=page_size).get(order_id)


def square_api_of(stream):
    """The stream's Square client: its own (SquareSource's) if it has one, else one made for it and closed with it."""
    for name in ("square_api", "square", "_square_api_made"):
        found = getattr(stream, name, None)
        if found is not None and hasattr(found, "invoices"):
            return found
    from .client import SquareApi

    client = SquareApi(stream.integration.partner_connection, settings=stream.integration.settings or {})
    weakref.finalize(stream, client.close)
    stream.__dict__["_square_api_made"] = client
    return client
