"""Square invoices → Visma customer invoices, their payments → customer payments, their refunds → credit notes; the
Square customer on an invoice → the Visma customer (by reference_id, an external reference, or created).

Which payment pays an invoice: Square's Payment does not name its invoice, but an invoice names its order
(api.json `Invoice.order_id`) and a payment of it carries that order (`Payment.order_id`). The invoices stream keeps
what it read as records of the `invoices` stream (the invoice, its order id, its location) and remembers when it last
listed each location's invoices (a cursor row per location); `square_invoice_of_payment` looks there first and lists
a location again only when that list is older than the payment (docs/square-invoices.md).
"""
from __future__ import annotations

import dataclasses
import weakref
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from urllib.parse import quote

from django.utils import timezone

from audit.models import RecordStatus, SyncRecord
from audit.selectors import record_of, record_posting
from connectors.errors import WaitFor
from connectors.models import Integration, SyncCursor
from connectors.pipeline import SourceDataError, SourceObject, Written, record_ingest, source_take
from connectors.visma.invoices import visma_vat_of_lines
from connectors.visma.postings import CUSTOMER_INVOICES, VismaDocumentError, visma_credit_note_lines
from connectors.visma.target import CREDIT_NOTE, VismaTarget
from mappings.documents import NO_CURRENCY, NOTHING_BOOKED, MatchFacts, Posting, PostingLine, posting_marker_part
from mappings.models import ExternalReference
from mappings.money import is_exact, to_decimal
from mappings.reference import tenant_base_currency
from mappings.selectors import external_reference_visma_id, vat_code_for
from mappings.services import MappingOutcome

from .sources import SYSTEM, SquareSource, square_fee_change_lines, square_fee_entries, square_money, square_time

INVOICES = "invoices"
INVOICE_PAYMENTS = "invoice_payments"
CUSTOMERS = "customers"
# The payments stream (connectors/square/flows.py): a payment it booked as a sale journal is never booked here too.
PAYMENTS = "payments"
# InvoiceStatus (api.json): a DRAFT is not sent to the customer, so nobody owes it yet.
NOT_PUBLISHED = frozenset({"DRAFT"})
# Published and owed (or paid, or paid back: still a sale): each becomes one Visma customer invoice.
PUBLISHED = frozenset({"UNPAID", "SCHEDULED", "PARTIALLY_PAID", "PAID", "PARTIALLY_REFUNDED", "REFUNDED",
                       "PAYMENT_PENDING"})
CANCELED = "CANCELED"
# ListInvoices has no "changed since" filter and Square does not say how soon a published invoice is listed
# (docs/square.md §5): a listing counts as knowing a payment's invoice only when it started this long after the payment
# was created (the stricter reading of "eventually consistent", which ListPayments states).
LISTING_SETTLE = timedelta(seconds=30)
# Payment source types that carry no Square processing fee (docs/square.md §6); any other source type (a new or unknown
# one included) waits for its fee, as the payments stream does (connectors/square/flows.py FEE_FREE_SOURCES).
FEE_FREE_SOURCES = frozenset({"CASH", "EXTERNAL"})
# Visma's customerRefNumber (ARInvoice.InvoiceNbr) holds 40 characters: the Square invoice number goes there.
CUSTOMER_REF_LENGTH = 40
BATCH = 100


def _batches(items, size: int = BATCH) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _updated(invoice: Mapping) -> datetime | None:
    try:
        return square_time(invoice.get("updated_at"))
    except SourceDataError:
        return None


def _created(invoice: Mapping) -> datetime | None:
    try:
        return square_time(invoice.get("created_at"))
    except SourceDataError:
        return None


FEE_PART = ":fee:"


def square_invoice_before_start(integration: Integration, invoice: Mapping, *, stream: SquareSource | None = None
                                ) -> bool:
    """Whether a Square invoice was created before the integration's start (SquareSource.before_go_live):
    ListInvoices has no date filter, so Square lists every invoice the seller ever issued; those from before the start
    were booked by hand (or in the system before this one) and are never posted here, nor are their payments and
    refunds."""
    return (stream if stream is not None else InvoicesStream(integration)).before_go_live(_created(invoice))


def _before_start_text(invoice: Mapping, stream: SquareSource) -> str:
    number = invoice.get("invoice_number") or invoice.get("id")
    return (f"Square invoice {number} ({invoice.get('id')}) was created on {invoice.get('created_at')}, before this "
            f"integration's start on {stream.go_live_text()}")


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


def square_invoice_remember(integration: Integration, invoice: Mapping, *, stream: SquareSource | None = None
                            ) -> None:
    """A published invoice met while listing for a payment: stored as a record of the invoices stream (received, so
    the sweep or the next poll takes it to Visma — or settles it as nothing booked, one from before the integration's
    start), which also makes its order id known for the next payment."""
    if invoice.get("status") in NOT_PUBLISHED or invoice.get("status") == CANCELED or not invoice.get("id"):
        return
    if SyncRecord.objects.filter(integration=integration, stream=INVOICES, source_id=invoice["id"]).exists():
        return
    # One from before the integration's start is stored too (settled as nothing booked when taken): its order id must
    # be known, or a later payment of it would pass for a POS sale (the search for a payment's invoice stops at the
    # last listing).
    record_ingest(integration, INVOICES, SourceObject(source_id=str(invoice["id"]), payload={"invoice": dict(invoice)},
                                                      updated_at=_updated(invoice)))


def square_invoices_relist(integration: Integration, square, location_id: str, *, page_size: int = 100) -> dict:
    """List a location's invoices whole (ListInvoices: no date filter); every published one is remembered.
    Returns them by order id."""
    started = timezone.now()
    by_order = {}
    judge = InvoicesStream(integration)  # judges the start once for the whole listing
    for invoice in square.invoices(location_id=location_id, page_size=page_size):
        if invoice.get("order_id"):
            by_order[str(invoice["order_id"])] = invoice
        square_invoice_remember(integration, invoice, stream=judge)
    square_invoices_listed_mark(integration, location_id, started)
    return by_order


# SearchInvoices page size when looking for invoices published since the last listing: a few minutes' invoices.
SEARCH_LIMIT = 10


