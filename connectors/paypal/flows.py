"""What moves from PayPal to Visma: captures, refunds, reversals, dispute holds, disputes and invoices, read from PayPal
and turned into postings (journal, customer payment, credit note, invoice note, customer invoice) whose accounts the
mapping rules choose; a transaction code no stream takes is recorded and flagged.

Reading: Transaction Search in windows of at most 31 days up to now, with an overlap, the cursor never past what
PayPal says it has published (last_refreshed_datetime); each object is then read from its own API (a webhook is a
trigger, not the truth). Transforming: a PayPal object → a Posting, lines by role (account, fee, clearing); the payer
becomes the Visma customer through an ExternalReference; a refund waits for its capture to be posted.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal
from itertools import islice
from urllib.parse import quote

from django.utils import timezone

from audit.models import RecordStatus
from audit.selectors import record_of, record_posting, records_final
from connectors.dates import tenant_date
from connectors.errors import WaitFor
from connectors.pipeline import SourceDataError, SourceObject, Stream, source_take
from connectors.visma.currency import (
    Settlement,
    converted_within_rounding,
    settlement_valued,
    visma_exchange_rate,
)
from connectors.visma.invoices import visma_vat_of_lines
from connectors.visma.postings import CUSTOMER_INVOICES, VismaDocumentError, visma_credit_note_lines
from connectors.visma.target import CREDIT_NOTE, INVOICE_NOTE, VismaTarget
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.selectors import external_reference_visma_id, vat_code_for
from mappings.reference import customer_invoice_by_reference, tenant_base_currency
from mappings.money import MoneyError, is_exact, quantize, to_decimal
from mappings.services import LiveCheck, MappingOutcome

from .client import PayPalClient, SearchHorizon, link_target_id, paypal_time

SYSTEM = "paypal"
# Transaction event codes (PayPal's T-code table): T00nn are payments received; T1107 a refund the merchant made;
# T1106 a reversal PayPal made and T1201 a chargeback (money taken back, the fee kept).
PAYMENT_CODE_PREFIX = "T00"
REFUND_CODES = frozenset({"T1107"})
REVERSAL_CODES = frozenset({"T1106", "T1201"})
# Money a dispute holds and gives back, listed by Transaction Search only (no REST object): T1110 a hold for dispute
# investigation, T1111 its release, T1202 a chargeback reversal (the chargeback won).
DISPUTE_FUNDS_CODES = frozenset({"T1110", "T1111", "T1202"})
# Transaction Search: "It takes a maximum of three hours for executed transactions to appear": how far back from now
# PayPal is taken to have published when an answer leaves out last_refreshed_datetime.
PUBLICATION_DELAY_UNSAID = timedelta(hours=3)
BATCH = 100
# An unmapped payer is carried as this "customer", which Visma cannot know: the posting is flagged with why.
UNMAPPED_PAYER = "PayPal payer "
UNMAPPED_RECIPIENT = "PayPal invoice recipient "
# Invoicing v2 ids: "INV2-" and four groups of four (the invoice a capture pays may be one of ours).
PAYPAL_INVOICE_ID = re.compile(r"^INV2(-[A-Z0-9]{4}){4}$")
# Invoice statuses that owe nothing yet (not sent), and are therefore not receivables.
INVOICE_NOT_SENT = frozenset({"DRAFT", "SCHEDULED"})


# --- money and customers --------------------------------------------------------------------------------------


def paypal_amount(document: Mapping | None, *, currency: str, field: str) -> Decimal:
    """A PayPal money object as a Decimal in `currency`, with no more decimals than the currency has."""
    if not document:
        return Decimal("0")
    if document.get("currency_code") != currency:
        raise SourceDataError(f"{field} is in {document.get('currency_code')}, the transaction in {currency}")
    amount = to_decimal(document.get("value"), field=field)
    if not is_exact(amount, currency):
        raise MoneyError(f"{field}: {amount} {currency} has more decimals than {currency} allows")
    return amount


def paypal_customer_for(tenant, *, payer_id: str = "", email: str = "") -> str:
    """The Visma customer a PayPal payer stands for: by payer id, else by email; "" when neither is mapped."""
    return external_reference_visma_id(tenant, system=SYSTEM, visma_kind="customer", keys=[
        ("payer", payer_id), ("payer_email", (email or "").strip().lower())])


def is_unresolved_customer(number: str) -> bool:
    return number.startswith((UNMAPPED_PAYER, UNMAPPED_RECIPIENT))


def _batches(items: Iterable, size: int = BATCH) -> Iterator[list]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _day(tenant, moment: str | None, fallback: date | None = None) -> date:
    """The booking date of a PayPal timestamp: its date in the tenant's time zone; `fallback` (else today's date
    there) when PayPal gave none."""
    parsed = paypal_time(moment)
    if parsed is None and fallback is not None:
        return fallback
    return tenant_date(tenant, parsed)


# --- the shared reading side ----------------------------------------------------------------------------------



def _money_object(movement: dict, payload: dict) -> SourceObject:
    """A capture or refund as the pipeline keeps it: its amount for the record (None when PayPal sent no number)."""
    amount = movement.get("amount") or {}
    try:
        value = Decimal(str(amount.get("value")))
    except ArithmeticError:
        value = None
    return SourceObject(
        source_id=str(movement["id"]), payload=payload, updated_at=paypal_time(movement.get("update_time")),
        amount=value, currency=str(amount.get("currency_code") or "")[:3],
    )

class PayPalSource(Stream):
    """What every PayPal stream shares: the client, how far PayPal has published, the dedupe against settled records."""

    kind = SYSTEM
    max_window = timedelta(days=31)
    # Windows reach to now; Transaction Search says how far it has published (published_until). A transaction
    # appears up to three hours late: each window re-reads that much before the cursor.
    overlap = timedelta(hours=3)
    publication_delay_unsaid = PUBLICATION_DELAY_UNSAID
    initial_lookback = timedelta(days=7)
    default_poll_minutes = 15

    def __init__(self, integration):
        super().__init__(integration)
        minutes = (integration.settings or {}).get("publication_delay_minutes")
        if minutes is not None:
            self.publication_delay_unsaid = timedelta(minutes=int(minutes))
        self._search: SearchHorizon | None = None
        self._search_started: datetime | None = None

    def published_until(self) -> datetime | None:
        """How far Transaction Search had published the window just read: the last_refreshed_datetime short of its
        end; where an answer left that out, the read's time less PayPal's documented maximum delay."""
        if self._search is None:
            return None
        limits = [self._search.until] if self._search.until is not None else []
        if self._search.unsaid:
            limits.append(self._search_started - self.publication_delay_unsaid)
        return min(limits) if limits else None

    @contextmanager
    def paypal(self) -> Iterator[PayPalClient]:
        """A PayPal client for one read, closed after it: no connection outlives the read (the token is kept on the
        connection, so a new client does not mean a new token)."""
        client = PayPalClient(self.integration.partner_connection)
        try:
            yield client
        finally:
            client.close()

    def _final_payloads(self, source_ids: list[str]) -> dict:
        """Records of these objects that will not change any more (posted, rejected): no need to ask PayPal again."""
        return records_final(self.integration, self.name, source_ids)

    @staticmethod
    def _as_stored(record) -> SourceObject:
        return SourceObject(source_id=record.source_id, payload=record.source_payload,
                            updated_at=record.source_updated_at, amount=record.amount, currency=record.currency)

    def _window_read(self, start: datetime, end: datetime, wanted, fetch) -> Iterator[SourceObject]:
        """The objects Transaction Search lists in the window: a settled one as stored, the others read by
        `fetch(paypal, row, transaction id)`, in batches; how far PayPal had published is kept for published_until."""
        self._search, self._search_started = SearchHorizon(), timezone.now()
        with self.paypal() as paypal:
            for rows in _batches(self._search_rows(paypal, start, end, wanted, self._search)):
                ids = [row["transaction_info"]["transaction_id"] for row in rows]
                final = self._final_payloads(ids)
                for row, transaction_id in zip(rows, ids):
                    if transaction_id in final:
                        yield self._as_stored(final[transaction_id])
                        continue
                    source = fetch(paypal, row, transaction_id)
                    if source is not None:
                        yield source

    @staticmethod
    def _search_rows(paypal: PayPalClient, start: datetime, end: datetime, wanted,
                     horizon: SearchHorizon) -> Iterator[dict]:
        """Transaction Search rows in the window that `wanted(info)` keeps, each transaction once."""
        seen: set[str] = set()
        for row in paypal.transactions(start, end, horizon=horizon):
            info = row.get("transaction_info") or {}
            transaction_id = str(info.get("transaction_id") or "")
            # Ids are not unique in reporting (a balance-affecting row and another); one object, one read.
            if not transaction_id or transaction_id in seen or not wanted(info):
                continue
            seen.add(transaction_id)
            yield row


def _info_amount(info: Mapping) -> Decimal:
    try:
        return Decimal(str((info.get("transaction_amount") or {}).get("value") or "0"))
    except ArithmeticError:
        return Decimal("0")


def _payer_from_search(row: Mapping) -> dict:
    payer = row.get("payer_info") or {}
    return {"payer_id": str(payer.get("account_id") or ""), "email_address": str(payer.get("email_address") or "")}


def _payer_from_order(order: Mapping | None) -> dict:
    payer = (order or {}).get("payer") or {}
    return {"payer_id": str(payer.get("payer_id") or ""), "email_address": str(payer.get("email_address") or "")}


# --- captures -------------------------------------------------------------------------------------------------


class CaptureSource(PayPalSource):
    """PayPal captures (money received) → a journal, or a customer payment applied to the Visma invoice it pays.

    Looking that invoice up takes the Visma target's client (`visma_client`, from VismaTarget).
    """

    name = "captures"
    target_kind = "journal"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        def wanted(info: Mapping) -> bool:
            code = str(info.get("transaction_event_code") or "")
            return code.startswith(PAYMENT_CODE_PREFIX) and info.get("transaction_status") == "S" and \
                _info_amount(info) > 0

        def fetch(paypal: PayPalClient, row: Mapping, capture_id: str) -> SourceObject | None:
            capture = paypal.capture_get(capture_id)
            return self.source_object(capture, _payer_from_search(row)) if capture is not None else None

        return self._window_read(start, end, wanted, fetch)

    def read_one(self, source_id: str) -> SourceObject | None:
        with self.paypal() as paypal:
            capture = paypal.capture_get(source_id)
            if capture is None:
                return None
            order_id = ((capture.get("supplementary_data") or {}).get("related_ids") or {}).get("order_id") \
                or link_target_id(capture, "up")
            # The capture does not name its payer; the order it belongs to does.
            order = paypal.order_get(order_id) if order_id else None
        return self.source_object(capture, _payer_from_order(order))

    @staticmethod
    def source_object(capture: dict, payer: dict) -> SourceObject:
        return _money_object(capture, {"capture": capture, "payer": payer})

    def transform(self, source: SourceObject) -> Posting:
        capture = source.payload.get("capture") or {}
        payer = source.payload.get("payer") or {}
        capture_id = str(capture.get("id") or source.source_id)
        status = str(capture.get("status") or "")
        if status == "PENDING":
            reason = (capture.get("status_details") or {}).get("reason") or "no reason given"
            raise WaitFor(f"capture {capture_id} is pending at PayPal ({reason}); it is posted once completed")
        if status not in ("COMPLETED", "PARTIALLY_REFUNDED", "REFUNDED"):
            raise SourceDataError(f"capture {capture_id} is {status or 'without status'}: no money was received")
        currency = str((capture.get("amount") or {}).get("currency_code") or "")
        breakdown = capture.get("seller_receivable_breakdown")
        if not breakdown:
            raise SourceDataError(f"capture {capture_id} has no seller_receivable_breakdown (gross, fee, net)")
        gross = paypal_amount(breakdown.get("gross_amount") or capture.get("amount"), currency=currency,
                              field="gross_amount")
        fee = paypal_amount(breakdown.get("paypal_fee"), currency=currency, field="paypal_fee")
        for index, platform_fee in enumerate(breakdown.get("platform_fees") or []):
            fee += paypal_amount(platform_fee.get("amount"), currency=currency, field=f"platform_fees[{index}]")
        net = paypal_amount(breakdown.get("net_amount"), currency=currency, field="net_amount") \
            if breakdown.get("net_amount") else gross - fee
        if gross <= 0 or net != gross - fee:
            raise SourceDataError(f"capture {capture_id}: gross {gross} less fee {fee} is not net {net} {currency}")
        customer = paypal_customer_for(self.tenant, payer_id=payer.get("payer_id", ""),
                                       email=payer.get("email_address", ""))
        invoice = self.visma_invoice_paid_by(capture, currency=currency)
        if invoice is not None:
            customer = invoice["customer"]
        if not customer:
            customer = UNMAPPED_PAYER + (payer.get("payer_id") or payer.get("email_address") or "unknown")
        group = "" if is_unresolved_customer(customer) else self.mirror.customer_class(customer)
        # The customer rides in the texts too: a journal line has no customer field in Visma.
        party = f" · customer {customer}"
        day = _day(self.tenant, capture.get("create_time"))
        settlement = self.settlement(capture_id, breakdown, currency=currency, gross=gross, fee=fee, net=net, day=day)
        lines = [PostingLine(role="clearing", debit=net, description=f"PayPal {capture_id} net{party}")]
        if fee:
            lines.append(PostingLine(role="fee", debit=fee, description=f"PayPal {capture_id} fee{party}"))
        lines.append(PostingLine(role="account", credit=gross, description=f"PayPal {capture_id}{party}"))
        posted_in = currency
        if settlement is not None and invoice is None:
            # A journal in the currency PayPal credited: clearing by the receivable amount, the sale at Visma's rate.
            posted_in = settlement.currency
            lines = [PostingLine(role="clearing", debit=settlement.net, description=f"PayPal {capture_id} net{party}"),
                     *settlement.lines(f"PayPal {capture_id}{party}"),
                     PostingLine(role="account", credit=settlement.gross, description=f"PayPal {capture_id}{party}")]
        elif settlement is not None:
            # A customer payment of the gross in the invoice's currency; fee and exchange difference in a journal
            # of the credited currency (connectors/visma/postings.py _settlement_journal).
            lines = [PostingLine(role="clearing", debit=gross, description=f"PayPal {capture_id}{party}"),
                     PostingLine(role="fee", description=f"PayPal {capture_id} fee{party}"),
                     PostingLine(role="exchange_difference", description=f"PayPal {capture_id} exchange difference"),
                     PostingLine(role="account", credit=gross, description=f"PayPal {capture_id}{party}")]
        posting = Posting(
            # A payment of a known Visma invoice is always a customer payment applied to it: a journal would credit
            # revenue or the receivable control account and leave the invoice open.
            document="customer_payment" if invoice else "journal", marker=self.marker(source.source_id),
            currency=posted_in, date=day,
            description=f"PayPal capture {capture_id}" + (f" for invoice {invoice['number']}" if invoice else "")
            + party,
            facts=MatchFacts(transaction_type="invoice_payment" if invoice else "capture", amount=gross,
                             currency=currency, customer_group=group,
                             customer="" if is_unresolved_customer(customer) else customer,
                             payer=payer.get("payer_id") or payer.get("email_address", "")),
            lines=lines, customer=customer,
            extra={"paypal_id": capture_id, "payer_id": payer.get("payer_id", ""), "gross": str(gross),
                   "fee": str(fee), "net": str(net),
                   **({"settlement": settlement.to_json()} if settlement else {}),
                   **({"invoice_number": invoice["number"], "invoice_reference": invoice["reference"]}
                      if invoice else {})},
        )
        return posting

    def settlement(self, capture_id: str, breakdown: Mapping, *, currency: str, gross: Decimal, fee: Decimal,
                   net: Decimal, day: date) -> Settlement | None:
        """What PayPal credited when it converted the capture (seller_receivable_breakdown `receivable_amount`,
        `exchange_rate`, `paypal_fee_in_receivable_currency`: payments_payment_v2.json), valued at Visma's rate;
        None when it credited the capture's own currency."""
        receivable = breakdown.get("receivable_amount")
        if not receivable or receivable.get("currency_code") == currency:
            return None
        credited_in = str(receivable.get("currency_code") or "")
        received = paypal_amount(receivable, currency=credited_in, field="receivable_amount")
        exchange = breakdown.get("exchange_rate") or {}
        if (exchange.get("source_currency"), exchange.get("target_currency")) != (currency, credited_in):
            raise SourceDataError(f"capture {capture_id}: exchange_rate is {exchange.get('source_currency')}→"
                                  f"{exchange.get('target_currency')}, the capture {currency}→{credited_in}")
        rate = to_decimal(exchange.get("value"), field="exchange_rate.value")
        if rate <= 0 or not converted_within_rounding(amount=net, converted=received, rate=rate,
                                                      currency=credited_in):
            raise SourceDataError(f"capture {capture_id}: receivable_amount {received} {credited_in} is not net "
                                  f"{net} {currency} × exchange_rate {rate}")
        fee_credited = breakdown.get("paypal_fee_in_receivable_currency")
        fee_converted = paypal_amount(fee_credited, currency=credited_in, field="paypal_fee_in_receivable_currency") \
            if fee_credited else quantize(fee * rate, credited_in)
        visma_rate = visma_exchange_rate(self.visma_client, from_currency=currency, to_currency=credited_in, day=day)
        return settlement_valued(transaction_gross=gross, transaction_currency=currency, currency=credited_in,
                                 net=received, fee=fee_converted, exchange_rate=rate, visma_rate=visma_rate)

    def visma_invoice_paid_by(self, capture: Mapping, *, currency: str) -> dict | None:
        """The Visma invoice this capture pays, by its invoice_id or custom_id, or None.

        A PayPal invoice this integration syncs is known locally (its record's target id); the capture waits while
        that invoice is on its way to Visma, or not yet read at all. Any other reference (a webshop order) is looked
        up in Visma by externalReference.
        """
        references = list(dict.fromkeys(str(capture.get(key)) for key in ("invoice_id", "custom_id")
                                        if capture.get(key)))
        for reference in references:
            # Only PayPal's own invoices have records of the invoices stream (a webshop's reference has none).
            record = record_of(self.integration, "invoices", reference) if PAYPAL_INVOICE_ID.match(reference) \
                else None
            if record is None:
                continue
            if record.status == RecordStatus.POSTED:
                return {"number": record.target_id, "customer": record_posting(record).customer,
                        "reference": reference}
            if record.status != RecordStatus.REJECTED:
                raise WaitFor(f"PayPal invoice {reference} is not in Visma yet ({record.status})",
                              on=("invoices", reference))
        paid_at = paypal_time(capture.get("create_time"))
        for reference in references:
            found = self.visma_invoice_by_reference(reference, paid_at=paid_at)
            if found is not None:
                if found["currency"] and found["currency"] != currency:
                    raise SourceDataError(f"capture in {currency} cannot settle Visma invoice {found['number']} in "
                                          f"{found['currency']}")
                return {**found, "reference": reference}
        for reference in references:
            if PAYPAL_INVOICE_ID.match(reference):
                # The invoices stream has not read it yet (its poll runs apart): the payment must not go without it.
                raise WaitFor(f"PayPal invoice {reference} has not reached Visma yet", on=("invoices", reference))
        return None

    def visma_invoice_by_reference(self, reference: str, *, paid_at: datetime | None = None) -> dict | None:
        """The Visma customer invoice whose externalReference is `reference`, from the invoice mirror (read again
        when it is older than a minute or than the payment): number, customer, currency; None when Visma has none.
        One that cannot be paid (not released yet, already paid, voided) is not settled by a second payment."""
        found = customer_invoice_by_reference(self.tenant, reference, client=self.visma_client, paid_at=paid_at)
        if found is None:
            return None
        if not found.payable:
            raise SourceDataError(f"Visma invoice {found.number} (reference {reference}) is {found.status}: a "
                                  "payment cannot be applied to it; check whether it was paid already")
        return {"number": found.number, "customer": found.customer, "currency": found.currency}


