"""Documents written into Visma.net ERP from a Posting, each carrying its marker and found by it before a re-post.

Every DTO is checked against Visma's field lengths (connectors.visma.fields) before its first call. Where the tenant
has own numbers on for a kind (Tenant.visma_own_numbers), the marker is also the document's number
(overrideNumberSeries): a second write of it is refused by Visma, and the lookup is one GET by number.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mappings.documents import Posting, PostingLine, posting_marker_part
from mappings.money import minor_units

from .client import VismaClient, VismaPermanentError, visma_datetime
from .currency import Settlement
from .fields import VismaDocumentError, visma_fields_fit

if TYPE_CHECKING:
    from audit.models import SyncRecord

JOURNALS = "/v2/journaltransaction"
CUSTOMER_INVOICE_CREATE = "/v2/customerinvoice"  # POST /v1/customerinvoice was retired in 2021
CUSTOMER_INVOICES = "/v1/customerinvoice"
CUSTOMER_PAYMENTS = "/v1/customerPayment"
CREDIT_NOTE_CREATE = "/v2/customerCreditNote"  # POST /v1/customerCreditNote is deprecated (swagger)
CREDIT_NOTES = "/v1/customerCreditNote"
SUPPLIER_INVOICES = "/v1/supplierInvoice"
SUPPLIER_PAYMENTS = "/v1/supplierPayment"
CUSTOMERS = "/v1/customer"
SUPPLIERS = "/v1/supplier"
FEE_PART = "fee"
REFUND_PART = "refund"
# Visma caps pageSize at the endpoint's metadata.maxPageSize; a lookup reads as few pages as it may.
LOOKUP_PAGE_SIZE = 500
ZERO = Decimal("0")

log = logging.getLogger(__name__)

__all__ = ["VismaDocumentError"]  # raised here, defined with the field lengths


# --- the wire -------------------------------------------------------------------------------------------------


def _date(day: date) -> str:
    # Visma reads a date-time without an offset as the company's own date.
    return f"{day.isoformat()}T00:00:00"


# The company's financial calendar while a tenant's documents are written: day → Visma period id (YYYYPP).
_calendar: ContextVar[Callable[[date], str] | None] = ContextVar("visma_financial_calendar", default=None)


@contextmanager
def visma_financial_calendar(period_of: Callable[[date], str]) -> Iterator[None]:
    """Write (and look up) documents with this company's financial calendar: `period_of(day)` is its period id,
    raising when the calendar has none (VismaTarget binds the tenant's mirrored periods)."""
    token = _calendar.set(period_of)
    try:
        yield
    finally:
        _calendar.reset(token)


def _period(day: date) -> str:
    """The financial period of a date (YYYYPP) in the company's own calendar, as Visma has it (GET
    /v1/financialPeriod, mirrored): a financial year may start in July or have 13 periods, so it is never the
    calendar month. The one place a document's period is made."""
    period_of = _calendar.get()
    if period_of is None:
        raise VismaDocumentError(f"no financial calendar is bound to find the period of {day.isoformat()}: write "
                                 "through VismaTarget, or inside visma_financial_calendar")
    try:
        return period_of(day)
    except ValueError as exc:
        raise VismaDocumentError(str(exc)) from exc


def _amount(value: Any, what: str) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise VismaDocumentError(f"{what} {value!r} is not an amount") from exc
    if not amount.is_finite():
        raise VismaDocumentError(f"{what} {value!r} is not an amount")
    return amount


def _since_params(posting: Posting, since: datetime | None, *, period_param: str,
                  condition: bool = True) -> dict[str, str]:
    """Bound a lookup to when the document may have been written: changed since `since`, else the posting's period.

    `condition`: the endpoint takes lastModifiedDateTimeCondition (GET /v2/journaltransaction has none: its
    lastModifiedDateTime always means "since").
    """
    if since is None:
        return {period_param: _period(posting.date)}
    params = {"lastModifiedDateTime": visma_datetime(since)}
    if condition:
        params["lastModifiedDateTimeCondition"] = ">="
    return params


def _lines(posting: Posting, role: str) -> list[PostingLine]:
    return [line for line in posting.lines if line.role == role]


def _line(posting: Posting, role: str, document: str) -> PostingLine:
    lines = _lines(posting, role)
    if not lines:
        raise VismaDocumentError(f"a {document} needs a posting line with role {role!r}; {posting.marker} has none")
    return lines[0]


def _settled_amount(posting: Posting) -> Decimal:
    """What a payment settles: the amount on its "account" lines (the receivable or payable), else the facts'."""
    lines = _lines(posting, "account")
    if not lines:
        return abs(posting.facts.amount)
    return abs(sum((line.credit - line.debit for line in lines), ZERO))


def _fitted(kind: str, fields: dict, marker: str) -> dict:
    """The DTO within Visma's field lengths: texts cut with "…", anything else too long refused before any call."""
    fitted, cuts = visma_fields_fit(kind, fields, what=f"{kind.replace('_', ' ')} {marker}")
    for cut in cuts:
        log.info("%s %s: %s cut from %d to %d characters", kind, marker, cut.field, cut.length, cut.limit)
    return fitted


def _own_number(fields: dict, number_field: str, marker: str) -> dict:
    """The marker as the document's own number (overrideNumberSeries): Visma refuses a second document with it."""
    return {number_field: marker, "overrideNumberSeries": True, **fields}


def _found_by_number(client: VismaClient, path: str, marker: str, carries_marker: Callable[[dict], bool],
                     key: str, *, sync_record: SyncRecord | None) -> str | None:
    """GET the document whose number is the marker: its id when it carries our marker, None when there is none (404);
    a document with that number but not our marker is someone else's: refused, never taken for ours."""
    document = client.get_one(f"{path}/{quote(marker, safe='')}", sync_record=sync_record)
    if document is None:
        return None
    if not carries_marker(document):
        raise VismaDocumentError(
            f"Visma already has a document numbered {marker} at {path} that does not carry our marker; "
            "a person must look at it before anything is written"
        )
    return str(document.get(key) or marker)


def _create_own_numbered(client: VismaClient, path: str, fields: dict, *, lookup_path: str, marker: str,
                         carries_marker: Callable[[dict], bool], key: str,
                         sync_record: SyncRecord | None) -> str:
    """POST a document numbered with its marker; when Visma refuses it (the number exists: an earlier write landed),
    the document with that number is ours if it carries our marker."""
    try:
        created = client.create(path, fields, sync_record=sync_record)
    except VismaPermanentError as refused:
        if refused.status_code in (401, 403, 412) or (refused.status_code or 0) >= 500:
            raise
        found = _found_by_number(client, lookup_path, marker, carries_marker, key, sync_record=sync_record)
        if found is None:
            raise
        return found
    if created != marker:
        # The company's numbering series does not allow manual numbers: Visma chose its own.
        log.warning("%s: Visma numbered the document %s, not %s: allow manual numbering on the series", path,
                    created, marker)
    return created


# --- journal transactions -------------------------------------------------------------------------------------


def visma_journal_fields(posting: Posting, *, own_number: bool = False) -> dict:
    """POST /v2/journaltransaction (JournalTransactionUpdateDto): every line carries the marker as referenceNumber;
    with own numbers, the batch number is the marker too."""
    marker = posting.marker
    lines = []
    for line in posting.lines:
        if not line.debit and not line.credit:
            continue  # a zero line carries nothing to the ledger
        fields: dict[str, Any] = {"operation": "Insert", "accountNumber": line.account}
        if line.dimensions:
            fields["subaccount"] = line.dimensions
        fields["referenceNumber"] = marker
        fields["transactionDescription"] = line.description or posting.description
        if line.debit:
            fields["debitAmountInCurrency"] = line.debit
        if line.credit:
            fields["creditAmountInCurrency"] = line.credit
        lines.append(fields)
    if not lines:
        raise VismaDocumentError(f"journal {marker} has no line with an amount")
    fields = {
        **visma_hold_fields(posting),
        "transactionDate": _date(posting.date),
        "financialPeriod": _period(posting.date),
        "currencyId": posting.currency,
        "description": posting.description,
        "journalTransactionLines": lines,
    }
    if own_number:
        fields = _own_number(fields, "batchNumber", marker)
    return _fitted("journal", fields, marker)


def _journal_carries(marker: str) -> Callable[[dict], bool]:
    return lambda batch: any(line.get("referenceNumber") == marker
                             for line in batch.get("journalTransactionLines") or [])


def visma_journal_post(client: VismaClient, posting: Posting, *, own_number: bool = False,
                       sync_record: SyncRecord | None = None, fields: dict | None = None) -> str:
    """Write the journal; returns its batch number."""
    fields = fields or visma_journal_fields(posting, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, JOURNALS, fields, lookup_path=JOURNALS, marker=posting.marker,
                                    carries_marker=_journal_carries(posting.marker), key="batchNumber",
                                    sync_record=sync_record)
    return client.create(JOURNALS, fields, sync_record=sync_record)


def visma_journal_batches(client: VismaClient, params: Mapping[str, str], *,
                          sync_record: SyncRecord | None = None) -> Iterator[dict]:
    """GET /v2/journaltransaction page by page: pageSize and totalCount count lines, so a batch may span pages."""
    page_number, page_size, lines_read = 1, LOOKUP_PAGE_SIZE, 0
    while True:
        rows = client.get_json(
            JOURNALS, params={**params, "pageNumber": page_number, "pageSize": page_size}, sync_record=sync_record
        ) or []
        if not rows:
            return
        yield from rows
        lines = sum(len(row.get("journalTransactionLines") or []) for row in rows)
        lines_read += lines
        metadata = rows[0].get("metadata") or {}
        total, cap = metadata.get("totalCount"), metadata.get("maxPageSize")
        if (total is not None and lines_read >= total) or (total is None and lines < page_size):
            return
        if cap and cap < page_size:
            page_size = cap  # this page was served at the cap; the next one starts where it ended
        page_number += 1


def visma_journal_find(client: VismaClient, posting: Posting, *, since: datetime | None, own_number: bool = False,
                       sync_record: SyncRecord | None = None) -> str | None:
    """The batch number of a GL journal with a line whose referenceNumber is the posting's marker, if any.

    With own numbers: one GET of the batch numbered with the marker. Without (or when that batch is not there, in case
    the series ignored our number): GET /v2/journaltransaction cannot filter on referenceNumber and needs periodId
    or lastModifiedDateTime, so the list is bounded to what changed since `since`, else to the posting's period.
    """
    if own_number:
        found = _found_by_number(client, JOURNALS, posting.marker, _journal_carries(posting.marker), "batchNumber",
                                 sync_record=sync_record)
        if found:
            return found
    params = {"module": "GL", **_since_params(posting, since, period_param="periodId", condition=False)}
    for batch in visma_journal_batches(client, params, sync_record=sync_record):
        if any(line.get("referenceNumber") == posting.marker for line in batch.get("journalTransactionLines") or []):
            return str(batch["batchNumber"])
    return None


def _settlement_journal(posting: Posting) -> Posting | None:
    """A converted payment's journal in the currency the processor credited (extra["settlement"]): the fee and the
    exchange difference out of the clearing account, which the payment moved by the gross at Visma's rate; after it
    the clearing account has moved by exactly what the processor credited. None when both are zero."""
    settlement = Settlement.from_json(posting.extra["settlement"])
    accounts = {line.role: line for line in posting.lines}
    clearing = _line(posting, "clearing", "converted payment")
    lines = []
    for line in settlement.lines(posting.description):
        mapped = accounts.get(line.role)
        if mapped is None:
            raise VismaDocumentError(f"converted payment {posting.marker} has no {line.role} line to take its account")
        line.account, line.dimensions = mapped.account, dict(mapped.dimensions)
        lines.append(line)
    out = sum((line.debit - line.credit for line in lines), ZERO)
    if not lines:
        return None
    lines.append(PostingLine(role="clearing", debit=-out if out < 0 else ZERO, credit=out if out > 0 else ZERO,
                             account=clearing.account, dimensions=dict(clearing.dimensions),
                             description=f"{posting.description} ({settlement.text})"))
    return Posting(
        document="journal", marker=posting_marker_part(posting.marker, FEE_PART), currency=settlement.currency,
        date=posting.date, description=f"{posting.description} (fee and exchange difference)".strip(),
        facts=posting.facts, rule=posting.rule, lines=lines,
    )


def visma_fee_journal(posting: Posting) -> Posting | None:
    """The journal moving a payment's fee from the clearing account to the fee account, with its own marker;
    None when the posting has no fee. A converted payment's is in the settlement currency, with the exchange
    difference (_settlement_journal)."""
    if posting.extra.get("settlement") and posting.document != "journal":
        return _settlement_journal(posting)
    fee = sum((line.debit - line.credit for line in _lines(posting, "fee")), ZERO)
    if not fee:
        return None
    fee_line = _lines(posting, "fee")[0]
    clearing = _line(posting, "clearing", "payment with a fee")
    description = f"{posting.description} (fee)".strip()
    debit, credit = (fee, ZERO) if fee > 0 else (ZERO, -fee)
    return Posting(
        document="journal", marker=posting_marker_part(posting.marker, FEE_PART), currency=posting.currency,
        date=posting.date, description=description, facts=posting.facts, rule=posting.rule,
        extra={"hold": posting.extra["hold"]} if "hold" in posting.extra else {},
        lines=[
            PostingLine(role="fee", debit=debit, credit=credit, account=fee_line.account,
                        dimensions=dict(fee_line.dimensions), description=fee_line.description or description),
            PostingLine(role="clearing", debit=credit, credit=debit, account=clearing.account,
                        dimensions=dict(clearing.dimensions), description=fee_line.description or description),
        ],
    )


def _found_or_posted_journal(client: VismaClient, journal: Posting, *, since: datetime | None, look_up_first: bool,
                             own_number: bool, fields: dict, sync_record: SyncRecord | None) -> str:
    found = visma_journal_find(client, journal, since=since, own_number=own_number,
                               sync_record=sync_record) if look_up_first else None
    return found or visma_journal_post(client, journal, own_number=own_number, fields=fields,
                                       sync_record=sync_record)


# --- customer invoices ----------------------------------------------------------------------------------------


def _customer_invoice_line(item: Mapping[str, Any], default: PostingLine, number: int) -> dict:
    what = f"invoice line {number}"
    line: dict[str, Any] = {"operation": "Insert"}
    if item.get("inventory"):
        line["inventoryNumber"] = str(item["inventory"])
    line["description"] = str(item.get("description") or "")
    line["quantity"] = _amount(item.get("quantity", 1), f"{what} quantity")
    if "unit_price" in item:
        line["unitPriceInCurrency"] = _amount(item["unit_price"], f"{what} unit price")
    elif "amount" in item:
        # The line's own total, as given: no unit price divided out and rounded.
        line["manualAmountInCurrency"] = _amount(item["amount"], f"{what} amount")
    else:
        raise VismaDocumentError(f"{what} has neither unit_price nor amount")
    line["accountNumber"] = str(item.get("account") or default.account)
    dimensions = item.get("dimensions", default.dimensions)
    if dimensions:
        line["subaccount"] = dimensions
    if item.get("vat_code"):
        line["vatCodeId"] = str(item["vat_code"])
    return line


def _customer_document_header(posting: Posting) -> dict[str, Any]:
    """What a customer invoice and a credit note both carry (CustomerInvoiceUpdateDto, CustomerCreditNoteUpdateDto):
    the customer, the date and Visma's period, the currency, the marker in externalReference, the text."""
    return {"customerNumber": posting.customer, "documentDate": _date(posting.date),
            "financialPeriod": _period(posting.date), "currencyId": posting.currency,
            "externalReference": posting.marker, "invoiceText": posting.description}


def visma_customer_invoice_fields(posting: Posting, *, own_number: bool = False) -> dict:
    """POST /v2/customerinvoice (CustomerInvoiceUpdateDto), the marker in externalReference; the vendor's own id
    (extra["customer_ref"]) in customerRefNumber, for people."""
    if not posting.customer:
        raise VismaDocumentError(f"customer invoice {posting.marker} has no customer")
    revenue = _line(posting, "account", "customer invoice")
    items = posting.extra.get("lines") or [
        {"description": line.description or posting.description, "quantity": 1,
         "unit_price": line.credit - line.debit, "account": line.account, "dimensions": line.dimensions}
        for line in _lines(posting, "account")
    ]
    fields: dict[str, Any] = {**visma_hold_fields(posting), **_customer_document_header(posting)}
    if posting.extra.get("customer_ref"):
        fields["customerRefNumber"] = str(posting.extra["customer_ref"])
    if posting.extra.get("due_date"):
        fields["documentDueDate"] = _date(date.fromisoformat(str(posting.extra["due_date"])))
    if posting.extra.get("note"):
        fields["note"] = str(posting.extra["note"])
    fields["invoiceLines"] = [
        _customer_invoice_line(item, revenue, number) for number, item in enumerate(items, start=1)
    ]
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("customer_invoice", fields, posting.marker)


def _carries(field: str, marker: str) -> Callable[[dict], bool]:
    return lambda document: document.get(field) == marker


def visma_customer_invoice_post(client: VismaClient, posting: Posting, *, own_number: bool = False,
                                sync_record: SyncRecord | None = None) -> str:
    """Write the invoice; returns its reference number."""
    fields = visma_customer_invoice_fields(posting, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, CUSTOMER_INVOICE_CREATE, fields, lookup_path=CUSTOMER_INVOICES,
                                    marker=posting.marker, carries_marker=_carries("externalReference", posting.marker),
                                    key="referenceNumber", sync_record=sync_record)
    return client.create(CUSTOMER_INVOICE_CREATE, fields, sync_record=sync_record)


def visma_customer_invoice_find(client: VismaClient, posting: Posting, *, own_number: bool = False,
                                sync_record: SyncRecord | None = None) -> str | None:
    """The invoice whose externalReference is the marker (a filter of GET /v1/customerinvoice: one call); with own
    numbers, the invoice numbered with the marker first."""
    if own_number:
        found = _found_by_number(client, CUSTOMER_INVOICES, posting.marker,
                                 _carries("externalReference", posting.marker), "referenceNumber",
                                 sync_record=sync_record)
        if found:
            return found
    rows = client.items(
        CUSTOMER_INVOICES, params={"externalReference": posting.marker}, page_size=LOOKUP_PAGE_SIZE,
        sync_record=sync_record,
    )
    found = next((row for row in rows if row.get("externalReference") == posting.marker), None)
    return str(found["referenceNumber"]) if found else None


def visma_customer_invoice_update(client: VismaClient, invoice_number: str, fields: Mapping[str, Any], *,
                                  sync_record: SyncRecord | None = None) -> str | None:
    """Change an invoice (PUT with If-Match, read again on 412); returns the new ETag."""
    fitted = _fitted("customer_invoice", dict(fields), invoice_number)
    return client.update(
        f"{CUSTOMER_INVOICES}/{quote(invoice_number, safe='')}", lambda current: fitted, sync_record=sync_record
    )


def visma_customer_invoice_note_find(client: VismaClient, posting: Posting, *,
                                     sync_record: SyncRecord | None = None) -> str | None:
    """The invoice number when its note already carries the posting's marker (the note was written)."""
    number = posting.extra["invoice_number"]
    invoice = client.get_one(f"{CUSTOMER_INVOICES}/{quote(number, safe='')}", sync_record=sync_record)
    return number if invoice and posting.marker in str(invoice.get("note") or "") else None


def visma_customer_invoice_note_add(client: VismaClient, posting: Posting, *,
                                    sync_record: SyncRecord | None = None) -> str:
    """Append "[marker] description" to the note of invoice extra["invoice_number"] (If-Match, read again on 412);
    a note that already carries the marker is left as it is. Returns the invoice number."""
    number = posting.extra["invoice_number"]
    line = f"[{posting.marker}] {posting.description}"

    def noted(current: dict) -> dict:
        note = str(current.get("note") or "")
        if posting.marker in note:
            return {"note": note}
        fitted, _cuts = visma_fields_fit("customer_invoice", {"note": f"{note}\n{line}" if note else line},
                                         what=f"note {posting.marker} on invoice {number}")
        return fitted

    client.update(f"{CUSTOMER_INVOICES}/{quote(number, safe='')}", noted, sync_record=sync_record)
    return number


# --- payments -------------------------------------------------------------------------------------------------


def _cash_account_and_method(posting: Posting, settings: Mapping[str, Any], document: str) -> dict:
    """cashAccount (mandatory in Visma) and paymentMethod: the posting's extra, else the integration's settings;
    the cash account falls back to the account of the posting's clearing line."""
    fields: dict[str, Any] = {}
    clearing = _lines(posting, "clearing")
    cash_account = (posting.extra.get("cash_account") or settings.get("cash_account")
                    or (clearing[0].account if clearing else ""))
    if not cash_account:
        raise VismaDocumentError(
            f"{document} {posting.marker} has no cash account: set cash_account on the integration, or give the "
            "posting a clearing line"
        )
    fields["cashAccount"] = str(cash_account)
    payment_method = posting.extra.get("payment_method") or settings.get("payment_method")
    if payment_method:
        fields["paymentMethod"] = str(payment_method)
    return fields


def _payment_fields(posting: Posting, settings: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    """What customer and supplier payments share: the marker in paymentRef, the settled amount, the cash account
    and method, applied to extra["invoice_number"] when there is one."""
    amount = _settled_amount(posting)
    fields: dict[str, Any] = {
        "type": "Payment",
        **visma_hold_fields(posting),
        "applicationDate": _date(posting.date),
        "applicationPeriod": _period(posting.date),
        "paymentRef": posting.marker,
        **_cash_account_and_method(posting, settings or {}, what),
        "currency": posting.currency,
        "paymentAmount": amount,
    }
    if posting.extra.get("invoice_number"):
        fields["paymentLines"] = [{"operation": "Insert", "documentType": "Invoice",
                                   "refNbr": str(posting.extra["invoice_number"]), "amountPaid": amount}]
    return fields


def visma_customer_payment_fields(posting: Posting, *, settings: Mapping[str, Any] | None = None,
                                  own_number: bool = False) -> dict:
    """POST /v1/customerPayment (PaymentUpdateDto), the marker in paymentRef, applied to extra["invoice_number"]."""
    if not posting.customer:
        raise VismaDocumentError(f"customer payment {posting.marker} has no customer")
    fields = {"customer": posting.customer, "invoiceText": posting.description,
              **_payment_fields(posting, settings, "customer payment")}
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("customer_payment", fields, posting.marker)


def visma_customer_payment_post(client: VismaClient, posting: Posting, *, settings: Mapping[str, Any] | None = None,
                                own_number: bool = False, sync_record: SyncRecord | None = None,
                                fields: dict | None = None) -> str:
    """Write the payment (not the fee journal); returns its reference number."""
    fields = fields or visma_customer_payment_fields(posting, settings=settings, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, CUSTOMER_PAYMENTS, fields, lookup_path=CUSTOMER_PAYMENTS,
                                    marker=posting.marker, carries_marker=_carries("paymentRef", posting.marker),
                                    key="refNbr", sync_record=sync_record)
    return client.create(CUSTOMER_PAYMENTS, fields, sync_record=sync_record)


def _listed(client: VismaClient, path: str, params: Mapping[str, str], field: str, marker: str, key: str, *,
            sync_record: SyncRecord | None) -> str | None:
    rows = client.items(path, params=params, page_size=LOOKUP_PAGE_SIZE, sync_record=sync_record)
    found = next((row for row in rows if row.get(field) == marker), None)
    return str(found[key]) if found else None


def visma_customer_payment_find(client: VismaClient, posting: Posting, *, since: datetime | None,
                                own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The payment whose paymentRef is the marker: with own numbers the payment numbered with it; else (or when not
    there) the customer's payments changed since `since` (no paymentRef filter exists), else those of the period."""
    if own_number:
        found = _found_by_number(client, CUSTOMER_PAYMENTS, posting.marker, _carries("paymentRef", posting.marker),
                                 "refNbr", sync_record=sync_record)
        if found:
            return found
    params = {"customer": posting.customer, "paymentType": "Payment",
              **_since_params(posting, since, period_param="financialPeriod")}
    return _listed(client, CUSTOMER_PAYMENTS, params, "paymentRef", posting.marker, "refNbr", sync_record=sync_record)


def visma_customer_payment_write(client: VismaClient, posting: Posting, *, since: datetime | None,
                                 look_up_first: bool, settings: Mapping[str, Any] | None = None,
                                 own_numbers: frozenset[str] = frozenset(),
                                 sync_record: SyncRecord | None = None) -> str:
    """The payment, then with a fee line the fee journal (its own marker, posting_marker_part "fee"); both DTOs are
    checked before the first call; when an earlier attempt may have written either, each part is looked up first,
    so a crash between the two never duplicates one."""
    own_payment, own_journal = "customer_payment" in own_numbers, "journal" in own_numbers
    fee_journal = visma_fee_journal(posting)
    payment_fields = visma_customer_payment_fields(posting, settings=settings, own_number=own_payment)
    journal_fields = visma_journal_fields(fee_journal, own_number=own_journal) if fee_journal else None
    payment = None
    if look_up_first:
        payment = visma_customer_payment_find(client, posting, since=since, own_number=own_payment,
                                              sync_record=sync_record)
    payment = payment or visma_customer_payment_post(client, posting, own_number=own_payment, fields=payment_fields,
                                                     sync_record=sync_record)
    if fee_journal is None:
        return payment
    journal = _found_or_posted_journal(client, fee_journal, since=since, look_up_first=look_up_first,
                                       own_number=own_journal, fields=journal_fields, sync_record=sync_record)
    return f"payment {payment} + journal {journal}"


def visma_customer_payment_posted(client: VismaClient, posting: Posting, *, since: datetime | None,
                                  own_numbers: frozenset[str] = frozenset(),
                                  sync_record: SyncRecord | None = None) -> str | None:
    """The target id when every part (payment, fee journal) is in Visma; None while one is missing."""
    payment = visma_customer_payment_find(client, posting, since=since, own_number="customer_payment" in own_numbers,
                                          sync_record=sync_record)
    fee_journal = visma_fee_journal(posting)
    if payment is None or fee_journal is None:
        return payment
    journal = visma_journal_find(client, fee_journal, since=since, own_number="journal" in own_numbers,
                                 sync_record=sync_record)
    return f"payment {payment} + journal {journal}" if journal else None


# --- credit notes and customer refunds ------------------------------------------------------------------------
# A refund of a paid invoice is what an accountant books by hand in Visma: a customer credit note for the refunded
# share, carrying the invoice's accounts and VAT codes (so revenue and output VAT are reversed), and a customer refund
# (a customer payment of type Refund, PaymentUpdateDto) paying that credit note out of the processor's clearing
# account. The invoice was settled by its payment; the refund settles the credit note: AR nets to zero.


def visma_credit_note_lines(invoice: Mapping[str, Any], refunded: Decimal, *, base_currency: str) -> list[dict]:
    """The credit note lines for `refunded` (VAT included) of a Visma invoice (CustomerInvoiceDto): each invoice line
    scaled by the refunded share of the invoice total, with the line's account, subaccount and VAT code, so each VAT
    code is credited in proportion; the last line takes the rounding so the nets add up to the invoice's net times
    the share. A full refund is the invoice's lines as they are. The figures are read in the document currency by
    the one reader of Visma's totals (visma_invoice_figures: `amount` includes VAT, the twins decided by the rate)."""
    from .invoices import visma_invoice_figures

    figures = visma_invoice_figures(invoice, base_currency=base_currency)
    raw_lines = invoice.get("invoiceLines") or []
    if not figures.lines:
        raise VismaDocumentError(f"invoice {figures.number} has no lines to credit")
    total = figures.total
    if total <= 0 or refunded <= 0 or refunded > total:
        raise VismaDocumentError(f"a refund of {refunded} cannot be credited on invoice {figures.number} of {total}")
    quantum = Decimal(1).scaleb(-minor_units(figures.currency))
    share = refunded / total
    wanted = (figures.net * share).quantize(quantum)
    scaled = [(line.net * share).quantize(quantum) for line in figures.lines]
    scaled[-1] += wanted - sum(scaled, ZERO)
    credited = []
    for figure, line, amount in zip(figures.lines, raw_lines, scaled):
        item: dict[str, Any] = {"description": figure.description or f"Line {figure.line_number}",
                                "amount": amount, "account": str((line.get("account") or {}).get("number") or "")}
        segments = (line.get("subaccount") or {}).get("segments") if isinstance(line.get("subaccount"), Mapping) \
            else None
        if segments:
            item["dimensions"] = {str(segment["segmentId"]): str(segment["segmentValue"]) for segment in segments}
        if figure.vat_code:
            item["vat_code"] = figure.vat_code
        credited.append(item)
    return credited


def visma_credit_note_fields(posting: Posting, *, own_number: bool = False) -> dict:
    """POST /v2/customerCreditNote (CustomerCreditNoteUpdateDto), the marker in externalReference, the credited
    invoice's number in customerRefNumber; lines from extra["lines"] ({"description", "amount", "account",
    optional "vat_code", "dimensions"}), else one line per "account" line (debit − credit)."""
    if not posting.customer:
        raise VismaDocumentError(f"credit note {posting.marker} has no customer")
    default = _line(posting, "account", "credit note")
    items = posting.extra.get("lines") or [
        {"description": line.description or posting.description, "amount": line.debit - line.credit,
         "account": line.account, "dimensions": line.dimensions} for line in _lines(posting, "account")]
    # A credit note line is an invoice line (CustomerCreditNoteLineUpdateDto has the same fields).
    fields: dict[str, Any] = _customer_document_header(posting)
    if posting.extra.get("invoice_number"):
        fields["customerRefNumber"] = str(posting.extra["invoice_number"])
    fields["lines"] = [_customer_invoice_line(item, default, number) for number, item in enumerate(items, start=1)]
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("customer_credit_note", fields, posting.marker)


def visma_credit_note_post(client: VismaClient, posting: Posting, *, own_number: bool = False,
                           sync_record: SyncRecord | None = None, fields: dict | None = None) -> str:
    """Write the credit note; returns its reference number."""
    fields = fields or visma_credit_note_fields(posting, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, CREDIT_NOTE_CREATE, fields, lookup_path=CREDIT_NOTES,
                                    marker=posting.marker, carries_marker=_carries("externalReference", posting.marker),
                                    key="referenceNumber", sync_record=sync_record)
    return client.create(CREDIT_NOTE_CREATE, fields, sync_record=sync_record)


def visma_credit_note_find(client: VismaClient, posting: Posting, *, own_number: bool = False,
                           sync_record: SyncRecord | None = None) -> str | None:
    """The credit note whose externalReference is the marker (a filter of GET /v1/customerCreditNote: one call);
    with own numbers, the credit note numbered with the marker first."""
    if own_number:
        found = _found_by_number(client, CREDIT_NOTES, posting.marker, _carries("externalReference", posting.marker),
                                 "referenceNumber", sync_record=sync_record)
        if found:
            return found
    return _listed(client, CREDIT_NOTES, {"externalReference": posting.marker}, "externalReference", posting.marker,
                   "referenceNumber", sync_record=sync_record)


def visma_customer_refund_posting(posting: Posting) -> Posting:
    """The customer refund of a credit-note posting, with its own marker (posting_marker_part "refund")."""
    return Posting(document="customer_refund", marker=posting_marker_part(posting.marker, REFUND_PART),
                   currency=posting.currency, date=posting.date, description=posting.description,
                   facts=posting.facts, lines=posting.lines, customer=posting.customer, rule=posting.rule,
                   extra=posting.extra)


def visma_customer_refund_fields(posting: Posting, credit_note: str, *, settings: Mapping[str, Any] | None = None,
                                 own_number: bool = False) -> dict:
    """POST /v1/customerPayment (PaymentUpdateDto) of type Refund: the refunded amount (the "account" lines' debit −
    credit) paid out of the cash account (the clearing account by default), applied to the credit note
    (paymentLines documentType CreditNote). `posting` is visma_customer_refund_posting's."""
    if not posting.customer:
        raise VismaDocumentError(f"customer refund {posting.marker} has no customer")
    amount = abs(sum((line.debit - line.credit for line in _lines(posting, "account")), ZERO))
    fields: dict[str, Any] = {
        "type": "Refund",
        "customer": posting.customer,
        "invoiceText": posting.description,
        "applicationDate": _date(posting.date),
        "applicationPeriod": _period(posting.date),
        "paymentRef": posting.marker,
        **_cash_account_and_method(posting, settings or {}, "customer refund"),
        "currency": posting.currency,
        "paymentAmount": amount,
        "paymentLines": [{"operation": "Insert", "documentType": "CreditNote", "refNbr": credit_note,
                          "amountPaid": amount}],
        **visma_hold_fields(posting),
    }
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("customer_payment", fields, posting.marker)


def visma_customer_refund_find(client: VismaClient, posting: Posting, *, since: datetime | None,
                               own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The refund whose paymentRef is its marker (`posting` is visma_customer_refund_posting's): with own numbers
    the payment numbered with it; else the customer's refunds changed since `since`, else those of the period."""
    if own_number:
        found = _found_by_number(client, CUSTOMER_PAYMENTS, posting.marker, _carries("paymentRef", posting.marker),
                                 "refNbr", sync_record=sync_record)
        if found:
            return found
    params = {"customer": posting.customer, "paymentType": "Refund",
              **_since_params(posting, since, period_param="financialPeriod")}
    return _listed(client, CUSTOMER_PAYMENTS, params, "paymentRef", posting.marker, "refNbr", sync_record=sync_record)


def _credit_note_open(client: VismaClient, number: str, refunded: Decimal, marker: str, *,
                      sync_record: SyncRecord | None) -> None:
    """Refuse to pay out a credit note whose balance is not the refunded amount (Visma's VAT rounding, or an edit):
    the refund would leave AR off by the difference."""
    note = client.get_one(f"{CREDIT_NOTES}/{quote(number, safe='')}", sync_record=sync_record) or {}
    balance = _amount(note.get("balanceInCurrency", note.get("amountInCurrency")), f"credit note {number} balance")
    if balance != refunded:
        raise VismaDocumentError(
            f"credit note {number} ({marker}) has a balance of {balance}, the refund is {refunded}: correct the "
            "credit note in Visma (VAT rounding?) and approve the record again")


def visma_credit_note_write(client: VismaClient, posting: Posting, *, since: datetime | None, look_up_first: bool,
                            settings: Mapping[str, Any] | None = None, own_numbers: frozenset[str] = frozenset(),
                            sync_record: SyncRecord | None = None) -> str:
    """The credit note, the customer refund paying it out, and with a "fee" line the fee-return journal (its own
    marker); every DTO but the refund's (it names the credit note) is checked before the first call; when an earlier
    attempt may have written a part, each part is looked up first, so a crash between two duplicates neither."""
    own_note, own_refund = "credit_note" in own_numbers, "customer_refund" in own_numbers
    own_journal = "journal" in own_numbers
    refund = visma_customer_refund_posting(posting)
    refunded = abs(sum((line.debit - line.credit for line in _lines(posting, "account")), ZERO))
    note_fields = visma_credit_note_fields(posting, own_number=own_note)
    visma_customer_refund_fields(refund, "0", settings=settings, own_number=own_refund)
    fee_journal = visma_fee_journal(posting)
    journal_fields = visma_journal_fields(fee_journal, own_number=own_journal) if fee_journal else None
    note = visma_credit_note_find(client, posting, own_number=own_note, sync_record=sync_record) \
        if look_up_first else None
    note = note or visma_credit_note_post(client, posting, own_number=own_note, fields=note_fields,
                                          sync_record=sync_record)
    # Visma applies a refund only to a released credit note: it is released here, before the refund that pays it out,
    # even for a tenant that leaves documents on hold (the processor has paid the money back already; the refund and
    # fee journal follow the tenant's choice). Safe to repeat: a released credit note is left as it is.
    visma_document_release(client, "credit_note", note, sync_record=sync_record)
    paid_out = visma_customer_refund_find(client, refund, since=since, own_number=own_refund,
                                          sync_record=sync_record) if look_up_first else None
    if paid_out is None:
        _credit_note_open(client, note, refunded, posting.marker, sync_record=sync_record)
        fields = visma_customer_refund_fields(refund, note, settings=settings, own_number=own_refund)
        if own_refund:
            paid_out = _create_own_numbered(client, CUSTOMER_PAYMENTS, fields, lookup_path=CUSTOMER_PAYMENTS,
                                            marker=refund.marker, carries_marker=_carries("paymentRef", refund.marker),
                                            key="refNbr", sync_record=sync_record)
        else:
            paid_out = client.create(CUSTOMER_PAYMENTS, fields, sync_record=sync_record)
    written = f"credit note {note} + refund {paid_out}"
    if fee_journal is None:
        return written
    journal = _found_or_posted_journal(client, fee_journal, since=since, look_up_first=look_up_first,
                                       own_number=own_journal, fields=journal_fields, sync_record=sync_record)
    return f"{written} + journal {journal}"


def visma_credit_note_posted(client: VismaClient, posting: Posting, *, since: datetime | None,
                             own_numbers: frozenset[str] = frozenset(),
                             sync_record: SyncRecord | None = None) -> str | None:
    """The target id when every part (credit note, refund, fee journal) is in Visma; None while one is missing."""
    note = visma_credit_note_find(client, posting, own_number="credit_note" in own_numbers, sync_record=sync_record)
    if note is None:
        return None
    paid_out = visma_customer_refund_find(client, visma_customer_refund_posting(posting), since=since,
                                          own_number="customer_refund" in own_numbers, sync_record=sync_record)
    if paid_out is None:
        return None
    fee_journal = visma_fee_journal(posting)
    if fee_journal is None:
        return f"credit note {note} + refund {paid_out}"
    journal = visma_journal_find(client, fee_journal, since=since, own_number="journal" in own_numbers,
                                 sync_record=sync_record)
    return f"credit note {note} + refund {paid_out} + journal {journal}" if journal else None


# --- supplier invoices and payments ---------------------------------------------------------------------------

SUPPLIER_INVOICE_BY_NUMBER = f"{SUPPLIER_INVOICES}/Invoice"
SUPPLIER_PAYMENT_BY_NUMBER = f"{SUPPLIER_PAYMENTS}/Payment"


def visma_supplier_invoice_fields(posting: Posting, *, own_number: bool = False) -> dict:
    """POST /v1/supplierInvoice (SupplierInvoiceUpdateDto), the marker in supplierReference; one invoice line per
    "account" line of the posting (the payable side is the supplier's)."""
    if not posting.supplier:
        raise VismaDocumentError(f"supplier invoice {posting.marker} has no supplier")
    lines = []
    for line in _lines(posting, "account"):
        fields: dict[str, Any] = {"operation": "Insert", "accountNumber": line.account}
        if line.dimensions:
            fields["subaccount"] = line.dimensions
        fields["transactionDescription"] = line.description or posting.description
        fields["costInCurrency"] = line.debit - line.credit
        lines.append(fields)
    if not lines:
        raise VismaDocumentError(f"supplier invoice {posting.marker} has no posting line with role 'account'")
    fields = {
        "documentType": "Invoice",
        **visma_hold_fields(posting),
        "supplierNumber": posting.supplier,
        "date": _date(posting.date),
        "financialPeriod": _period(posting.date),
        "currencyId": posting.currency,
        "supplierReference": posting.marker,
        "description": posting.description,
    }
    if posting.extra.get("due_date"):
        fields["dueDate"] = _date(date.fromisoformat(str(posting.extra["due_date"])))
    fields["invoiceLines"] = lines
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("supplier_invoice", fields, posting.marker)


def visma_supplier_invoice_post(client: VismaClient, posting: Posting, *, own_number: bool = False,
                                sync_record: SyncRecord | None = None) -> str:
    """Write the supplier invoice; returns its reference number."""
    fields = visma_supplier_invoice_fields(posting, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, SUPPLIER_INVOICES, fields, lookup_path=SUPPLIER_INVOICE_BY_NUMBER,
                                    marker=posting.marker, carries_marker=_carries("supplierReference", posting.marker),
                                    key="referenceNumber", sync_record=sync_record)
    return client.create(SUPPLIER_INVOICES, fields, sync_record=sync_record)


def visma_supplier_invoice_find(client: VismaClient, posting: Posting, *, since: datetime | None,
                                own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The supplier's invoice whose supplierReference is the marker: with own numbers the invoice numbered with it;
    else (or when not there) a bounded list (supplierReference is no filter)."""
    if own_number:
        found = _found_by_number(client, SUPPLIER_INVOICE_BY_NUMBER, posting.marker,
                                 _carries("supplierReference", posting.marker), "referenceNumber",
                                 sync_record=sync_record)
        if found:
            return found
    params = {"supplier": posting.supplier, **_since_params(posting, since, period_param="financialPeriod")}
    return _listed(client, SUPPLIER_INVOICES, params, "supplierReference", posting.marker, "referenceNumber",
                   sync_record=sync_record)


def visma_supplier_payment_fields(posting: Posting, *, settings: Mapping[str, Any] | None = None,
                                  own_number: bool = False) -> dict:
    """POST /v1/supplierPayment (SupplierPaymentUpdateDto), the marker in paymentRef, applied to
    extra["invoice_number"]."""
    if not posting.supplier:
        raise VismaDocumentError(f"supplier payment {posting.marker} has no supplier")
    fields = {"supplier": posting.supplier, "description": posting.description,
              **_payment_fields(posting, settings, "supplier payment")}
    if own_number:
        fields = _own_number(fields, "referenceNumber", posting.marker)
    return _fitted("supplier_payment", fields, posting.marker)


def visma_supplier_payment_post(client: VismaClient, posting: Posting, *, settings: Mapping[str, Any] | None = None,
                                own_number: bool = False, sync_record: SyncRecord | None = None) -> str:
    """Write the supplier payment; returns its reference number."""
    fields = visma_supplier_payment_fields(posting, settings=settings, own_number=own_number)
    if own_number:
        return _create_own_numbered(client, SUPPLIER_PAYMENTS, fields, lookup_path=SUPPLIER_PAYMENT_BY_NUMBER,
                                    marker=posting.marker, carries_marker=_carries("paymentRef", posting.marker),
                                    key="refNbr", sync_record=sync_record)
    return client.create(SUPPLIER_PAYMENTS, fields, sync_record=sync_record)


def visma_supplier_payment_find(client: VismaClient, posting: Posting, *, since: datetime | None,
                                own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The supplier's payment whose paymentRef is the marker: with own numbers the payment numbered with it; else
    (or when not there) a bounded list."""
    if own_number:
        found = _found_by_number(client, SUPPLIER_PAYMENT_BY_NUMBER, posting.marker,
                                 _carries("paymentRef", posting.marker), "refNbr", sync_record=sync_record)
        if found:
            return found
    params = {"supplier": posting.supplier, "paymentType": "Payment",
              **_since_params(posting, since, period_param="financialPeriod")}
    return _listed(client, SUPPLIER_PAYMENTS, params, "paymentRef", posting.marker, "refNbr", sync_record=sync_record)


# --- customers and suppliers ----------------------------------------------------------------------------------
# A party keeps our marker in accountReference (BAccount.AcctReferenceNbr, 50: "an additional number of the business
# account used in external integration"). GET /v1/customer and /v1/supplier cannot filter on it, so without own
# numbers a party is found in a bounded list: customers created since the claim (createdDateTime), suppliers
# changed since it (their list has no createdDateTime filter), else those with the party's exact name.


def _party_fields(kind: str, fields: Mapping[str, Any], marker: str, own_number: bool) -> dict:
    fields = {**fields, "accountReference": marker}
    if own_number:
        fields = _own_number(fields, "number", marker)
    return _fitted(kind, fields, marker)


def visma_customer_fields(fields: Mapping[str, Any], *, marker: str, own_number: bool = False) -> dict:
    """Plain CustomerUpdateDto fields ({"name": ..., "mainContact": {"email": ...}}) with our marker in
    accountReference (and as the number, with own numbers), within Visma's lengths."""
    return _party_fields("customer", fields, marker, own_number)


def visma_supplier_fields(fields: Mapping[str, Any], *, marker: str, own_number: bool = False) -> dict:
    """Plain SupplierUpdateDto fields with our marker in accountReference (and as the number, with own numbers)."""
    return _party_fields("supplier", fields, marker, own_number)


def _party_create(client: VismaClient, path: str, fields: dict, *, marker: str, own_number: bool,
                  sync_record: SyncRecord | None) -> str:
    if own_number:
        return _create_own_numbered(client, path, fields, lookup_path=path, marker=marker,
                                    carries_marker=_carries("accountReference", marker), key="number",
                                    sync_record=sync_record)
    return client.create(path, fields, sync_record=sync_record)


def _party_find(client: VismaClient, path: str, marker: str, *, name: str, since: datetime | None,
                since_param: str, own_number: bool, sync_record: SyncRecord | None) -> str | None:
    if own_number:
        found = _found_by_number(client, path, marker, _carries("accountReference", marker), "number",
                                 sync_record=sync_record)
        if found:
            return found
    if since is not None:
        params = {since_param: visma_datetime(since), f"{since_param}Condition": ">="}
    elif name:
        params = {"name": name}
    else:
        raise VismaDocumentError(f"{path} {marker}: neither a time nor a name bounds the lookup")
    return _listed(client, path, params, "accountReference", marker, "number", sync_record=sync_record)


def visma_customer_create(client: VismaClient, fields: Mapping[str, Any], *, marker: str, own_number: bool = False,
                          sync_record: SyncRecord | None = None) -> str:
    """Create a customer from plain CustomerUpdateDto fields ({"name": ..., "mainContact": {"email": ...}}),
    carrying `marker`; returns its number."""
    return _party_create(client, CUSTOMERS, visma_customer_fields(fields, marker=marker, own_number=own_number),
                         marker=marker, own_number=own_number, sync_record=sync_record)


def visma_customer_find(client: VismaClient, marker: str, *, name: str = "", since: datetime | None = None,
                        own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The number of the customer carrying `marker`, if any."""
    return _party_find(client, CUSTOMERS, marker, name=name, since=since, since_param="createdDateTime",
                       own_number=own_number, sync_record=sync_record)


def visma_customer_update(client: VismaClient, number: str, fields: Mapping[str, Any], *,
                          sync_record: SyncRecord | None = None) -> str | None:
    """Change a customer (PUT with If-Match, read again on 412); returns the new ETag."""
    fitted = _fitted("customer", dict(fields), number)
    return client.update(f"{CUSTOMERS}/{quote(number, safe='')}", lambda current: fitted, sync_record=sync_record)


def visma_supplier_create(client: VismaClient, fields: Mapping[str, Any], *, marker: str, own_number: bool = False,
                          sync_record: SyncRecord | None = None) -> str:
    """Create a supplier from plain SupplierUpdateDto fields, carrying `marker`; returns its number."""
    return _party_create(client, SUPPLIERS, visma_supplier_fields(fields, marker=marker, own_number=own_number),
                         marker=marker, own_number=own_number, sync_record=sync_record)


def visma_supplier_find(client: VismaClient, marker: str, *, name: str = "", since: datetime | None = None,
                        own_number: bool = False, sync_record: SyncRecord | None = None) -> str | None:
    """The number of the supplier carrying `marker`, if any."""
    return _party_find(client, SUPPLIERS, marker, name=name, since=since, since_param="lastModifiedDateTime",
                       own_number=own_number, sync_record=sync_record)


def visma_supplier_update(client: VismaClient, number: str, fields: Mapping[str, Any], *,
                          sync_record: SyncRecord | None = None) -> str | None:
    """Change a supplier (PUT with If-Match, read again on 412); returns the new ETag."""
    fitted = _fitted("supplier", dict(fields), number)
    return client.update(f"{SUPPLIERS}/{quote(number, safe='')}", lambda current: fitted, sync_record=sync_record)


# --- release --------------------------------------------------------------------------------------------------
# A document is created on hold (for review in Visma) or not; one not on hold is released by POST …/action/release
# (swagger: /v2/journaltransaction/{n}, /v1/customerinvoice/{n}, /v1/customerPayment/{n} with
# ReleasePaymentActionDto, /v1/supplierInvoice/{documentType}/{n}, /v1/supplierPayment/{n} with
# ReleaseSupplierPaymentActionDto; reference §4). Only a released payment settles its invoice.

# Where each kind is read and released: (GET path, release path, release DTO).
_RELEASE = {
    "journal": (JOURNALS + "/{n}", JOURNALS + "/{n}/action/release", None),
    "customer_invoice": (CUSTOMER_INVOICES + "/{n}", CUSTOMER_INVOICES + "/{n}/action/release", None),
    "customer_payment": (CUSTOMER_PAYMENTS + "/{n}", CUSTOMER_PAYMENTS + "/{n}/action/release", {"type": "Payment"}),
    "credit_note": (CREDIT_NOTES + "/{n}", CREDIT_NOTES + "/{n}/action/release", None),
    "customer_refund": (CUSTOMER_PAYMENTS + "/{n}", CUSTOMER_PAYMENTS + "/{n}/action/release", {"type": "Refund"}),
    "supplier_invoice": (SUPPLIER_INVOICES + "/Invoice/{n}", SUPPLIER_INVOICES + "/Invoice/{n}/action/release",
                         None),
    "supplier_payment": (SUPPLIER_PAYMENTS + "/Payment/{n}", SUPPLIER_PAYMENTS + "/{n}/action/release",
                         {"type": "Payment"}),
}
RELEASABLE = frozenset(_RELEASE)
# Statuses of a document not released yet (swagger status enums: Hold, Balanced); Hold waits for a person.
ON_HOLD, BALANCED = "Hold", "Balanced"
UNRELEASED_STATUSES = frozenset({ON_HOLD, BALANCED})
_PAYMENT_WITH_FEE = re.compile(r"^payment (?P<payment>\S+) \+ journal (?P<journal>\S+)$")
_CREDIT_NOTE_PARTS = re.compile(r"^credit note (?P<note>\S+) \+ refund (?P<refund>\S+)(?: \+ journal (?P<journal>\S+))?$")


def visma_hold_fields(posting: Posting) -> dict:
    """{"hold": …} when the writer decided it (extra["hold"]: the tenant leaves documents for review in Visma);
    a document not on hold is released after it is created."""
    return {"hold": bool(posting.extra["hold"])} if "hold" in posting.extra else {}


def visma_document_parts(kind: str, target_id: str) -> list[tuple[str, str]]:
    """The Visma documents behind a record's target id: a payment with a fee is "payment X + journal Y"."""
    found = _PAYMENT_WITH_FEE.match(target_id or "")
    if kind == "customer_payment" and found:
        return [("customer_payment", found["payment"]), ("journal", found["journal"])]
    parts = _CREDIT_NOTE_PARTS.match(target_id or "")
    if kind == "credit_note" and parts:
        return [("credit_note", parts["note"]), ("customer_refund", parts["refund"]),
                *([("journal", parts["journal"])] if parts["journal"] else [])]
    return [(kind, target_id)] if kind in RELEASABLE and target_id else []


def visma_document_status(client: VismaClient, kind: str, number: str, *,
                          sync_record: SyncRecord | None = None) -> str:
    """Visma's status of the document (Hold, Balanced, Open, Closed, Posted...); "" when Visma does not have it."""
    read_path = _RELEASE[kind][0].format(n=quote(number, safe=""))
    document = client.get_one(read_path, sync_record=sync_record)
    return str((document or {}).get("status") or "")


# Kinds a create without hold leaves Balanced, to be released by an explicit action (swagger status enums; Acumatica's
# AR/AP documents are released by the Release action). A journal is not among them: a company can have Visma release
# GL batches by itself when they are created, so its status is read before it is released.
BALANCED_WHEN_CREATED = frozenset({"customer_invoice", "customer_payment", "customer_refund", "supplier_invoice",
                                   "supplier_payment"})


def visma_document_release(client: VismaClient, kind: str, number: str, *,
                           sync_record: SyncRecord | None = None, created: bool = False) -> str:
    """Release the document unless it is released already or on hold (a person keeps it for review); returns its
    status after. Safe to repeat: a released document is left as it is. `created`: this write just created it
    without hold, so a kind in BALANCED_WHEN_CREATED is released without reading its status first (one call less);
    should Visma refuse because it released the document itself, its status is read and kept."""
    _read, release_path, dto = _RELEASE[kind]
    if created and kind in BALANCED_WHEN_CREATED:
        try:
            answer = client.action(release_path.format(n=quote(number, safe="")), dto, sync_record=sync_record)
        except VismaPermanentError:
            status = visma_document_status(client, kind, number, sync_record=sync_record)
            if status in UNRELEASED_STATUSES:
                raise
            return status
    else:
        status = visma_document_status(client, kind, number, sync_record=sync_record)
        if status != BALANCED:
            return status
        answer = client.action(release_path.format(n=quote(number, safe="")), dto, sync_record=sync_record)
    if str(answer.get("actionResult") or "Done") == "Failed":
        raise VismaDocumentError(f"Visma did not release {kind.replace('_', ' ')} {number}: "
                                 f"{answer.get('errorInfo') or 'no reason given'}")
    return visma_document_status(client, kind, number, sync_record=sync_record)