def square_invoices_published_since(integration: Integration, square, location_id: str, listed_at: datetime) -> dict:
    """The invoices of a location published since it was last listed whole (at `listed_at`), by SearchInvoices
    newest invoice date first; every published one is remembered and the listing mark moves to now. Returns them
    by order id.

    Why stopping early is safe: SearchInvoices sorts by INVOICE_SORT_DATE, which for a published invoice is its
    publication date, for a draft its created_at; both are at or before the invoice's updated_at (publishing or
    creating updates it). So once an invoice was last updated before the last listing (less LISTING_SETTLE, for
    Square's listing lag), its sort date is too, and so is that of every invoice after it in that order: all of
    them were published before the last listing and were seen by it. A SCHEDULED invoice sorts by scheduled_at,
    which may lie after its updated_at: it never stops the walk."""
    started = timezone.now()
    horizon = listed_at - LISTING_SETTLE
    judge = InvoicesStream(integration)  # judges the integration's start once for the whole search
    by_order = {}
    for invoice in square.invoices_search(location_id=location_id, limit=SEARCH_LIMIT):
        if invoice.get("order_id"):
            by_order[str(invoice["order_id"])] = invoice
        square_invoice_remember(integration, invoice, stream=judge)
        updated = _updated(invoice)
        if invoice.get("status") != "SCHEDULED" and updated is not None and updated < horizon:
            break
    square_invoices_listed_mark(integration, location_id, started)
    return by_order


def square_invoice_of_payment(stream, payment: Mapping, *, square=None) -> dict | None:
    """The Square invoice a payment pays (by the order both name), or None for a payment of no invoice (a POS sale).

    Looked up among the invoices stored; when the location's invoices were last listed before the payment was made
    (plus LISTING_SETTLE), what was published since is read (SearchInvoices, newest first, stopped at the last
    listing; a location never listed is listed whole), at most once per location for this stream instance (one
    poll, one webhook): an invoice is published before it is paid, so a reading that started after the payment
    holds it.
    `square`: a SquareApi to list with (default: the stream's own, `stream.square`).
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
    square = square if square is not None else _square_of(stream)
    if listed_at is not None:
        # Listed before: only what was published since is read (one small SearchInvoices page, as a rule).
        return square_invoices_published_since(integration, square, location_id, listed_at).get(order_id)
    # A location never listed: ListInvoices whole, once.
    page_size = int((integration.settings or {}).get("page_size") or 100)
    return square_invoices_relist(integration, square, location_id, page_size=page_size).get(order_id)


def _square_of(stream):
    """The stream's Square client (SquareSource.square), else one made for it and closed with it."""
    found = getattr(stream, "square", None)
    if found is not None and hasattr(found, "invoices"):
        return found
    from .client import SquareApi

    client = SquareApi(stream.integration.partner_connection, settings=stream.integration.settings or {})
    weakref.finalize(stream, client.close)
    stream.square = client
    return client


def square_invoice_payment_take(integration: Integration, *, payment: Mapping | None = None,
                                refund: Mapping | None = None, invoice: Mapping | None = None) -> SyncRecord:
    """A payment of a Square invoice (or a refund of one) that another stream met: recorded in the invoice_payments
    stream (source id: Square's payment or refund id) and taken as far as it goes. `invoice`: the invoice it pays,
    when the caller found it already (square_invoice_of_payment)."""
    stream = InvoicePaymentsStream(integration)
    source = stream.source_object(payment=payment, refund=refund, invoice=invoice)
    record = source_take(integration, stream, source)[0]
    if payment is not None:
        stream.fee_parts_take(payment)
    return record


def square_payment_is_invoice_payment(integration: Integration, payment_id: str) -> bool:
    """Whether the invoice_payments stream has this payment (so its refunds are credit notes there, not journals)."""
    return SyncRecord.objects.filter(integration=integration, stream=INVOICE_PAYMENTS, source_id=payment_id).exists()


# --- customers --------------------------------------------------------------------------------------------------


def _customer_name(profile: Mapping) -> str:
    """A Square customer as a person calls it: the company, else the person's name, else the email."""
    person = " ".join(str(profile.get(key) or "").strip() for key in ("given_name", "family_name")).strip()
    return str(profile.get("company_name") or "").strip() or person or str(profile.get("email_address") or "")


class SquareCustomerSource(SquareSource):
    """A Square customer that an invoice names and Visma lacks → a Visma customer (created only when the integration
    allows it: setting create_customers). The new customer is linked by an external reference (square, customer)."""

    name = CUSTOMERS
    target_kind = "customer"
    # Nothing to poll (customers are made when an invoice needs one): the schedule's longest cadence.
    default_poll_minutes = 7 * 24 * 60

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        return iter(())  # only the customers of invoices are created, when an invoice needs one

    def read_one(self, source_id: str) -> SourceObject | None:
        profile = self.square.customer(source_id)
        return self.source_object(profile) if profile is not None else None

    @staticmethod
    def source_object(profile: Mapping) -> SourceObject:
        return SourceObject(source_id=str(profile["id"]), payload={"customer": dict(profile)},
                            updated_at=_updated(profile))

    def transform(self, source: SourceObject) -> Posting:
        profile = source.payload.get("customer") or {}
        customer_id = str(profile.get("id") or source.source_id)
        if not self.settings.get("create_customers"):
            raise SourceDataError(f"Square customer {customer_id} is not created in Visma: the integration's setting "
                                  "create_customers is off; map the customer instead")
        name = _customer_name(profile)
        if not name:
            raise SourceDataError(f"Square customer {customer_id} has no company, name or email to create a Visma "
                                  "customer with")
        fields: dict = {"name": name}
        if profile.get("email_address"):
            fields["mainContact"] = {"email": str(profile["email_address"])}
        return Posting(
            document="customer", marker=self.marker(customer_id), currency="", date=self.day(None),
            description=f"Square customer {name} ({customer_id})",
            facts=MatchFacts(transaction_type="customer", amount=Decimal(0), currency=""),
            extra={"fields": fields, "square_id": customer_id},
        )


class CustomersStream(VismaTarget, SquareCustomerSource):
    """Square customers → Visma customers (only as invoices need them), linked by an external reference."""

    def find_posted(self, posting: Posting, record) -> Written | None:
        return _linked(self.tenant, posting, super().find_posted(posting, record), kind="customer")

    def write(self, posting: Posting, record) -> Written:
        return _linked(self.tenant, posting, super().write(posting, record), kind="customer")


def _linked(tenant, posting: Posting, written: Written | None, *, kind: str) -> Written | None:
    """A Visma customer or supplier written (or found) for a Square object: the external reference that links the
    two, so every later document finds it."""
    if written is not None:
        ExternalReference.objects.update_or_create(
            tenant=tenant, system=SYSTEM, external_kind=kind if kind == "customer" else "vendor",
            external_id=str(posting.extra["square_id"]), defaults={"visma_kind": kind, "visma_id": written.target_id})
    return written


# --- invoices -----------------------------------------------------------------------------------------------------