# --- refunds and reversals ------------------------------------------------------------------------------------


class RefundSource(PayPalSource):
    """PayPal refunds → the reversal of the refunded part of their capture, posted only after the capture: a credit
    note and customer refund when the capture paid a Visma invoice (a customer payment), else a journal."""

    name = "refunds"
    target_kind = "journal"
    transaction_type = "refund"
    event_codes = REFUND_CODES
    # The role of the money that went back: the receivable or revenue for a refund, the disputes account for money
    # PayPal took back (a reversal, a chargeback) until the case is settled.
    money_role = "account"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        codes = self.event_codes

        def wanted(info: Mapping) -> bool:
            return info.get("transaction_event_code") in codes and info.get("transaction_status") == "S"

        def fetch(paypal: PayPalClient, row: Mapping, refund_id: str) -> SourceObject | None:
            refund = paypal.refund_get(refund_id)
            if refund is None:
                return None
            reference = str(row["transaction_info"].get("paypal_reference_id") or "")
            return self.source_object(refund, capture_id=link_target_id(refund, "up") or reference)

        return self._window_read(start, end, wanted, fetch)

    def read_one(self, source_id: str) -> SourceObject | None:
        with self.paypal() as paypal:
            refund = paypal.refund_get(source_id)
        if refund is None:
            return None
        return self.source_object(refund, capture_id=link_target_id(refund, "up"))

    @staticmethod
    def source_object(refund: dict, *, capture_id: str) -> SourceObject:
        return _money_object(refund, {"refund": refund, "capture_id": capture_id})

    def transform(self, source: SourceObject) -> Posting:
        refund = source.payload.get("refund") or {}
        refund_id = str(refund.get("id") or source.source_id)
        capture_id = str(source.payload.get("capture_id") or "")
        status = str(refund.get("status") or "")
        if status == "PENDING":
            raise WaitFor(f"{self.transaction_type} {refund_id} is pending at PayPal")
        if status != "COMPLETED":
            raise SourceDataError(f"{self.transaction_type} {refund_id} is {status or 'without status'}: "
                                  "no money went back")
        if not capture_id:
            raise SourceDataError(f"{self.transaction_type} {refund_id} names no capture (no 'up' link)")
        capture_record = record_of(self.integration, "captures", capture_id)
        if capture_record is not None and capture_record.status == RecordStatus.REJECTED:
            raise SourceDataError(f"capture {capture_id} was rejected, so {self.transaction_type} {refund_id} has "
                                  "nothing to reverse in Visma: reject it too, or book it by hand")
        if capture_record is None or capture_record.status != RecordStatus.POSTED:
            state = capture_record.status if capture_record else "not received yet"
            raise WaitFor(f"capture {capture_id} is not posted yet ({state}); {self.transaction_type} {refund_id} "
                          "is posted after it", on=("captures", capture_id))
        capture_posting = record_posting(capture_record)
        if capture_posting.extra.get("settlement"):
            raise SourceDataError(f"{self.transaction_type} {refund_id} returns part of capture {capture_id}, which "
                                  "PayPal converted: a converted refund is not booked automatically yet")
        currency = str((refund.get("amount") or {}).get("currency_code") or "")
        if currency != capture_posting.currency:
            raise SourceDataError(f"{self.transaction_type} {refund_id} is in {currency}, its capture "
                                  f"{capture_id} in {capture_posting.currency}")
        breakdown = refund.get("seller_payable_breakdown") or {}
        gross = paypal_amount(breakdown.get("gross_amount") or refund.get("amount"), currency=currency,
                              field="gross_amount")
        fee = paypal_amount(breakdown.get("paypal_fee"), currency=currency, field="paypal_fee")
        for index, platform_fee in enumerate(breakdown.get("platform_fees") or []):
            fee += paypal_amount(platform_fee.get("amount"), currency=currency, field=f"platform_fees[{index}]")
        net = paypal_amount(breakdown.get("net_amount"), currency=currency, field="net_amount") \
            if breakdown.get("net_amount") else gross - fee
        captured = Decimal(capture_posting.extra.get("gross") or capture_posting.facts.amount)
        refunded_to_date = paypal_amount(breakdown.get("total_refunded_amount"), currency=currency,
                                         field="total_refunded_amount") if breakdown.get("total_refunded_amount") \
            else gross
        if gross <= 0 or net != gross - fee or refunded_to_date > captured or gross > captured:
            raise SourceDataError(
                f"{self.transaction_type} {refund_id}: {gross} {currency} (fee back {fee}, net {net}, "
                f"{refunded_to_date} refunded to date) does not fit capture {capture_id} of {captured} {currency}"
            )
        party = f" · customer {capture_posting.customer}"
        lines = [PostingLine(role=self.money_role, debit=gross,
                             description=f"PayPal {self.transaction_type} {refund_id}{party}")]
        if fee:
            lines.append(PostingLine(role="fee", credit=fee, description=f"PayPal {refund_id} fee returned{party}"))
        lines.append(PostingLine(role="clearing", credit=net, description=f"PayPal {refund_id} net{party}"))
        posting = Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency,
            date=_day(self.tenant, refund.get("create_time"), capture_posting.date),
            description=f"PayPal {self.transaction_type} {refund_id} of capture {capture_id}{party}",
            facts=MatchFacts(transaction_type=self.transaction_type, amount=gross, currency=currency,
                             customer_group=capture_posting.facts.customer_group,
                             customer=capture_posting.facts.customer, payer=capture_posting.facts.payer),
            lines=lines, customer=capture_posting.customer,
            extra={"paypal_id": refund_id, "capture_id": capture_id, "capture_target_id": capture_record.target_id,
                   "gross": str(gross), "fee": str(fee), "net": str(net)},
        )
        if self.money_role == "account" and capture_posting.document == "customer_payment" \
                and capture_posting.extra.get("invoice_number"):
            self._as_credit_note(posting, str(capture_posting.extra["invoice_number"]), refund_id)
        return posting

    def _as_credit_note(self, posting: Posting, invoice_number: str, refund_id: str) -> None:
        """A refund of a capture that paid a Visma invoice: a credit note for the refunded share of that invoice and a
        customer refund paying it out of clearing (the fee returned to the fee account), never a journal."""
        invoice = self.visma_client.get_one(f"{CUSTOMER_INVOICES}/{quote(invoice_number, safe='')}")
        if invoice is None:
            raise SourceDataError(f"refund {refund_id}: Visma has no customer invoice {invoice_number}")
        try:
            credited = visma_credit_note_lines(invoice, posting.facts.amount,
                                               base_currency=tenant_base_currency(self.tenant, client=self.visma_client))
        except VismaDocumentError as exc:
            raise SourceDataError(f"refund {refund_id}: {exc}") from exc
        posting.document = CREDIT_NOTE
        posting.description = f"PayPal refund {refund_id} for invoice {invoice_number} · customer {posting.customer}"
        posting.extra.update(invoice_number=invoice_number,
                             lines=[{**line, "amount": str(line["amount"])} for line in credited])


