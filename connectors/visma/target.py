"""VismaTarget: what a stream writing to Visma.net ERP brings to the pipeline: find by marker, write, live check."""
from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from audit.models import SyncRecord
from audit.selectors import record_claim_times
from connectors.errors import AuthenticationError, PermanentError, TransientError
from connectors.pipeline import Written
from mappings.documents import Posting
from mappings.periods import FinancialCalendar
from mappings.reference import reference_live_check
from mappings.services import LiveCheck, MappingOutcome

from . import postings
from .client import DELTA_OVERLAP, VismaClient


# A refund of a paid invoice: a customer credit note and the customer refund paying it out (plus, with a fee line, the
# fee-return journal). The refund's own numbers are kind "customer_refund".
CREDIT_NOTE = "credit_note"
# A line on a customer invoice's note (a failed payment, a dispute): moves no money, needs no GL rule.
INVOICE_NOTE = "invoice_note"


@dataclass(frozen=True)
class _Claims:
    """When the record claimed the write: the first claim bounds a lookup; a second means a write may have landed."""

    since: datetime | None
    may_have_written: bool


def _claims(record: SyncRecord) -> _Claims:
    moments = record_claim_times(record)
    # Visma does not say which zone lastModifiedDateTime is in: the overlap covers that, and clock skew.
    return _Claims(since=moments[0] - DELTA_OVERLAP if moments else None, may_have_written=len(moments) > 1)


@contextmanager
def visma_outcome(posting: Posting) -> Iterator[None]:
    """Visma's answers as the pipeline acts on them: PermanentError (a 4xx, a 412 on every attempt) flags the
    record with the reason, TransientError retries it with backoff."""
    try:
        yield
    except postings.VismaDocumentError as exc:
        raise PermanentError(f"{posting.document} {posting.marker} cannot be written to Visma: {exc}",
                             system_message=f"cannot be written to Visma: {exc}") from exc
    except AuthenticationError as exc:
        # Refused credentials are the connection's fault, not the document's: retried once they are fixed.
        raise TransientError(
            f"Visma refused the credentials of {posting.document} {posting.marker}: {exc.system_message}",
            status_code=exc.status_code, system_message=exc.system_message,
        ) from exc