class SquareInvoiceSource(SquareSource):
    """Square invoices (published) → Visma customer invoices, amounts from their orders.

    Reading: ListInvoices per mirrored location (inactive ones too), keeping those not stored yet or changed (version)
    since that location was last listed; each is read with its order and customer. A posted invoice that Square
    cancels or whose amounts change afterwards becomes a change notice (source id "<invoice id>:v<version>"), flagged
    for a person: a credit note is a decision, and a posted invoice is never sent again.
    """

    name = INVOICES
    target_kind = "customer_invoice"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        for location in self.locations():
            location_id = location.location_id
            last_listed = square_invoices_listed_at(self.integration, location_id)
            started = timezone.now()
            for invoices in _batches(self.square.invoices(location_id=location_id, page_size=self.page_size)):
                stored = {record.source_id: record for record in SyncRecord.objects.filter(
                    integration=self.integration, stream=INVOICES,
                    source_id__in=[str(invoice.get("id")) for invoice in invoices]).only(
                    "source_id", "status", "source_payload", "target_id", "proposed_posting", "corrected_posting",
                    "created_at")}
                for invoice in invoices:
                    if invoice.get("status") in NOT_PUBLISHED:
                        continue
                    record = stored.get(str(invoice.get("id")))
                    if record is None and invoice.get("status") == CANCELED:
                        continue  # canceled before it was ever read as published: nothing was owed
                    if square_invoice_before_start(self.integration, invoice, stream=self):
                        # ListInvoices has no date filter: every invoice the seller ever issued is listed. One from
                        # before the start is settled as nothing booked, saying why (its record also makes its
                        # order id known, so a payment of it is flagged, never taken for a POS sale); its order and
                        # payments are not read.
                        if record is None:
                            yield SourceObject(source_id=str(invoice["id"]),
                                               payload={"invoice": dict(invoice), "order": None},
                                               updated_at=_updated(invoice))
                        continue
                    if record is not None and not self._changed(invoice, record, last_listed):
                        continue
                    order = self._order_of(invoice)
                    source = self._source_of(invoice, order, record)
                    if source is not None:
                        yield source
                    self._payments_take(invoice, order)
            square_invoices_listed_mark(self.integration, location_id, started)

    def _changed(self, invoice: Mapping, record: SyncRecord, last_listed: datetime | None) -> bool:
        """Whether a stored invoice changed since it was stored: another version, updated after the last listing
        (less the overlap), so a posted invoice is read again once per change, not at every poll. One remembered
        from a listing for a payment (stored without its order) is read whole by the first poll after: its
        payments are taken then (the payment that found it is left to this stream by the payments stream)."""
        if last_listed is None:
            return True
        since = last_listed - self.overlap
        if "order" not in (record.source_payload or {}):
            return record.created_at >= since
        stored_version = ((record.source_payload or {}).get("invoice") or {}).get("version")
        if stored_version == invoice.get("version"):
            return False
        updated = _updated(invoice)
        return updated is None or updated >= since

    def read_one(self, source_id: str) -> SourceObject | None:
        invoice = self.square.invoice(source_id)
        if invoice is None or invoice.get("status") in NOT_PUBLISHED:
            return None
        record = record_of(self.integration, INVOICES, str(invoice["id"]))
        if record is None and invoice.get("status") == CANCELED:
            return None
        if record is None and square_invoice_before_start(self.integration, invoice, stream=self):
            # Settled as nothing booked, saying why; its payments are still taken (each is flagged for a person).
            source = SourceObject(source_id=str(invoice["id"]), payload={"invoice": dict(invoice), "order": None},
                                  updated_at=_updated(invoice))
            source_take(self.integration, self, source)
            self._payments_take(invoice, self._order_of(invoice))
            return source
        order = self._order_of(invoice)
        source = self._source_of(invoice, order, record)
        if source is not None:
            # The invoice first, so its payments (an invoice.payment_made event) find it posted.
            source_take(self.integration, self, source)
        self._payments_take(invoice, order)
        return source

    def _order_of(self, invoice: Mapping) -> dict | None:
        return self.square.order(str(invoice["order_id"])) if invoice.get("order_id") else None

    def _source_of(self, invoice: Mapping, order: Mapping | None, record: SyncRecord | None) -> SourceObject | None:
        """The invoice with its order and customer as the pipeline takes it; for a posted one, a change notice when
        Square canceled it or changed its amounts, else None (nothing to do)."""
        if record is not None and record.status == RecordStatus.REJECTED:
            return None
        if record is not None and record.status == RecordStatus.POSTED:
            if (record_posting(record).document if record.proposed_posting or record.corrected_posting
                    else "") == NOTHING_BOOKED:
                return None  # from before the integration's start: whatever Square does to it is booked by hand
            change = self._change_after_posting(invoice, order, record)
            if not change:
                return None
            return SourceObject(source_id=f"{invoice['id']}:v{invoice.get('version')}",
                                payload={"invoice": dict(invoice), "order": order, "change_of": str(invoice["id"]),
                                         "change": change},
                                updated_at=_updated(invoice))
        customer_id = str((invoice.get("primary_recipient") or {}).get("customer_id") or "")
        profile = self.square.customer(customer_id) if customer_id else None
        if profile is not None and self.settings.get("create_customers") and not self._customer_known(profile):
            # Created first (its own record), so the invoice finds it.
            customers = CustomersStream(self.integration)
            source_take(self.integration, customers, customers.source_object(profile))
        total = (order or {}).get("total_money") or {}
        try:
            amount = square_money(total, field="total_money", what="order")
        except SourceDataError:
            amount = None
        return SourceObject(source_id=str(invoice["id"]),
                            payload={"invoice": dict(invoice), "order": order, "customer": profile},
                            updated_at=_updated(invoice), amount=amount, currency=str(total.get("currency") or "")[:3])

    def _change_after_posting(self, invoice: Mapping, order: Mapping | None, record: SyncRecord) -> str:
        """What changed in Square after the invoice was posted that a person must decide on ("" for nothing)."""
        posted = record_posting(record)
        number = invoice.get("invoice_number") or invoice["id"]
        where = f"Square invoice {number} ({invoice['id']}), posted as Visma invoice {record.target_id}"
        if invoice.get("status") == CANCELED:
            return (f"{where}, was canceled in Square: a credit note is a decision for a person; credit it in Visma "
                    "by hand (or leave it), then reject this record")
        if order is None:
            return ""
        currency = posted.currency
        try:
            total = square_money(order.get("total_money"), field="total_money", what="order", currency=currency)
            vat = square_money(order.get("total_tax_money"), field="total_tax_money", what="order",
                               currency=currency)
        except SourceDataError as exc:
            return f"{where}: its order can no longer be read ({exc})"
        was_total, was_vat = Decimal(posted.extra.get("total") or "0"), Decimal(posted.extra.get("vat") or "0")
        if (total, vat) != (was_total, was_vat) or str(invoice.get("order_id")) != posted.extra.get("order_id"):
            return (f"{where} with total {was_total} {currency} (VAT {was_vat}), changed in Square after posting to "
                    f"total {total} {currency} (VAT {vat}): it is never sent again; correct the Visma invoice by hand "
                    "(or credit it), then reject this record")
        return ""

    def _payments_take(self, invoice: Mapping, order: Mapping | None) -> None:
        """The payments the invoice's order names (its tenders) and their refunds → the invoice_payments stream."""
        order = order or {}
        payments = InvoicePaymentsStream(self.integration)
        payments.__dict__["square"] = self.square
        for tender in order.get("tenders") or []:
            payment_id = str(tender.get("payment_id") or tender.get("id") or "")
            if not payment_id:
                continue
            # Read even when its record is settled: the invoice changed, maybe by a refund of it (refund_ids).
            payment = self.square.payment(payment_id)
            if payment is None:
                continue
            record = record_of(self.integration, INVOICE_PAYMENTS, payment_id)
            if record is None or record.status not in (RecordStatus.POSTED, RecordStatus.REJECTED):
                source_take(self.integration, payments, payments.source_object(payment=payment, invoice=invoice))
            payments.fee_parts_take(payment)
            for refund_id in payment.get("refund_ids") or []:
                refunded = record_of(self.integration, INVOICE_PAYMENTS, str(refund_id))
                if refunded is not None and refunded.status in (RecordStatus.POSTED, RecordStatus.REJECTED):
                    continue
                refund = self.square.refund(str(refund_id))
                if refund is not None:
                    source_take(self.integration, payments, payments.source_object(refund=refund, invoice=invoice))

    # --- the posting ------------------------------------------------------------------------------------------

    def transform(self, source: SourceObject) -> Posting:
        payload = source.payload
        if payload.get("change_of"):
            raise SourceDataError(payload.get("change") or f"Square invoice {payload['change_of']} changed")
        invoice = payload.get("invoice") or {}
        invoice_id = str(invoice.get("id") or source.source_id)
        number = str(invoice.get("invoice_number") or "")
        what = f"Square invoice {number or invoice_id}"
        status = str(invoice.get("status") or "")
        if square_invoice_before_start(self.integration, invoice, stream=self):
            return Posting(document=NOTHING_BOOKED, marker=self.marker(invoice_id), currency=NO_CURRENCY,
                           date=self.day(invoice.get("created_at")),
                           description=f"{_before_start_text(invoice, self)}: nothing booked (booked by "
                                       "hand before the integration started)",
                           facts=MatchFacts(transaction_type="invoice", amount=Decimal(0), currency="",
                                            location=str(invoice.get("location_id") or "")),
                           extra={"square_id": invoice_id, "square_invoice_number": number,
                                  "before_start": True})
        if status in NOT_PUBLISHED:
            raise WaitFor(f"{what} is a draft: not owed until it is published")
        if status == CANCELED:
            raise SourceDataError(f"{what} was canceled in Square before it reached Visma: nothing is posted; reject "
                                  "this record")
        if status not in PUBLISHED:
            raise SourceDataError(f"{what} is {status or 'without status'}: not a status this integration posts")
        order = payload.get("order")
        if order is None and invoice.get("order_id"):
            # Stored from a listing for a payment (square_invoice_remember): its order is read now.
            order = self.square.order(str(invoice["order_id"]))
        if not order:
            raise SourceDataError(f"{what} has no order in Square (order_id {invoice.get('order_id')!r}): its "
                                  "amounts are unknown")
        location_id = str(invoice.get("location_id") or order.get("location_id") or "")
        location = self.location(location_id)
        currency = str((order.get("total_money") or {}).get("currency") or "")
        if location.currency and currency != location.currency:
            raise SourceDataError(f"{what} is in {currency}, its location {location.name} in {location.currency}")
        for field in ("total_service_charge_money", "total_tip_money"):
            if square_money(order.get(field), field=field, what=what, currency=currency):
                raise SourceDataError(f"{what}: its order has {field} (not booked by this integration): book the "
                                      "invoice by hand, then reject this record")
        if (order.get("rounding_adjustment") or {}).get("amount_money", {}).get("amount"):
            raise SourceDataError(f"{what}: its order has a cash rounding adjustment: book it by hand")
        document_lines, lines, net_by_code = self._lines(what, order, currency)
        day = self._invoice_date(invoice)
        vat = visma_vat_of_lines(self.visma_client, net_by_code, currency, day, what=what)
        net = sum((line.credit for line in lines), Decimal(0))
        total = square_money(order.get("total_money"), field="total_money", what=what, currency=currency)
        square_vat = square_money(order.get("total_tax_money"), field="total_tax_money", what=what, currency=currency)
        if vat != square_vat or net + vat != total:
            raise SourceDataError(
                f"{what}: Visma would total {net + vat} {currency} (lines {net} + VAT {vat} by VAT code), Square's "
                f"order totals {total} {currency} with VAT {square_vat}: not written, the totals would differ")
        reference = number or invoice_id
        if len(reference) > CUSTOMER_REF_LENGTH:
            # Cut, two invoices could carry the same reference and the customer could not match their payment to it.
            raise SourceDataError(f"{what}: its number is {len(reference)} characters, Visma's customer reference "
                                  f"(customerRefNumber) holds {CUSTOMER_REF_LENGTH}: shorten the number in Square "
                                  "(or book the invoice by hand), then replay")
        customer = self.customer_for(invoice, payload.get("customer"), what=what)
        description = f"Square invoice {number} {invoice_id}" if number else f"Square invoice {invoice_id}"
        if invoice.get("sale_or_service_date"):
            description += f" · service date {invoice['sale_or_service_date']}"
        due = max((str(request.get("due_date")) for request in invoice.get("payment_requests") or []
                   if request.get("due_date")), default="")
        return Posting(
            document="customer_invoice", marker=self.marker(invoice_id), currency=currency, date=day,
            description=description,
            facts=MatchFacts(transaction_type="invoice", amount=total, currency=currency,
                             customer_group=self.mirror.customer_class(customer), customer=customer,
                             location=location_id),
            lines=lines, customer=customer,
            extra={"square_id": invoice_id, "square_invoice_number": number, "order_id": str(order.get("id") or ""),
                   "customer_ref": reference, "lines": document_lines,
                   "due_date": due, "total": str(total), "vat": str(vat), "net": str(net),
                   "location": location_id},
        )

    def _lines(self, what: str, order: Mapping, currency: str) -> tuple[list[dict], list[PostingLine], dict]:
        """One invoice line per order line, at its net amount: Square's line total less its tax, so the line's own
        discounts and its share of order-level discounts (Square apportions those onto the lines:
        OrderLineItem.total_discount_money, applied_discounts) are in it, and each rate's VAT stays right."""
        taxes = {str(tax.get("uid")): tax for tax in order.get("taxes") or []}
        order_scoped = [uid for uid, tax in taxes.items() if tax.get("scope") == "ORDER"]
        document_lines, lines, net_by_code = [], [], {}
        items = order.get("line_items") or []
        if not items:
            raise SourceDataError(f"{what}: its order has no line items")
        for index, item in enumerate(items, start=1):
            where = f"{what} line {index}"
            if "total_money" not in item or "total_tax_money" not in item:
                raise SourceDataError(f"{where} has no total_money or total_tax_money (Square computes both on every "
                                      "read)")
            quantity = to_decimal(item.get("quantity") or "1", field=f"{where} quantity")
            base = square_money(item.get("base_price_money"), field="base_price_money", what=where, currency=currency)
            line_total = square_money(item.get("total_money"), field="total_money", what=where, currency=currency)
            line_tax = square_money(item.get("total_tax_money"), field="total_tax_money", what=where,
                                    currency=currency)
            discount = square_money(item.get("total_discount_money"), field="total_discount_money", what=where,
                                    currency=currency)
            net = line_total - line_tax
            applied = list(dict.fromkeys([str(tax.get("tax_uid")) for tax in item.get("applied_taxes") or []]
                                         + order_scoped))
            vat_code = self._vat_code(where, [taxes.get(uid) for uid in applied])
            if vat_code is None and line_tax:
                raise SourceDataError(f"{where} carries tax {line_tax} {currency} but names no tax")
            if vat_code is None:
                # A line without tax goes with an explicit 0 % code: sent without one, Visma may fill a default VAT
                # category from the account or the customer and add VAT Square never charged.
                vat_code = vat_code_for(self.tenant, system=SYSTEM, tax_name="", percent=Decimal(0))
                if not vat_code:
                    raise SourceDataError(f"{where} ({item.get('name') or 'no name'}) has no tax: no VAT code for "
                                          "untaxed lines: map 0 % to Visma's exempt code (admin: VAT code mappings, "
                                          "system Square, percent 0)")
            name = " ".join(str(item.get(key) or "").strip() for key in ("name", "variation_name")).strip() \
                or f"Line {index}"
            description = (name + (f" (discount {discount} {currency})" if discount else ""))[:255]
            if is_exact(quantity * base, currency) and quantity * base == net:
                price = {"unit_price": str(base)}
            else:
                # Discounted, or priced with the tax included: the line's own net, not a unit price Visma rounds.
                price = {"amount": str(net)}
            document_lines.append({"description": description, "quantity": str(quantity), **price,
                                   "vat_code": vat_code})
            lines.append(PostingLine(role="account", credit=net, description=description))
            net_by_code[vat_code] = net_by_code.get(vat_code, Decimal(0)) + net
        return document_lines, lines, net_by_code

    def _vat_code(self, where: str, taxes: list) -> str | None:
        """The Visma VAT code mapped (VatCodeMapping, system square) to the one tax on a line; None for no tax."""
        taxes = [tax for tax in taxes if tax]
        if not taxes:
            return None
        if len(taxes) > 1:
            names = ", ".join(f"{tax.get('name') or tax.get('uid')} {tax.get('percentage')} %" for tax in taxes)
            raise SourceDataError(f"{where} carries {len(taxes)} taxes ({names}): a Visma line takes one VAT code")
        tax = taxes[0]
        percent = to_decimal(tax.get("percentage") or "0", field=f"{where} tax percentage")
        name = str(tax.get("name") or "")
        vat_code = vat_code_for(self.tenant, system=SYSTEM, tax_name=name, percent=percent)
        if not vat_code:
            raise SourceDataError(f"{where}: tax {name or 'without a name'} {percent} % has no Visma VAT code mapped "
                                  "(admin: VAT code mappings, system Square)")
        return vat_code

    def _invoice_date(self, invoice: Mapping) -> date:
        """The Visma invoice date: when the invoice was issued, in the tenant's time zone. Square's Invoice answers no
        publication time (api.json Invoice has created_at, updated_at, scheduled_at; SearchInvoices sorts by one it
        does not show), so created_at, the nearest known moment at or before publication. Never scheduled_at (may
        lie in the future) nor the sale_or_service_date, which "can be used to specify a past or future date"
        (api.json) and could put the invoice in a future or closed period; that date goes in the text."""
        return self.day(invoice.get("created_at"))

    # --- the customer -----------------------------------------------------------------------------------------

    def _customer_known(self, profile: Mapping) -> bool:
        try:
            return bool(self._customer_matches(profile))
        except SourceDataError:
            return True  # ambiguous: flagged on the invoice, never created

    def _customer_matches(self, profile: Mapping) -> dict[str, str]:
        """The Visma customers a Square customer stands for, each with how it was found."""
        customer_id = str(profile.get("id") or "")
        matches: dict[str, str] = {}
        reference = str(profile.get("reference_id") or "").strip()
        if reference and self._visma_has_customer(reference):
            matches[reference] = "its reference_id"
        mapped = external_reference_visma_id(self.tenant, system=SYSTEM, visma_kind="customer",
                                             keys=[("customer", customer_id)])
        if mapped:
            matches.setdefault(mapped, "an external reference")
        return matches

    def _visma_has_customer(self, number: str) -> bool:
        if self.mirror.customer(number) is not None:
            return True
        return bool(self.live_check()("customer", number))

    def customer_for(self, invoice: Mapping, profile: Mapping | None, *, what: str) -> str:
        """The Visma customer number of the invoice's Square customer: its reference_id when Visma has that
        customer, else the external reference an admin (or a creation) set; two different ones, or none, flag the
        invoice — or, with create_customers, the invoice waits for the customer to be created."""
        customer_id = str((invoice.get("primary_recipient") or {}).get("customer_id") or "")
        if not customer_id:
            raise SourceDataError(f"{what} names no Square customer (primary_recipient.customer_id)")
        if profile is None:
            profile = self.square.customer(customer_id)
        if profile is None:
            raise SourceDataError(f"{what}: Square has no customer {customer_id}")
        matches = self._customer_matches(profile)
        label = f"Square customer {_customer_name(profile) or customer_id} ({customer_id}" + (
            f", reference_id {profile['reference_id']})" if profile.get("reference_id") else ")")
        if len(matches) > 1:
            found = "; ".join(f"{number} by {how}" for number, how in matches.items())
            raise SourceDataError(f"{what}: {label} matches two Visma customers ({found}): correct the reference_id "
                                  "or the external reference, then approve")
        if matches:
            return next(iter(matches))
        created = record_of(self.integration, CUSTOMERS, customer_id)
        if created is not None and created.status == RecordStatus.POSTED:
            return created.target_id
        if self.settings.get("create_customers"):
            if created is None:
                record_ingest(self.integration, CUSTOMERS, CustomersStream.source_object(profile))
            raise WaitFor(f"{what} waits for {label} to be created in Visma", on=(CUSTOMERS, customer_id))
        raise SourceDataError(
            f"{what}: unknown Square customer: {label} is no Visma customer. Set its reference_id in Square to the "
            "Visma customer number, or map it (admin: external references, system square, kind customer, visma kind "
            "customer), or turn on create_customers; then replay")