class ReversalSource(RefundSource):
    """Money PayPal took back (T1106 a reversal, T1201 a chargeback): out of clearing into the disputes account (a fee
    PayPal returned to the fee account), matched by its own rules; never a credit note, as nothing was sold back."""

    name = "reversals"
    transaction_type = "reversal"
    event_codes = REVERSAL_CODES
    money_role = "disputes"


# --- disputes -------------------------------------------------------------------------------------------------


class DisputeNotesSource(PayPalSource):
    """A PayPal dispute (CUSTOMER.DISPUTE.* webhooks) → a note on the Visma invoice its disputed capture paid, one per
    status it reaches; one about a capture that paid no Visma invoice is flagged, so it is seen. The money a dispute
    moves is booked by the reversals and dispute_funds streams from Transaction Search."""

    name = "disputes"
    target_kind = INVOICE_NOTE

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        return iter(())  # webhooks only: the Disputes API list is not among our vendor documents

    def read_one(self, source_id: str) -> SourceObject | None:
        return None

    @staticmethod
    def source_object(dispute: Mapping) -> SourceObject:
        amount = dispute.get("dispute_amount") or {}
        try:
            value = Decimal(str(amount.get("value")))
        except ArithmeticError:
            value = None
        return SourceObject(source_id=f"{dispute.get('dispute_id')}:{dispute.get('status')}",
                            payload={"dispute": dict(dispute)}, updated_at=paypal_time(dispute.get("update_time")),
                            amount=value, currency=str(amount.get("currency_code") or "")[:3])

    def transform(self, source: SourceObject) -> Posting:
        dispute = source.payload.get("dispute") or {}
        dispute_id, status = str(dispute.get("dispute_id") or ""), str(dispute.get("status") or "")
        amount_document = dispute.get("dispute_amount") or {}
        currency = str(amount_document.get("currency_code") or "")
        amount = paypal_amount(amount_document, currency=currency, field="dispute_amount")
        captures = [str(item.get("seller_transaction_id")) for item in dispute.get("disputed_transactions") or []
                    if item.get("seller_transaction_id")]
        if not captures:
            raise SourceDataError(f"PayPal dispute {dispute_id} names no disputed transaction of ours")
        capture_id = captures[0]
        capture_record = record_of(self.integration, "captures", capture_id)
        if capture_record is None or capture_record.status != RecordStatus.POSTED:
            raise WaitFor(f"PayPal dispute {dispute_id} waits for its capture {capture_id} to be posted",
                          on=("captures", capture_id))
        capture_posting = record_posting(capture_record)
        outcome = (dispute.get("dispute_outcome") or {}).get("outcome_code")
        text = f"PayPal dispute {dispute_id} of {amount} {currency} ({dispute.get('reason') or 'no reason given'}), " \
               f"capture {capture_id}: {status}" + (f", {outcome}" if outcome else "")
        invoice_number = capture_posting.extra.get("invoice_number")
        if not invoice_number:
            raise SourceDataError(f"{text}. The capture paid no Visma invoice, so there is nothing to note on; the "
                                  "money the dispute holds or takes is booked from Transaction Search")
        return Posting(
            document=INVOICE_NOTE, marker=self.marker(source.source_id), currency=currency,
            date=_day(self.tenant, dispute.get("update_time") or dispute.get("create_time")),
            description=text, facts=MatchFacts(transaction_type="dispute", amount=amount, currency=currency),
            customer=capture_posting.customer, extra={"invoice_number": invoice_number, "paypal_id": dispute_id},
        )