class VismaTarget:
    """Mixin for a connectors.pipeline.Stream whose target is Visma.net ERP: `class Captures(VismaTarget, Stream)`.

    It supplies the three target methods, dispatching on `posting.document`:

    - "journal" → POST /v2/journaltransaction. Reads posting.date (transactionDate; financialPeriod YYYYMM),
      currency, description, and each line's account, dimensions ({segment id: value} → subaccount), debit,
      credit and description (transactionDescription; else the posting's). Every line carries the marker as
      referenceNumber; found by listing GL journals changed since the record's first claim (less 3 h), else those
      of the posting's period. Target id: the batch number.
    - "customer_invoice" → POST /v2/customerinvoice. Reads posting.customer, date, currency, description
      (invoiceText), marker (externalReference; found with the externalReference filter, one call), the first
      "account" line (default GL account and dimensions of each invoice line), extra["lines"]: a list of
      {"description", "quantity" (default 1), "unit_price" or "amount" (the line total), optional "account",
      "dimensions", "inventory", "vat_code"}; without it, one invoice line per "account" line (credit − debit).
      Optional extra["due_date"] (ISO date) and extra["note"]. Target id: the invoice number.
    - "customer_payment" → POST /v1/customerPayment (type Payment). Reads posting.customer, date, currency,
      description (invoiceText), marker (paymentRef); the amount is the "account" lines' credit − debit (the
      receivable settled; else facts.amount); extra["invoice_number"]: the invoice it pays (paymentLines);
      extra["cash_account"] / extra["payment_method"], else integration.settings["cash_account"] /
      ["payment_method"]; the cash account falls back to the "clearing" line's account. With a "fee" line, also
      a journal: debit the fee line's account, credit the clearing line's account, marker + ":fee". Each part is
      found or written, so a crash between the two duplicates neither. Target id: "200001", or with a fee
      "payment 200001 + journal 000007".
    - "credit_note" → POST /v2/customerCreditNote, then POST /v1/customerPayment (type Refund) applied to it.
      Reads posting.customer, date, currency, description (invoiceText), marker (the credit note's
      externalReference; found with that filter), extra["invoice_number"] (customerRefNumber: the credited invoice),
      extra["lines"] ({"description", "amount", "account", optional "vat_code", "dimensions"}: the invoice's lines
      for the refunded share, postings.visma_credit_note_lines), the "account" lines' debit − credit (the refunded
      amount), cash account and payment method as for customer_payment; the refund's paymentRef is the marker's
      "refund" part; it is written only when the credit note's balance is the refunded amount. With a "fee" line (a
      fee returned: credit), also the fee journal as for customer_payment. Target id: "credit note 500001 + refund
      200002" (+ " + journal 000009").
    - "supplier_invoice" → POST /v1/supplierInvoice (Invoice). Reads posting.supplier, date, currency,
      description, marker (supplierReference; found by listing the supplier's invoices changed since the claim),
      one invoice line per "account" line (costInCurrency = debit − credit, its account, dimensions,
      description); optional extra["due_date"]. Target id: the invoice number.
    - "supplier_payment" → POST /v1/supplierPayment (Payment). Like customer_payment with posting.supplier and
      the "account" lines' debit − credit (the payable settled); extra["invoice_number"], cash account and
      payment method as above; no fee journal. Target id: the payment number.
    - "invoice_note" → a line "[marker] description" appended to the note of customer invoice
      extra["invoice_number"] (PUT with If-Match, read again on 412); found by the marker in the note. No GL rule.
      Target id: the invoice number.
    - "customer" / "supplier" → POST /v1/customer or /v1/supplier from extra["fields"] (plain CustomerUpdateDto /
      SupplierUpdateDto fields, "name" required), the marker in accountReference; found by the marker among the
      customers created (suppliers changed) since the claim. No GL mapping. Target id: the customer's number.

    Own numbers (Tenant.visma_own_numbers): for the kinds named there the marker is also the document's number
    (overrideNumberSeries), so a second write is refused by Visma and found by one GET.

    Before a customer_* or supplier_* document, extra["customer_update"] / extra["supplier_update"] (plain
    CustomerUpdateDto / SupplierUpdateDto fields, e.g. {"mainContact": {"email": "..."}}) are applied to
    posting.customer / posting.supplier with If-Match (re-read and re-applied on 412).

    Outcomes: a Visma 4xx is a PermanentError with Visma's message (the pipeline flags the record with it); 412
    on every attempt of an update is a VismaConflictError (flagged with the reason); a posting that cannot
    become the document (no customer, no cash account...) is flagged too; timeouts, 5xx, 429, a spent call
    budget and refused credentials are TransientError (retried with backoff). Every exchange is logged against
    the record. One VismaClient per stream instance, made on first use, closed with the stream.
    """

    tenant: Any
    integration: Any
    # Passed to VismaClient (tests give it a `sleep` that moves a fake clock).
    visma_client_options: dict[str, Any] = {}

    @cached_property
    def visma_client(self) -> VismaClient:
        client = VismaClient(self.integration.visma_connection, **self.visma_client_options)
        weakref.finalize(self, client.close)
        return client

    @cached_property
    def financial_calendar(self) -> FinancialCalendar:
        """The tenant's financial periods as mirrored from Visma, read once per stream."""
        return FinancialCalendar(self.tenant)

    @property
    def own_numbers(self) -> frozenset[str]:
        """The document kinds this tenant numbers with the marker."""
        return frozenset(self.tenant.visma_own_numbers or ())

    def find_posted(self, posting: Posting, record: SyncRecord) -> Written | None:
        with postings.visma_financial_calendar(self.financial_calendar.period_id):
            target_id = self._find(posting, record)
            if not target_id:
                return None
            # Found but maybe not released yet (the answer to the release was lost): released now, never re-created.
            return Written.of(posting, target_id, status=self._released(posting, target_id, record))

    def _released(self, posting: Posting, target_id: str, record: SyncRecord, *, written: bool = False) -> str:
        """Release every document behind the target id when the tenant releases (else leave them on hold); Visma's
        status after: the first part's, or that of a part still awaiting release. `written`: called after a write;
        when it was the record's first (no earlier attempt can have left a part), what is known is not read again."""
        statuses = []
        parts = postings.visma_document_parts(posting.document, target_id)
        # Asked only when a part's status could be known without a read (one query for the claim times).
        known = {"journal", *postings.BALANCED_WHEN_CREATED} if not self.tenant.visma_release \
            else postings.BALANCED_WHEN_CREATED
        created = written and any(kind in known for kind, _number in parts) \
            and not _claims(record).may_have_written
        with visma_outcome(posting):
            for kind, number in parts:
                if self.tenant.visma_release:
                    statuses.append(postings.visma_document_release(self.visma_client, kind, number,
                                                                    sync_record=record, created=created))
                elif created and kind in known:
                    # Created with hold a moment ago (visma_hold_fields): on hold until a person releases it.
                    statuses.append(postings.ON_HOLD)
                else:
                    statuses.append(postings.visma_document_status(self.visma_client, kind, number,
                                                                   sync_record=record))
        waiting = [status for status in statuses if status in postings.UNRELEASED_STATUSES]
        return (waiting or statuses or [""])[0]

    def _find(self, posting: Posting, record: SyncRecord) -> str | None:
        claims = _claims(record)
        client = self.visma_client
        own = self.own_numbers
        own_number = posting.document in own
        with visma_outcome(posting):
            if posting.document == "journal":
                return postings.visma_journal_find(client, posting, since=claims.since, own_number=own_number,
                                                   sync_record=record)
            if posting.document == "customer_invoice":
                return postings.visma_customer_invoice_find(client, posting, own_number=own_number,
                                                            sync_record=record)
            if posting.document == "customer_payment":
                return postings.visma_customer_payment_posted(client, posting, since=claims.since, own_numbers=own,
                                                              sync_record=record)
            if posting.document == CREDIT_NOTE:
                return postings.visma_credit_note_posted(client, posting, since=claims.since, own_numbers=own,
                                                         sync_record=record)
            if posting.document == "supplier_invoice":
                return postings.visma_supplier_invoice_find(client, posting, since=claims.since,
                                                            own_number=own_number, sync_record=record)
            if posting.document == "supplier_payment":
                return postings.visma_supplier_payment_find(client, posting, since=claims.since,
                                                            own_number=own_number, sync_record=record)
            if posting.document == "customer":
                return postings.visma_customer_find(client, posting.marker, name=_party_name(posting),
                                                    since=claims.since, own_number=own_number, sync_record=record)
            if posting.document == "supplier":
                return postings.visma_supplier_find(client, posting.marker, name=_party_name(posting),
                                                    since=claims.since, own_number=own_number, sync_record=record)
            if posting.document == INVOICE_NOTE:
                return postings.visma_customer_invoice_note_find(client, posting, sync_record=record)
        raise _unknown_document(posting)

    def write(self, posting: Posting, record: SyncRecord) -> Written:
        if posting.document in postings.RELEASABLE:
            # Tenant.visma_release: released after create, else created on hold for review in Visma.
            posting.extra["hold"] = not self.tenant.visma_release
        with postings.visma_financial_calendar(self.financial_calendar.period_id):
            target_id = self._write(posting, record)
            return Written.of(posting, target_id, status=self._released(posting, target_id, record, written=True))

    def _write(self, posting: Posting, record: SyncRecord) -> str:
        client = self.visma_client
        settings = self.integration.settings or {}
        own = self.own_numbers
        own_number = posting.document in own
        with visma_outcome(posting):
            self._parties_update(posting, record)
            if posting.document == "journal":
                return postings.visma_journal_post(client, posting, own_number=own_number, sync_record=record)
            if posting.document == "customer_invoice":
                return postings.visma_customer_invoice_post(client, posting, own_number=own_number,
                                                            sync_record=record)
            if posting.document == "customer_payment":
                claims = _claims(record)
                return postings.visma_customer_payment_write(
                    client, posting, since=claims.since, look_up_first=claims.may_have_written, settings=settings,
                    own_numbers=own, sync_record=record,
                )
            if posting.document == CREDIT_NOTE:
                claims = _claims(record)
                return postings.visma_credit_note_write(
                    client, posting, since=claims.since, look_up_first=claims.may_have_written, settings=settings,
                    own_numbers=own, sync_record=record,
                )
            if posting.document == "supplier_invoice":
                return postings.visma_supplier_invoice_post(client, posting, own_number=own_number,
                                                            sync_record=record)
            if posting.document == "supplier_payment":
                return postings.visma_supplier_payment_post(client, posting, settings=settings,
                                                            own_number=own_number, sync_record=record)
            if posting.document == "customer":
                return postings.visma_customer_create(client, _party_fields(posting), marker=posting.marker,
                                                      own_number=own_number, sync_record=record)
            if posting.document == "supplier":
                return postings.visma_supplier_create(client, _party_fields(posting), marker=posting.marker,
                                                      own_number=own_number, sync_record=record)
            if posting.document == INVOICE_NOTE:
                return postings.visma_customer_invoice_note_add(client, posting, sync_record=record)
        raise _unknown_document(posting)

    def map(self, posting: Posting) -> MappingOutcome:
        # A customer, a supplier or a note has no GL lines: nothing to map.
        if posting.document in NO_GL:
            return MappingOutcome(posting, None, [])
        return super().map(posting)

    def problems(self, posting: Posting) -> list[str]:
        if posting.document == INVOICE_NOTE:
            return [] if posting.extra.get("invoice_number") else [f"note {posting.marker} names no Visma invoice"]
        if posting.document in PARTIES:
            return [] if _party_name(posting) else [f"{posting.document} {posting.marker} has no name"]
        problems = super().problems(posting)
        # A date with no period, or in a closed one, waits for finance (approve into an open period), not retried.
        period = self.financial_calendar.problem(posting.date, posting.document)
        return [*problems, f"{posting.document} {posting.marker}: {period}"] if period else problems

    def live_check(self) -> LiveCheck:
        return reference_live_check(self.tenant, client=self.visma_client)

    def _parties_update(self, posting: Posting, record: SyncRecord) -> None:
        if posting.document.startswith("customer_") and posting.extra.get("customer_update"):
            postings.visma_customer_update(self.visma_client, posting.customer, posting.extra["customer_update"],
                                           sync_record=record)
        if posting.document.startswith("supplier_") and posting.extra.get("supplier_update"):
            postings.visma_supplier_update(self.visma_client, posting.supplier, posting.extra["supplier_update"],
                                           sync_record=record)


PARTIES = ("customer", "supplier")
NO_GL = (*PARTIES, INVOICE_NOTE)
DOCUMENTS = ("journal", "customer_invoice", "customer_payment", CREDIT_NOTE, "supplier_invoice", "supplier_payment",
             *PARTIES, INVOICE_NOTE)


def _party_fields(posting: Posting) -> dict:
    return dict(posting.extra.get("fields") or {})


def _party_name(posting: Posting) -> str:
    return str(_party_fields(posting).get("name") or "")


def _unknown_document(posting: Posting) -> PermanentError:
    return PermanentError(
        f"Visma cannot take a {posting.document!r} posting ({posting.marker}); it takes: {', '.join(DOCUMENTS)}"
    )