class NothingBookedTarget(VismaTarget):
    """A Visma target that also settles "nothing booked" postings (an invoice from before the integration's start):
    written nowhere, the record's target says so."""

    def map(self, posting: Posting) -> MappingOutcome:
        if posting.document == NOTHING_BOOKED:
            return MappingOutcome(posting, None, [])
        return super().map(posting)

    def problems(self, posting: Posting) -> list[str]:
        if posting.document == NOTHING_BOOKED:
            return []
        return super().problems(posting)

    def find_posted(self, posting: Posting, record) -> Written | None:
        if posting.document == NOTHING_BOOKED:
            return Written(kind=NOTHING_BOOKED, target_id="", marker=posting.marker)
        return super().find_posted(posting, record)

    def write(self, posting: Posting, record) -> Written:
        if posting.document == NOTHING_BOOKED:
            return Written(kind=NOTHING_BOOKED, target_id="", marker=posting.marker)
        return super().write(posting, record)


class InvoicesStream(NothingBookedTarget, SquareInvoiceSource):
    """Square invoices → Visma customer invoices (externalReference: the marker; customerRefNumber: Square's number)."""


# --- invoice payments and their refunds ---------------------------------------------------------------------------


class SquareInvoicePaymentSource(SquareSource):
    """A payment of a Square invoice → a Visma customer payment applied to the Visma invoice (Square's fee in the fee
    journal, net to clearing); a refund of one → a credit note and customer refund. Source id: Square's payment or
    refund id. A payment waits for its invoice to be posted, a refund for its payment (with the pipeline's end)."""

    name = INVOICE_PAYMENTS
    target_kind = "customer_payment"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        """The payments and refunds of this stream that wait on Square itself (a fee not reported yet, a payment not
        completed, a refund pending), read again: no event of ours says when Square fills them in (payment.updated
        goes to the payments stream, which leaves an invoice's payment to this one). New ones come from the invoices
        stream (an invoice's tenders and their refunds) and from square_invoice_payment_take."""
        waiting = SyncRecord.objects.filter(integration=self.integration, stream=self.name,
                                            status=RecordStatus.WAITING, waiting_on_stream="")
        for record in waiting.only("source_id", "source_payload").iterator():
            source = self._read_again(record.source_id, record.source_payload or {})
            if source is not None:
                yield self.fresh(source)

    def read_one(self, source_id: str) -> SourceObject | None:
        if FEE_PART in source_id:
            payment = self.square.payment(source_id.split(FEE_PART)[0])
            return self.fee_part(payment, source_id.split(FEE_PART, 1)[1]) if payment is not None else None
        record = record_of(self.integration, self.name, source_id)
        if record is not None:
            source = self._read_again(source_id, record.source_payload or {})
            if source is not None and source.payload.get("payment"):
                self.fee_parts_take(source.payload["payment"])  # a fee Square changed after posting
            return source
        payment = self.square.payment(source_id)
        if payment is not None:
            invoice = square_invoice_of_payment(self, payment)
            return self.source_object(payment=payment, invoice=invoice) if invoice is not None else None
        refund = self.square.refund(source_id)
        if refund is None or not square_payment_is_invoice_payment(self.integration, str(refund.get("payment_id"))):
            return None
        return self.source_object(refund=refund)

    def _read_again(self, source_id: str, payload: Mapping) -> SourceObject | None:
        """A payment or refund this stream has, as Square has it now (the invoice it pays kept as stored)."""
        if FEE_PART in source_id:
            return self.read_one(source_id)
        if payload.get("refund"):
            refund = self.square.refund(source_id)
            return self.source_object(refund=refund) if refund is not None else None
        payment = self.square.payment(source_id)
        return self.source_object(payment=payment, invoice=payload.get("invoice")) if payment is not None else None

    @staticmethod
    def source_object(*, payment: Mapping | None = None, refund: Mapping | None = None,
                      invoice: Mapping | None = None) -> SourceObject:
        moved = payment if payment is not None else refund
        if moved is None:
            raise ValueError("a payment or a refund")
        money = (moved.get("total_money") if payment is not None else moved.get("amount_money")) or {}
        try:
            amount = square_money(money, field="amount", what="payment")
        except SourceDataError:
            amount = None
        payload = {"payment": dict(payment)} if payment is not None else {"refund": dict(refund)}
        if invoice is not None:
            payload["invoice"] = {key: invoice.get(key) for key in ("id", "invoice_number", "order_id",
                                                                    "location_id", "version", "created_at")}
        return SourceObject(source_id=str(moved["id"]), payload=payload, updated_at=_updated(moved), amount=amount,
                            currency=str(money.get("currency") or "")[:3])

    # --- fee entries Square adds after the payment was posted ---------------------------------------------------

    def _posted_payment(self, payment_id: str) -> tuple[SyncRecord, Posting] | None:
        record = record_of(self.integration, self.name, payment_id)
        if record is None or record.status != RecordStatus.POSTED or not record.proposed_posting:
            return None
        posting = record_posting(record)
        return (record, posting) if posting.document == "customer_payment" else None

    def _bookedsquare_fee_entries(self, record: SyncRecord, posting: Posting, currency: str) -> set[str]:
        """The fee entries the customer payment booked (its posting says; one posted before it did: those of the
        payment as it was stored)."""
        if "fee_entries" in posting.extra:
            return set(posting.extra["fee_entries"])
        stored = (record.source_payload or {}).get("payment") or {}
        try:
            return {entry["key"] for entry in square_fee_entries(stored, currency=currency, what="payment")}
        except SourceDataError:
            return set()

    def fee_parts_take(self, payment: Mapping) -> list[SyncRecord]:
        """A posted invoice payment whose processing_fee gained entries since (an ADJUSTMENT, fee returned): one fee
        journal per new effective_at (record "<payment id>:fee:<effective_at>"), each once — as the payments stream
        does for a sale (flows.py payment_parts). The invoice's version does not change on a fee change, so this
        runs on every read of the payment."""
        payment_id = str(payment.get("id") or "")
        posted = self._posted_payment(payment_id)
        if posted is None:
            return []
        record, posting = posted
        booked = self._bookedsquare_fee_entries(record, posting, posting.currency)
        try:
            entries = square_fee_entries(payment, currency=posting.currency, what=f"Square payment {payment_id}")
        except SourceDataError:
            return []  # an unreadable fee: the payment's next read says so
        taken = []
        for effective_at in dict.fromkeys(entry["effective_at"] for entry in entries if entry["key"] not in booked):
            source_id = f"{payment_id}{FEE_PART}{effective_at}"
            if record_of(self.integration, self.name, source_id) is None:
                taken.append(source_take(self.integration, self, self.fee_part(payment, effective_at))[0])
        return taken

    def fee_part(self, payment: Mapping, effective_at: str) -> SourceObject:
        return SourceObject(source_id=f"{payment['id']}{FEE_PART}{effective_at}", payload={"payment": dict(payment)},
                            updated_at=_updated(payment))

    def _fee_adjustment(self, source: SourceObject) -> Posting:
        payment = source.payload.get("payment") or {}
        payment_id, effective_at = source.source_id.split(FEE_PART, 1)
        what = f"the processing fee Square changed on invoice payment {payment_id} ({effective_at})"
        posted = self._posted_payment(payment_id)
        if posted is None:
            raise WaitFor(f"{what} waits for the payment to be posted", on=(self.name, payment_id))
        record, paid = posted
        booked = self._bookedsquare_fee_entries(record, paid, paid.currency)
        entries = square_fee_entries(payment, currency=paid.currency, what=f"Square payment {payment_id}")
        new = [entry for entry in entries if entry["effective_at"] == effective_at and entry["key"] not in booked]
        fee, lines = square_fee_change_lines(payment_id, new)
        if not new or not fee:
            raise SourceDataError(f"{what}: no new fee entry of that time is left to book; reject this record")
        moment = square_time(effective_at, field="effective_at") if effective_at else None
        return Posting(
            document="journal", marker=posting_marker_part(paid.marker, f"fee:{effective_at}"),
            currency=paid.currency, date=self.day(moment) if moment else paid.date,
            description=f"Square processing fee {new[0]['type'].lower() or 'entry'} of invoice payment {payment_id} "
                        f"(invoice {paid.extra.get('invoice_number', '')})",
            # The payment's own facts: the same rule, so the same fee and clearing accounts and cost center.
            facts=dataclasses.replace(paid.facts, amount=abs(fee)), lines=lines,
            extra={"square_id": payment_id, "fee": str(fee), "fee_entries": [entry["key"] for entry in new],
                   "payment_marker": paid.marker},
        )

    def transform(self, source: SourceObject) -> Posting:
        if FEE_PART in source.source_id:
            return self._fee_adjustment(source)
        if source.payload.get("refund"):
            return self._refund_posting(source)
        return self._payment_posting(source)

    def _before_start(self, invoice: Mapping | None, what: str) -> None:
        """A payment or refund of an invoice from before the integration's start: the invoice was never posted here,
        so neither is this; a person books it (flagged, never guessed)."""
        invoice = invoice or {}
        invoice_id = str(invoice.get("id") or "")
        record = record_of(self.integration, INVOICES, invoice_id) if invoice_id else None
        posting = record_posting(record) if record is not None and (record.proposed_posting
                                                                    or record.corrected_posting) else None
        if square_invoice_before_start(self.integration, invoice, stream=self) or (
                posting is not None and posting.extra.get("before_start")):
            number = invoice.get("invoice_number") or (posting.extra.get("square_invoice_number") if posting else "") \
                or invoice_id
            raise SourceDataError(f"{what} pays Square invoice {number} from before the integration's start: book it "
                                  "by hand, then reject this record")

    def _not_a_sale(self, payment_id: str, what: str) -> None:
        """The payments stream may have booked this payment as a sale journal before its invoice was known (listing
        lag, another location): money is booked once, so such a payment is flagged, never posted again here."""
        sale = record_of(self.integration, PAYMENTS, payment_id)
        if sale is None or sale.status != RecordStatus.POSTED or not (sale.proposed_posting or sale.corrected_posting):
            return
        if record_posting(sale).document == "journal":
            raise SourceDataError(f"{what} is already booked as a sale journal {sale.target_id}: reverse it by hand "
                                  "or reject this record")

    def _invoice_posted(self, invoice_id: str, what: str) -> tuple[SyncRecord, Posting]:
        record = record_of(self.integration, INVOICES, invoice_id)
        if record is not None and record.status == RecordStatus.REJECTED:
            raise SourceDataError(f"{what} pays Square invoice {invoice_id}, whose record was rejected: book the "
                                  "payment by hand, then reject this record")
        if record is None or record.status != RecordStatus.POSTED:
            raise WaitFor(f"{what} waits for Square invoice {invoice_id} to be posted "
                          f"({record.status if record else 'not received yet'})", on=(INVOICES, invoice_id))
        return record, record_posting(record)

    def _payment_posting(self, source: SourceObject) -> Posting:
        payment = source.payload.get("payment") or {}
        payment_id = str(payment.get("id") or source.source_id)
        what = f"Square payment {payment_id}"
        invoice = source.payload.get("invoice")
        if not invoice:
            invoice = square_invoice_of_payment(self, payment)
            if invoice is None:
                raise SourceDataError(f"{what} pays no Square invoice (its order {payment.get('order_id')!r} is on "
                                      "none): it belongs to the payments stream; reject this record")
        self._before_start(invoice, what)
        self._not_a_sale(payment_id, what)
        status = str(payment.get("status") or "")
        if status in ("APPROVED", "PENDING"):
            raise WaitFor(f"{what} is {status} at Square: posted once completed")
        if status != "COMPLETED":
            raise SourceDataError(f"{what} is {status or 'without status'}: no money was received")
        invoice_record, invoice_posting = self._invoice_posted(str(invoice["id"]), what)
        currency = invoice_posting.currency
        gross = square_money(payment.get("total_money"), field="total_money", what=what, currency=currency)
        tip = square_money(payment.get("tip_money"), field="tip_money", what=what, currency=currency)
        if tip:
            raise SourceDataError(f"{what} carries a tip of {tip} {currency}, which the Visma invoice does not: book "
                                  "it by hand")
        fee = self._fee(payment, what=what, currency=currency)
        fee_entries = [entry["key"] for entry in square_fee_entries(payment, currency=currency, what=what)]
        customer = invoice_posting.customer
        source_type = str(payment.get("source_type") or "")
        number = invoice_record.target_id
        lines = [PostingLine(role="clearing", debit=gross - fee, description=f"Square {payment_id} net"),
                 *([PostingLine(role="fee", debit=fee, description=f"Square {payment_id} fee")] if fee else []),
                 PostingLine(role="account", credit=gross, description=f"Square {payment_id} · invoice {number}")]
        return Posting(
            document="customer_payment", marker=self.marker(payment_id), currency=currency,
            date=self.day(payment.get("created_at")),
            description=f"Square payment {payment_id} for invoice {number} · customer {customer}",
            facts=MatchFacts(transaction_type="invoice_payment", amount=gross, currency=currency,
                             customer_group=invoice_posting.facts.customer_group, customer=customer,
                             payment_method=source_type, location=invoice_posting.facts.location),
            lines=lines, customer=customer,
            extra={"invoice_number": number, "square_id": payment_id, "square_invoice": str(invoice["id"]),
                   "gross": str(gross), "fee": str(fee), "net": str(gross - fee), "fee_entries": fee_entries},
        )

    def _fee(self, payment: Mapping, *, what: str, currency: str) -> Decimal:
        """Square's processing fee: the sum of processing_fee[] (docs/square.md §6). A payment of any source type but
        CASH and EXTERNAL without one yet waits, as long as the setting fee_wait_minutes after it was taken; then
        it is flagged (Square fills the fee in a little later, or never)."""
        entries = payment.get("processing_fee") or []
        source_type = str(payment.get("source_type") or "")
        if not entries and source_type not in FEE_FREE_SOURCES:
            minutes = int(self.settings.get("fee_wait_minutes") or 0)
            taken = square_time(payment.get("created_at"), field="created_at") or timezone.now()
            waited_until = taken + timedelta(minutes=minutes)
            if timezone.now() < waited_until:
                raise WaitFor(f"{what} ({source_type or 'no source type'}) has no processing_fee yet (Square adds it "
                              f"shortly after the payment; waits until {waited_until:%Y-%m-%d %H:%M} UTC)")
            kind = source_type or "no source type"
            raise SourceDataError(f"Square has not reported the processing fee of {what} ({kind}) {minutes} minutes "
                                  "after it was taken: book the fee by hand and approve, or wait for Square and "
                                  "replay")
        return sum((square_money(entry.get("amount_money"), field="processing_fee", what=what, currency=currency,
                                 signed=True) for entry in entries), Decimal(0))

    def _refund_posting(self, source: SourceObject) -> Posting:
        refund = source.payload.get("refund") or {}
        refund_id = str(refund.get("id") or source.source_id)
        payment_id = str(refund.get("payment_id") or "")
        what = f"Square refund {refund_id}"
        self._before_start(source.payload.get("invoice"), what)
        status = str(refund.get("status") or "")
        if status == "PENDING":
            raise WaitFor(f"{what} is pending at Square")
        if status != "COMPLETED":
            raise SourceDataError(f"{what} is {status or 'without status'}: no money went back")
        paid = record_of(self.integration, INVOICE_PAYMENTS, payment_id) if payment_id else None
        if paid is not None:
            self._before_start((paid.source_payload or {}).get("invoice"), what)
        if paid is None or paid.status != RecordStatus.POSTED:
            raise WaitFor(f"{what} waits for its payment {payment_id} to be posted "
                          f"({paid.status if paid else 'not received yet'})", on=(INVOICE_PAYMENTS, payment_id))
        payment_posting = record_posting(paid)
        currency = payment_posting.currency
        amount = square_money(refund.get("amount_money"), field="amount_money", what=what, currency=currency)
        fee_entries = [square_money(entry.get("amount_money"), field="processing_fee", what=what, currency=currency,
                                    signed=True) for entry in refund.get("processing_fee") or []]
        # A negative processing fee on a refund is fee Square returned (api.json ProcessingFee); Square keeps it
        # otherwise.
        returned = -sum(fee_entries, Decimal(0))
        if returned < 0:
            raise SourceDataError(f"{what} charges a processing fee of {-returned} {currency}: book it by hand")
        if amount <= 0 or amount > Decimal(payment_posting.extra.get("gross") or "0"):
            raise SourceDataError(f"{what} of {amount} {currency} is not within its payment {payment_id}")
        number = str(payment_posting.extra["invoice_number"])
        invoice = self.visma_client.get_one(f"{CUSTOMER_INVOICES}/{quote(number, safe='')}")
        if invoice is None:
            raise SourceDataError(f"{what}: Visma has no customer invoice {number}")
        try:
            credited = visma_credit_note_lines(invoice, amount, base_currency=tenant_base_currency(
                self.tenant, client=self.visma_client))
        except VismaDocumentError as exc:
            raise SourceDataError(f"{what}: {exc}") from exc
        customer = payment_posting.customer
        lines = [PostingLine(role="account", debit=amount,
                             description=f"Square refund {refund_id} · invoice {number} · customer {customer}"),
                 PostingLine(role="clearing", credit=amount - returned, description=f"Square refund {refund_id}")]
        if returned:
            lines.append(PostingLine(role="fee", credit=returned, description=f"Square {refund_id} fee returned"))
        return Posting(
            document=CREDIT_NOTE, marker=self.marker(refund_id), currency=currency,
            date=self.day(refund.get("created_at")),
            description=f"Square refund {refund_id} of payment {payment_id} for invoice {number}",
            facts=MatchFacts(transaction_type="refund", amount=amount, currency=currency,
                             customer_group=payment_posting.facts.customer_group, customer=customer,
                             payment_method=payment_posting.facts.payment_method,
                             location=payment_posting.facts.location),
            lines=lines, customer=customer,
            extra={"invoice_number": number, "square_id": refund_id, "payment_id": payment_id,
                   "lines": [{**line, "amount": str(line["amount"])} for line in credited],
                   "fee_returned": str(returned)},
        )


class InvoicePaymentsStream(VismaTarget, SquareInvoicePaymentSource):
    """Payments of Square invoices → Visma customer payments; their refunds → credit notes and customer refunds."""


STREAMS = {stream.name: stream for stream in (InvoicesStream, InvoicePaymentsStream, CustomersStream)}