def paypal_dispute_take(integration, dispute: Mapping) -> None:
    """A dispute from a verified CUSTOMER.DISPUTE.* webhook, recorded and taken as far as it goes."""
    if not dispute.get("dispute_id") or not dispute.get("status"):
        raise ValueError("the dispute event's resource has no dispute_id or status")
    stream = STREAMS[DisputeNotesSource.name](integration)
    source_take(integration, stream, stream.source_object(dispute))


# --- transactions no stream takes -----------------------------------------------------------------------------


def paypal_code_handled(code: str) -> bool:
    """Whether a stream takes transactions of this event code: payments received (T00nn), refunds, reversals."""
    return code.startswith(PAYMENT_CODE_PREFIX) or code in REFUND_CODES or code in REVERSAL_CODES \
        or code in DISPUTE_FUNDS_CODES


def _row_source(row: Mapping, transaction_id: str) -> SourceObject:
    """A Transaction Search row as the source object itself (for transactions PayPal has no REST object for)."""
    info = row["transaction_info"]
    amount = info.get("transaction_amount") or {}
    try:
        value = Decimal(str(amount.get("value")))
    except ArithmeticError:
        value = None
    return SourceObject(source_id=transaction_id, payload={"transaction": dict(row)},
                        updated_at=paypal_time(info.get("transaction_updated_date")), amount=value,
                        currency=str(amount.get("currency_code") or "")[:3])


class DisputeFundsSource(PayPalSource):
    """Money a dispute holds and gives back (T1110, T1111, T1202) → a journal between PayPal clearing and the disputes
    account: a hold moves the amount out of clearing, a release or a won chargeback moves it back."""

    name = "dispute_funds"
    target_kind = "journal"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        def wanted(info: Mapping) -> bool:
            return info.get("transaction_event_code") in DISPUTE_FUNDS_CODES and info.get("transaction_status") == "S"

        return self._window_read(start, end, wanted, lambda paypal, row, transaction_id: _row_source(
            row, transaction_id))

    def read_one(self, source_id: str) -> SourceObject | None:
        return None  # no webhook names these rows; the poll reads them

    def transform(self, source: SourceObject) -> Posting:
        info = (source.payload.get("transaction") or {}).get("transaction_info") or {}
        code = str(info.get("transaction_event_code") or "")
        amount_document = info.get("transaction_amount") or {}
        currency = str(amount_document.get("currency_code") or "")
        amount = paypal_amount(amount_document, currency=currency, field="transaction_amount")
        if info.get("fee_amount") and to_decimal(info["fee_amount"].get("value"), field="fee_amount"):
            raise SourceDataError(f"PayPal {code} {source.source_id} carries a fee of {info['fee_amount'].get('value')}"
                                  f" {currency}: not expected on a dispute's hold or return; book it by hand")
        if not amount:
            raise SourceDataError(f"PayPal {code} {source.source_id} moves no money")
        capture_id = str(info.get("paypal_reference_id") or "")
        capture_record = record_of(self.integration, "captures", capture_id) if capture_id else None
        customer = record_posting(capture_record).customer \
            if capture_record is not None and capture_record.status == RecordStatus.POSTED else ""
        party = f" · customer {customer}" if customer and not is_unresolved_customer(customer) else ""
        held = amount < 0
        what = {"T1110": "held for a dispute", "T1111": "released from a dispute hold",
                "T1202": "returned: chargeback reversed"}.get(code, code)
        about = f"PayPal {code} {source.source_id} (capture {capture_id or 'unknown'}){party}"
        lines = [PostingLine(role="disputes", debit=-amount if held else Decimal(0),
                             credit=Decimal(0) if held else amount, description=about),
                 PostingLine(role="clearing", debit=Decimal(0) if held else amount,
                             credit=-amount if held else Decimal(0), description=about)]
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency,
            date=_day(self.tenant, info.get("transaction_initiation_date")),
            description=f"PayPal {abs(amount)} {currency} {what}, capture {capture_id or 'unknown'}{party}",
            facts=MatchFacts(transaction_type="dispute", amount=abs(amount), currency=currency,
                             customer_group="" if not party else self.mirror.customer_class(customer)),
            lines=lines, customer=customer if party else "",
            extra={"paypal_id": source.source_id, "event_code": code, "capture_id": capture_id},
        )


class UnhandledSource(PayPalSource):
    """Transaction Search rows whose event code no stream takes (a chargeback fee T0106, a hold T1110, a withdrawal
    T0400...): each recorded with its code and flagged for finance, never skipped. Read from the search row itself
    (most have no REST object)."""

    name = "unhandled"
    target_kind = "none"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        def wanted(info: Mapping) -> bool:
            return not paypal_code_handled(str(info.get("transaction_event_code") or ""))

        return self._window_read(start, end, wanted, lambda paypal, row, transaction_id: _row_source(
            row, transaction_id))

    def read_one(self, source_id: str) -> SourceObject | None:
        return None  # no webhook names these; the poll reads them

    def transform(self, source: SourceObject) -> Posting:
        info = (source.payload.get("transaction") or {}).get("transaction_info") or {}
        amount = info.get("transaction_amount") or {}
        refers = f", referring to {info['paypal_reference_id']}" if info.get("paypal_reference_id") else ""
        raise SourceDataError(
            f"PayPal transaction {source.source_id} with event code {info.get('transaction_event_code')} "
            f"({amount.get('value')} {amount.get('currency_code')}{refers}) is not handled by this integration: book "
            "it by hand, then reject this record")

    def map(self, posting: Posting) -> MappingOutcome:
        return MappingOutcome(posting, None, [])

    def problems(self, posting: Posting) -> list[str]:
        return []

    def find_posted(self, posting: Posting, record) -> None:
        return None

    def write(self, posting: Posting, record):
        raise SourceDataError(f"PayPal transaction {record.source_id} is not handled: nothing is written")


# --- invoices -------------------------------------------------------------------------------------------------


class InvoiceSource(PayPalSource):
    """PayPal invoices (sent, so owed) → Visma customer invoices whose externalReference is the PayPal invoice id."""

    name = "invoices"
    target_kind = "customer_invoice"
    # An invoice is found by when it was created; one sent days later must still be inside the next windows.
    overlap = timedelta(days=14)

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        with self.paypal() as paypal:
            for invoices in _batches(paypal.invoices_created(start, end)):
                final = self._final_payloads([str(invoice.get("id")) for invoice in invoices])
                for invoice in invoices:
                    if str(invoice.get("id")) in final:
                        yield self._as_stored(final[str(invoice["id"])])
                    elif invoice.get("status") not in INVOICE_NOT_SENT:
                        if "items" not in invoice:
                            # A search row carries items only when `fields` asked for them: read the invoice whole.
                            invoice = paypal.invoice_get(str(invoice["id"]))
                            if invoice is None:
                                continue
                        yield self.source_object(invoice)

    def read_one(self, source_id: str) -> SourceObject | None:
        with self.paypal() as paypal:
            invoice = paypal.invoice_get(source_id)
        if invoice is None or invoice.get("status") in INVOICE_NOT_SENT:
            return None
        return self.source_object(invoice)

    @staticmethod
    def source_object(invoice: dict) -> SourceObject:
        amount = invoice.get("amount") or {}
        try:
            value = Decimal(str(amount.get("value")))
        except ArithmeticError:
            value = None
        metadata = (invoice.get("detail") or {}).get("metadata") or {}
        return SourceObject(
            source_id=str(invoice["id"]), payload={"invoice": invoice},
            updated_at=paypal_time(metadata.get("last_update_time")), amount=value,
            currency=str(amount.get("currency_code") or (invoice.get("detail") or {}).get("currency_code") or "")[:3],
        )

    def transform(self, source: SourceObject) -> Posting:
        invoice = source.payload.get("invoice") or {}
        invoice_id = str(invoice.get("id") or source.source_id)
        status = str(invoice.get("status") or "")
        if status in INVOICE_NOT_SENT:
            raise WaitFor(f"PayPal invoice {invoice_id} is {status}: not owed until it is sent")
        if status in ("CANCELLED",):
            raise SourceDataError(f"PayPal invoice {invoice_id} was cancelled before it reached Visma: reject it")
        detail = invoice.get("detail") or {}
        currency = str(detail.get("currency_code") or (invoice.get("amount") or {}).get("currency_code") or "")
        if "items" not in invoice:
            raise SourceDataError(f"PayPal invoice {invoice_id} was read without its items (a search result without "
                                  "fields=items): replay it to read the invoice whole")
        document_lines, lines = [], []
        net_by_code: dict[str, Decimal] = {}
        for index, item in enumerate(invoice.get("items") or []):
            vat_code = self._vat_code(invoice_id, item.get("tax"), where=f"line {index + 1}")
            quantity = to_decimal(item.get("quantity") or "1", field=f"items[{index}].quantity")
            unit_price = paypal_amount(item.get("unit_amount"), currency=currency, field=f"items[{index}].unit_amount")
            discount = paypal_amount((item.get("discount") or {}).get("amount"), currency=currency,
                                     field=f"items[{index}].discount")
            amount = quantity * unit_price - discount
            if not is_exact(amount, currency):
                raise MoneyError(f"items[{index}]: {quantity} × {unit_price} less {discount} is not a whole "
                                 f"amount of {currency}")
            description = str(item.get("name") or f"Line {index + 1}")[:255]
            # A discounted line goes as its total, so Visma does not recompute it from the unit price.
            document_lines.append({"description": description, "quantity": str(quantity),
                                   **({"amount": str(amount)} if discount else {"unit_price": str(unit_price)}),
                                   **({"vat_code": vat_code} if vat_code else {})})
            lines.append(PostingLine(role="account", credit=amount, description=description))
            if vat_code:
                net_by_code[vat_code] = net_by_code.get(vat_code, Decimal(0)) + amount
        breakdown = (invoice.get("amount") or {}).get("breakdown") or {}
        shipping = breakdown.get("shipping") or {}
        custom = breakdown.get("custom") or {}
        for label, value, tax in (("Shipping", shipping.get("amount"), shipping.get("tax")),
                                  (custom.get("label") or "Other", custom.get("amount"), None)):
            extra_amount = paypal_amount(value, currency=currency, field=label)
            if extra_amount:
                vat_code = self._vat_code(invoice_id, tax, where=label.lower())
                document_lines.append({"description": label, "quantity": "1", "unit_price": str(extra_amount),
                                       **({"vat_code": vat_code} if vat_code else {})})
                lines.append(PostingLine(role="account", credit=extra_amount, description=label))
                if vat_code:
                    net_by_code[vat_code] = net_by_code.get(vat_code, Decimal(0)) + extra_amount
        if not lines:
            raise SourceDataError(f"PayPal invoice {invoice_id} has no items")
        net = sum((line.credit for line in lines), Decimal("0"))
        invoice_discount = (breakdown.get("discount") or {}).get("invoice_discount") or {}
        if invoice_discount.get("amount") or invoice_discount.get("percent"):
            raise SourceDataError(f"PayPal invoice {invoice_id} has an invoice-level discount; give discounts per "
                                  "line")
        invoice_date = date.fromisoformat(detail["invoice_date"]) if detail.get("invoice_date") else \
            timezone.now().date()
        vat = visma_vat_of_lines(self.visma_client, net_by_code, currency, invoice_date,
                                 what=f"PayPal invoice {invoice_id}")
        total = net + vat
        stated = paypal_amount(invoice.get("amount"), currency=currency, field="amount") if \
            (invoice.get("amount") or {}).get("value") is not None else total
        if stated != total and not net_by_code:
            raise SourceDataError(f"PayPal invoice {invoice_id}: lines add up to {total}, the invoice says "
                                  f"{stated} {currency}")
        if stated != total:
            raise SourceDataError(f"PayPal invoice {invoice_id}: Visma would total {total} {currency} (lines {net} + "
                                  f"VAT {vat} by VAT code), PayPal's invoice total is {stated} {currency}: not written, "
                                  "the totals would differ")
        recipient = ((invoice.get("primary_recipients") or [{}])[0].get("billing_info") or {})
        email = str(recipient.get("email_address") or "")
        customer = paypal_customer_for(self.tenant, email=email) or UNMAPPED_RECIPIENT + (email or "without email")
        group = "" if is_unresolved_customer(customer) else self.mirror.customer_class(customer)
        # PayPal's invoice_date is already a date (the merchant's); without one, today where the tenant books.
        invoice_date = date.fromisoformat(detail["invoice_date"]) if detail.get("invoice_date") else \
            tenant_date(self.tenant, None)
        due = (detail.get("payment_term") or {}).get("due_date")
        return Posting(
            document="customer_invoice", marker=self.marker(source.source_id), currency=currency, date=invoice_date,
            description=f"PayPal invoice {detail.get('invoice_number') or invoice_id}",
            facts=MatchFacts(transaction_type="invoice", amount=stated, currency=currency, customer_group=group,
                             customer="" if is_unresolved_customer(customer) else customer, payer=email),
            lines=lines, customer=customer,
            extra={"external_reference": invoice_id, "customer_ref": invoice_id, "paypal_id": invoice_id,
                   "paypal_invoice_number": str(detail.get("invoice_number") or ""), "lines": document_lines,
                   "due_date": due or "", "note": str(detail.get("note") or "")[:500], "net": str(net),
                   "vat": str(vat)},
        )

    def _vat_code(self, invoice_id: str, tax: Mapping | None, *, where: str) -> str | None:
        """The Visma VAT code mapped to a PayPal tax (name and percent: invoicing_v2.json `tax`), None for no tax."""
        tax = tax or {}
        if tax.get("percent") in (None, "") and not (tax.get("amount") or {}).get("value"):
            return None
        percent = to_decimal(tax.get("percent") or "0", field=f"{where} tax percent")
        name = str(tax.get("name") or "")
        vat_code = vat_code_for(self.tenant, system="paypal", tax_name=name, percent=percent)
        if not vat_code:
            raise SourceDataError(f"PayPal invoice {invoice_id} {where}: tax {name or 'without a name'} {percent} % has "
                                  "no Visma VAT code mapped (admin: VAT code mappings)")
        return vat_code


# --- the streams: PayPal read, Visma written ----------------------------------------------------------------------


class PayPalToVisma(VismaTarget):
    """The Visma side shared by the PayPal streams: an unmapped payer is flagged without asking Visma about it."""

    def live_check(self) -> LiveCheck:
        visma_has = super().live_check()

        def check(kind: str, key: str) -> bool:
            if kind == "customer" and is_unresolved_customer(key):
                return False
            return visma_has(kind, key)

        return check


class CapturesStream(PayPalToVisma, CaptureSource):
    """PayPal captures → Visma journals (gross, fee, net) or customer payments of the invoices they pay."""


class RefundsStream(PayPalToVisma, RefundSource):
    """PayPal refunds → Visma journals reversing the refunded part of the capture."""


class ReversalsStream(PayPalToVisma, ReversalSource):
    """PayPal reversals and chargebacks → Visma journals reversing the capture's part taken back."""


class DisputeFundsStream(PayPalToVisma, DisputeFundsSource):
    """PayPal dispute holds, releases and chargeback reversals → Visma journals between clearing and disputes."""


class DisputesStream(PayPalToVisma, DisputeNotesSource):
    """PayPal disputes → notes on the Visma invoice the disputed capture paid."""


class InvoicesStream(PayPalToVisma, InvoiceSource):
    """PayPal invoices → Visma customer invoices (externalReference: the PayPal invoice id)."""


# Invoices first: `sync` and a backfill run the streams in this order, and a capture may wait for its invoice.
STREAMS: dict[str, type[Stream]] = {
    stream.name: stream for stream in (InvoicesStream, CapturesStream, RefundsStream, ReversalsStream,
                                       DisputeFundsStream, DisputesStream, UnhandledSource)
}
