"""Stripe ↔ Visma streams. Stripe → Visma: charges that pay Visma invoices become customer payments applied to them
(the Stripe fee in its own journal), their refunds credit notes paid out by customer refunds, failed charges and
disputes notes on the Visma invoice (If-Match), the money a dispute takes and returns journals to and from the
disputes account, money events no stream takes flagged records; each object is re-read from the API, and Stripe's
/v1/events list is the poll fallback for missed webhooks. Visma → Stripe: released Visma invoices marked for Stripe
collection become sent Stripe invoices; one changed in Visma after it was sent is flagged, never re-sent."""
from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property
from urllib.parse import quote

import stripe

from audit.models import RecordStatus
from audit.selectors import record_of
from connectors.pipeline import Written
from connectors.dates import tenant_date
from connectors.errors import PermanentError, WaitFor
from connectors.pipeline import SourceDataError, SourceObject, Stream
from connectors.visma.invoices import VismaInvoiceFigures, visma_invoice_figures
from connectors.visma.currency import Settlement, converted_within_rounding, settlement_valued, visma_exchange_rate
from connectors.visma.postings import CUSTOMER_INVOICES, VismaDocumentError, visma_credit_note_lines
from connectors.visma.reference import visma_vat_rate_read
from connectors.visma.target import CREDIT_NOTE, INVOICE_NOTE, VismaTarget
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.money import MoneyError, minor_units, to_decimal
from mappings.reference import tenant_base_currency
from mappings.services import MappingOutcome

from .client import StripeApi, stripe_search_text
from .currencies import stripe_amount, stripe_minor, stripe_minor_units
from .webhooks import stripe_event_objects

SYSTEM = "stripe"
# Where a Stripe object names the Visma invoice and customer it is about.
VISMA_INVOICE_KEY = "visma_invoice"
VISMA_CUSTOMER_KEY = "visma_customer"
# Where a Stripe TaxRate names the Visma VAT code it stands for.
VISMA_VAT_CODE_KEY = "visma_vat_code"
# Stands in for the invoice when one payment intent pays several Stripe invoices.
SEVERAL_INVOICES = "several_invoices"


def _moment(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(int(unix), tz=UTC) if unix else None


def _day(tenant, unix: int | None) -> date:
    """The booking date of a Stripe timestamp: its date in the tenant's time zone (today there when none)."""
    return tenant_date(tenant, _moment(unix))


class StripeSource(Stream):
    """What the Stripe streams share: the client, the events poll, and the Visma invoice an object is about."""

    kind = SYSTEM
    # Stripe keeps events 30 days; a poll re-reads half an hour before its cursor (events may be listed late).
    max_window = timedelta(days=30)
    overlap = timedelta(minutes=30)
    initial_lookback = timedelta(days=3)
    default_poll_minutes = 15
    event_types: tuple[str, ...] = ()

    @cached_property
    def stripe(self) -> StripeApi:
        api = StripeApi(self.integration.partner_connection)
        weakref.finalize(self, api.close)
        return api

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        """The poll fallback: the objects named by this stream's events created in [start, end), each re-read."""
        seen: set[str] = set()
        for event in self.stripe.events(since=start, types=list(self.event_types)):
            if event.created >= end.timestamp():
                continue
            for stream, object_id in stripe_event_objects(event.to_dict()):
                if stream != self.name or object_id in seen:
                    continue
                seen.add(object_id)
                source = self.read_one(object_id)
                if source is not None:
                    yield source

    def visma_invoice(self, references: list[Mapping], *, currency: str, what: str) -> dict:
        """The Visma invoice named in the metadata of `references` (charge, then its Stripe invoice): number, customer
        and currency, checked against Visma; SourceDataError when none is named, Visma lacks it or currencies differ."""
        several = next((ref for ref in references if ref.get(SEVERAL_INVOICES)), None)
        if several is not None:
            raise SourceDataError(f"{what}: its payment intent {several['payment_intent']} pays several Stripe invoices "
                                  f"({', '.join(several[SEVERAL_INVOICES])}); which Visma invoice it settles needs a "
                                  "person")
        number = next((str(ref["metadata"][VISMA_INVOICE_KEY]) for ref in references
                       if (ref.get("metadata") or {}).get(VISMA_INVOICE_KEY)), "")
        if not number:
            raise SourceDataError(f"{what} names no Visma invoice (metadata {VISMA_INVOICE_KEY})")
        invoice = self.visma_client.get_one(f"{CUSTOMER_INVOICES}/{quote(number, safe='')}")
        if invoice is None:
            raise SourceDataError(f"{what}: Visma has no customer invoice {number}")
        visma_currency = str(invoice.get("currencyId") or "").upper()
        if visma_currency and visma_currency != currency.upper():
            raise SourceDataError(f"{what} is in {currency.upper()}; Visma invoice {number} is in {visma_currency}")
        customer = str((invoice.get("customer") or {}).get("number") or "")
        named = next((str(ref["metadata"][VISMA_CUSTOMER_KEY]) for ref in references
                      if (ref.get("metadata") or {}).get(VISMA_CUSTOMER_KEY)), "")
        if named and customer and named != customer:
            raise SourceDataError(f"{what} names customer {named}; Visma invoice {number} is customer {customer}")
        return {"number": number, "customer": customer or named, "currency": visma_currency or currency.upper(),
                "document": invoice}

    def _charge_with_invoice(self, charge_id: str) -> tuple[dict, dict | None]:
        """The charge (numbers as Decimal) and the Stripe invoice it paid, or None.

        In the pinned API version a charge does not name its invoice (`Charge.invoice` is gone): the invoice is found
        through the InvoicePayment of the charge's payment intent. A stale `invoice` key on the charge is never read.
        """
        charge = self.stripe.charge_data(charge_id)
        intent = charge.get("payment_intent")
        intent_id = intent.get("id") if isinstance(intent, Mapping) else intent
        if not isinstance(intent_id, str) or not intent_id:
            return charge, None
        invoice_ids = list(dict.fromkeys(
            str(payment["invoice"]["id"] if isinstance(payment.get("invoice"), Mapping) else payment["invoice"])
            for payment in self.stripe.invoice_payments_of(intent_id) if payment.get("invoice")))
        if len(invoice_ids) > 1:
            # Flagged by visma_invoice when the record is transformed: which Visma invoice it settles needs a person.
            return charge, {SEVERAL_INVOICES: invoice_ids, "payment_intent": intent_id}
        invoice = self.stripe.invoice(invoice_ids[0]).to_dict() if invoice_ids else None
        return charge, invoice


class StripeToVisma(VismaTarget):
    """The Visma side of the Stripe streams: customer payments, journals, and notes on the invoice they pay."""


class ChargesStream(StripeToVisma, StripeSource):
    """Stripe charges → a customer payment applied to the Visma invoice they pay (fee to its own account), or, for a
    failed charge, a note on that invoice."""

    name = "charges"
    target_kind = "customer_payment"
    event_types = ("charge.succeeded", "charge.failed")

    def read_one(self, source_id: str) -> SourceObject | None:
        charge, invoice = self._charge_with_invoice(source_id)
        return SourceObject(source_id=charge["id"], payload={"charge": charge, "invoice": invoice},
                            updated_at=_moment(charge.get("created")),
                            amount=stripe_amount(charge.get("amount"), charge["currency"], field="amount"),
                            currency=str(charge["currency"]).upper())

    def transform(self, source: SourceObject) -> Posting:
        charge = source.payload["charge"]
        invoice = source.payload.get("invoice")
        charge_id = charge["id"]
        currency = str(charge.get("currency") or "").upper()
        stripe_minor_units(currency)
        references = [charge, *([invoice] if invoice else [])]
        visma = self.visma_invoice(references, currency=currency, what=f"charge {charge_id}")
        gross = stripe_amount(charge.get("amount"), currency, field="amount")
        if charge.get("status") == "failed":
            reason = charge.get("failure_message") or charge.get("failure_code") or "no reason given"
            return Posting(
                document=INVOICE_NOTE, marker=self.marker(source.source_id),
                currency=currency, date=_day(self.tenant, charge.get("created")),
                description=f"Stripe charge {charge_id} of {gross} {currency} failed on "
                            f"{_day(self.tenant, charge.get('created'))}: "
                            f"{reason} ({charge.get('failure_code') or 'no code'})",
                facts=MatchFacts(transaction_type="payment_failed", amount=gross, currency=currency),
                customer=visma["customer"], extra={"invoice_number": visma["number"], "stripe_id": charge_id},
            )
        if charge.get("status") != "succeeded" or not charge.get("captured", True):
            raise SourceDataError(f"charge {charge_id} is {charge.get('status')}: no money was received")
        balance = charge.get("balance_transaction")
        if not isinstance(balance, Mapping):
            raise SourceDataError(f"charge {charge_id} has no balance transaction (fee and net unknown)")
        settled_in = str(balance.get("currency") or currency).upper()
        fee = stripe_amount(balance.get("fee"), settled_in, field="fee")
        net = stripe_amount(balance.get("net"), settled_in, field="net")
        customer = visma["customer"]
        settlement = None
        if settled_in != currency:
            settlement = self.settlement(charge, balance, gross=gross, fee=fee, net=net)
        elif net != gross - fee:
            raise SourceDataError(f"charge {charge_id}: gross {gross} less fee {fee} is not net {net} {currency}")
        if settlement is None:
            lines = [PostingLine(role="clearing", debit=net,
                                 description=f"Stripe {charge_id} net · customer {customer}")]
            if fee:
                lines.append(PostingLine(role="fee", debit=fee, description=f"Stripe {charge_id} fee"))
        else:
            # The payment moves clearing by the gross at Visma's rate; the fee and the exchange difference leave it
            # in a journal of the settlement currency (connectors/visma/postings.py _settlement_journal).
            lines = [PostingLine(role="clearing", debit=gross, description=f"Stripe {charge_id} · customer {customer}"),
                     PostingLine(role="fee", description=f"Stripe {charge_id} fee"),
                     PostingLine(role="exchange_difference", description=f"Stripe {charge_id} exchange difference")]
        lines.append(PostingLine(role="account", credit=gross,
                                 description=f"Stripe {charge_id} · invoice {visma['number']}"))
        return Posting(
            document="customer_payment", marker=self.marker(source.source_id),
            currency=currency, date=_day(self.tenant, charge.get("created")),
            description=f"Stripe charge {charge_id} for invoice {visma['number']}",
            facts=MatchFacts(transaction_type="invoice_payment", amount=gross, currency=currency,
                             customer_group=self.mirror.customer_class(customer)),
            lines=lines, customer=customer,
            extra={"invoice_number": visma["number"], "stripe_id": charge_id, "gross": str(gross), "fee": str(fee),
                   "net": str(net), **({"settlement": settlement.to_json()} if settlement else {})},
        )

    def settlement(self, charge: Mapping, balance: Mapping, *, gross: Decimal, fee: Decimal,
                   net: Decimal) -> Settlement:
        """A charge Stripe converted into the settlement currency (balance transaction `amount`, `fee`, `net` in it,
        `exchange_rate`: stripe/_balance_transaction.py), valued at Visma's rate on the charge's day."""
        charge_id, currency = charge["id"], str(charge["currency"]).upper()
        settled_in = str(balance["currency"]).upper()
        amount = stripe_amount(balance.get("amount"), settled_in, field="balance_transaction.amount")
        raw_rate = balance.get("exchange_rate")
        if raw_rate is None or isinstance(raw_rate, bool):
            raise SourceDataError(f"charge {charge_id}: settled in {settled_in} without an exchange_rate")
        # A Decimal as read from Stripe's text, or its text once stored; a float is refused (not exact).
        rate = to_decimal(raw_rate, field=f"charge {charge_id} balance_transaction.exchange_rate")
        if net != amount - fee:
            raise SourceDataError(f"charge {charge_id}: amount {amount} less fee {fee} is not net {net} {settled_in}")
        if rate <= 0 or not converted_within_rounding(amount=gross, converted=amount, rate=rate, currency=settled_in):
            raise SourceDataError(f"charge {charge_id}: balance transaction amount {amount} {settled_in} is not "
                                  f"{gross} {currency} × exchange_rate {rate}")
        visma_rate = visma_exchange_rate(self.visma_client, from_currency=currency, to_currency=settled_in,
                                         day=_day(self.tenant, charge.get("created")))
        return settlement_valued(transaction_gross=gross, transaction_currency=currency, currency=settled_in,
                                 net=net, fee=fee, exchange_rate=rate, visma_rate=visma_rate)


class DisputesStream(StripeToVisma, StripeSource):
    """Stripe disputes → a note on the Visma invoice the disputed charge paid, one per dispute status; and a journal
    per balance transaction of the dispute: the amount and dispute fee Stripe took move out of clearing into the
    disputes account (the fee to the fee account), the amount Stripe gave back when the dispute was won moves back."""

    name = "disputes"
    target_kind = INVOICE_NOTE
    event_types = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
                   "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")

    def read_one(self, source_id: str) -> SourceObject | None:
        dispute_id, _, moved_id = source_id.partition(":")
        dispute = self.stripe.dispute(dispute_id).to_dict()
        charge, invoice = self._charge_with_invoice(str(dispute["charge"]))
        if moved_id.startswith("txn_"):
            # One record per balance transaction of the dispute: money withdrawn, money reinstated.
            moved = next((balance for balance in dispute.get("balance_transactions") or []
                          if isinstance(balance, Mapping) and balance.get("id") == moved_id), None)
            if moved is None:
                return None
            return SourceObject(source_id=f"{dispute['id']}:{moved_id}",
                                payload={"dispute": dispute, "charge": charge, "invoice": invoice, "moved": moved},
                                updated_at=_moment(moved.get("created")),
                                amount=stripe_amount(moved.get("amount"), moved["currency"], field="amount"),
                                currency=str(moved["currency"]).upper())
        # One record per status the dispute reached: each change is its own note.
        return SourceObject(source_id=f"{dispute['id']}:{dispute['status']}",
                            payload={"dispute": dispute, "charge": charge, "invoice": invoice},
                            updated_at=_moment(dispute.get("created")),
                            amount=stripe_amount(dispute.get("amount"), dispute["currency"], field="amount"),
                            currency=str(dispute["currency"]).upper())

    def transform(self, source: SourceObject) -> Posting:
        if source.payload.get("moved"):
            return self._funds_moved(source)
        dispute = source.payload["dispute"]
        charge = source.payload["charge"]
        invoice = source.payload.get("invoice")
        currency = str(dispute.get("currency") or "").upper()
        amount = stripe_amount(dispute.get("amount"), currency, field="amount")
        visma = self.visma_invoice([charge, *([invoice] if invoice else [])], currency=currency,
                                   what=f"dispute {dispute['id']}")
        due = _day(self.tenant, (dispute.get("evidence_details") or {}).get("due_by"))
        status = str(dispute.get("status"))
        text = {"needs_response": f"evidence due {due}", "won": "won: the money stays",
                "lost": "lost: the money was taken back"}.get(status, status)
        return Posting(
            document=INVOICE_NOTE, marker=self.marker(source.source_id),
            currency=currency, date=_day(self.tenant, dispute.get("created")),
            description=f"Stripe dispute {dispute['id']} of {amount} {currency} ({dispute.get('reason')}), "
                        f"charge {charge['id']}: {text}",
            facts=MatchFacts(transaction_type="dispute", amount=amount, currency=currency),
            customer=visma["customer"], extra={"invoice_number": visma["number"], "stripe_id": dispute["id"]},
        )

    def _funds_moved(self, source: SourceObject) -> Posting:
        """A dispute's balance transaction as a journal: withdrawn (amount < 0) — debit disputes by the amount and
        fee by the dispute fee, credit clearing by what left it; reinstated (amount > 0) — debit clearing by what
        came back, credit disputes by the amount and fee by any fee returned."""
        dispute, charge, moved = source.payload["dispute"], source.payload["charge"], source.payload["moved"]
        invoice = source.payload.get("invoice")
        currency = str(moved.get("currency") or "").upper()
        if currency != str(dispute.get("currency") or "").upper():
            raise SourceDataError(f"dispute {dispute['id']} in {str(dispute.get('currency')).upper()} moved money in "
                                  f"{currency}: a converted dispute needs a person")
        amount = stripe_amount(moved.get("amount"), currency, field="balance_transaction.amount")
        fee = stripe_amount(moved.get("fee"), currency, field="balance_transaction.fee")
        net = stripe_amount(moved.get("net"), currency, field="balance_transaction.net")
        if not amount or net != amount - fee:
            raise SourceDataError(f"dispute {dispute['id']} balance transaction {moved['id']}: amount {amount} less "
                                  f"fee {fee} is not net {net} {currency}")
        visma = self.visma_invoice([charge, *([invoice] if invoice else [])], currency=currency,
                                   what=f"dispute {dispute['id']}")
        customer = visma["customer"]
        about = f"Stripe dispute {dispute['id']} · invoice {visma['number']} · customer {customer}"
        withdrawn = amount < 0
        lines = [PostingLine(role="disputes", debit=-amount if withdrawn else Decimal(0),
                             credit=Decimal(0) if withdrawn else amount, description=about)]
        if fee:
            lines.append(PostingLine(role="fee", debit=max(fee, Decimal(0)), credit=max(-fee, Decimal(0)),
                                     description=f"Stripe dispute {dispute['id']} fee"
                                     + ("" if fee > 0 else " returned")))
        lines.append(PostingLine(role="clearing", debit=max(net, Decimal(0)), credit=max(-net, Decimal(0)),
                                 description=f"Stripe {moved['id']}"))
        what = "taken by Stripe" if withdrawn else "returned by Stripe (dispute won)"
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency,
            date=_day(self.tenant, moved.get("created")),
            description=f"Stripe dispute {dispute['id']} of charge {charge['id']}: {abs(amount)} {currency} {what}",
            facts=MatchFacts(transaction_type="dispute", amount=abs(amount), currency=currency,
                             customer_group=self.mirror.customer_class(customer)),
            lines=lines, customer=customer,
            extra={"invoice_number": visma["number"], "stripe_id": dispute["id"], "balance_transaction": moved["id"],
                   "amount": str(amount), "fee": str(fee), "net": str(net)},
        )


class RefundsStream(StripeToVisma, StripeSource):
    """Stripe refunds of a charge that paid a Visma invoice → a Visma credit note for the refunded share of the
    invoice (its accounts and VAT codes) and a customer refund paying it out of the Stripe clearing account, with any
    processing fee Stripe returned carried to the fee account; a refund waits until its charge is posted."""

    name = "refunds"
    target_kind = CREDIT_NOTE
    event_types = ("charge.refunded", "refund.created", "refund.updated", "refund.failed", "charge.refund.updated")

    def read_one(self, source_id: str) -> SourceObject | None:
        refund = self.stripe.refund(source_id).to_dict()
        charge, invoice = self._charge_with_invoice(str(refund["charge"]))
        return SourceObject(source_id=refund["id"], payload={"refund": refund, "charge": charge, "invoice": invoice},
                            updated_at=_moment(refund.get("created")),
                            amount=stripe_amount(refund.get("amount"), refund["currency"], field="amount"),
                            currency=str(refund["currency"]).upper())

    def transform(self, source: SourceObject) -> Posting:
        refund = source.payload["refund"]
        charge = source.payload["charge"]
        invoice = source.payload.get("invoice")
        refund_id, charge_id = refund["id"], charge["id"]
        currency = str(refund.get("currency") or "").upper()
        amount = stripe_amount(refund.get("amount"), currency, field="amount")
        if refund.get("status") in ("pending", "requires_action"):
            raise WaitFor(f"refund {refund_id} is {refund.get('status')} at Stripe")
        if refund.get("status") != "succeeded":
            raise SourceDataError(f"refund {refund_id} is {refund.get('status')}: no money was returned")
        if str(charge.get("currency") or "").upper() != currency:
            raise SourceDataError(f"refund {refund_id} is in {currency}; its charge {charge_id} is in "
                                  f"{str(charge.get('currency')).upper()}")
        settled = charge.get("balance_transaction")
        if isinstance(settled, Mapping) and str(settled.get("currency") or currency).upper() != currency:
            raise SourceDataError(f"refund {refund_id} returns part of charge {charge_id}, which Stripe settled in "
                                  f"{str(settled['currency']).upper()}: a converted refund is not booked "
                                  "automatically yet")
        if amount <= 0 or amount > stripe_amount(charge.get("amount"), currency, field="amount"):
            raise SourceDataError(f"refund {refund_id} of {amount} {currency} is not within its charge {charge_id}")
        paid = record_of(self.integration, ChargesStream.name, charge_id)
        if paid is None or paid.status != RecordStatus.POSTED:
            raise WaitFor(f"refund {refund_id} waits for its charge {charge_id} to be posted "
                          f"(charge record: {paid.status if paid else 'not received yet'})",
                          on=(ChargesStream.name, charge_id))
        visma = self.visma_invoice([charge, *([invoice] if invoice else [])], currency=currency,
                                   what=f"refund {refund_id}")
        customer = visma["customer"]
        returned = self._fee_returned(refund, amount, currency)
        try:
            credited = visma_credit_note_lines(visma["document"], amount,
                                               base_currency=tenant_base_currency(self.tenant, client=self.visma_client))
        except VismaDocumentError as exc:
            raise SourceDataError(f"refund {refund_id}: {exc}") from exc
        lines = [PostingLine(role="account", debit=amount,
                             description=f"Stripe refund {refund_id} · invoice {visma['number']} · "
                                         f"customer {customer}"),
                 PostingLine(role="clearing", credit=amount - returned, description=f"Stripe refund {refund_id}")]
        if returned:
            lines.append(PostingLine(role="fee", credit=returned, description=f"Stripe {refund_id} fee returned"))
        return Posting(
            document=CREDIT_NOTE, marker=self.marker(source.source_id),
            currency=currency, date=_day(self.tenant, refund.get("created")),
            description=f"Stripe refund {refund_id} of charge {charge_id} for invoice {visma['number']}",
            facts=MatchFacts(transaction_type="refund", amount=amount, currency=currency,
                             customer_group=self.mirror.customer_class(customer)),
            lines=lines, customer=customer,
            extra={"invoice_number": visma["number"], "stripe_id": refund_id, "charge": charge_id,
                   "lines": [{**line, "amount": str(line["amount"])} for line in credited],
                   "fee_returned": str(returned)},
        )

    @staticmethod
    def _fee_returned(refund: Mapping, amount: Decimal, currency: str) -> Decimal:
        """The processing fee Stripe gave back with the refund: its balance transaction's fee, negative when returned
        (spec3.yaml balance_transaction.fee, net = amount − fee); zero when Stripe kept it."""
        balance = refund.get("balance_transaction")
        if not isinstance(balance, Mapping):
            raise SourceDataError(f"refund {refund['id']} has no balance transaction (fee returned unknown)")
        if str(balance.get("currency") or "").upper() != currency:
            raise SourceDataError(f"refund {refund['id']} in {currency} was settled in "
                                  f"{str(balance.get('currency')).upper()}: a converted refund needs a person")
        moved = stripe_amount(balance.get("amount"), currency, field="balance_transaction.amount")
        fee = stripe_amount(balance.get("fee"), currency, field="balance_transaction.fee")
        net = stripe_amount(balance.get("net"), currency, field="balance_transaction.net")
        if moved != -amount or net != moved - fee or fee > 0:
            raise SourceDataError(f"refund {refund['id']} of {amount} {currency}: its balance transaction moved "
                                  f"{moved}, fee {fee}, net {net}")
        return -fee


class UnhandledStream(StripeSource):
    """A Stripe event about money that no stream takes (a payout, a failed capture...): recorded with its type and
    flagged for finance, never dropped. Finance books it by hand and rejects the record, or waits for a stream."""

    name = "unhandled"
    target_kind = "none"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        for event in self.stripe.events(since=start):
            if event.created < end.timestamp() and stripe_event_objects(event.to_dict()) == [(self.name, event.id)]:
                yield self._source(event.to_dict())

    def read_one(self, source_id: str) -> SourceObject | None:
        return self._source(self.stripe.event(source_id).to_dict())

    @staticmethod
    def _source(event: dict) -> SourceObject:
        obj = (event.get("data") or {}).get("object") or {}
        currency = str(obj.get("currency") or "").upper()
        try:
            amount = stripe_amount(obj.get("amount"), currency, field="amount") if currency else None
        except (SourceDataError, MoneyError):
            amount = None
        return SourceObject(source_id=str(event["id"]), payload={"event": event},
                            updated_at=_moment(event.get("created")), amount=amount, currency=currency[:3])

    def transform(self, source: SourceObject) -> Posting:
        event = source.payload["event"]
        obj = (event.get("data") or {}).get("object") or {}
        raise SourceDataError(
            f"Stripe event type {event.get('type')} ({event.get('id')}, {obj.get('object')} {obj.get('id')}) is not "
            "handled by this integration: book it by hand, then reject this record")

    def map(self, posting: Posting) -> MappingOutcome:
        return MappingOutcome(posting, None, [])

    def problems(self, posting: Posting) -> list[str]:
        return []

    def find_posted(self, posting: Posting, record) -> Written | None:
        return None

    def write(self, posting: Posting, record) -> Written:
        raise PermanentError(f"Stripe event {record.source_id} is not handled: nothing is written")


STREAMS: dict[str, type[Stream]] = {stream.name: stream for stream in (ChargesStream, DisputesStream, RefundsStream,
                                                                        UnhandledStream)}



# --- Visma → Stripe -------------------------------------------------------------------------------------------


def visma_field_text(value: object) -> str:
    """A Visma field as text: plain values as they are, a reference ({"id"|"number"|"description"}) by its id."""
    if isinstance(value, Mapping):
        return str(value.get("id") or value.get("number") or value.get("description") or "")
    return "" if value is None else str(value)


def stripe_line_tax(net: Decimal, percent: Decimal, currency: str) -> Decimal:
    """The tax Stripe puts on one line at an exclusive percentage rate: per line item, to the smallest unit, half up
    (docs.stripe.com/invoicing/taxes/tax-rates; the rounding is our assumption, docs/visma-invoices.md)."""
    unit = Decimal(1).scaleb(-stripe_minor_units(currency))
    return (net * percent / 100).quantize(unit, rounding=ROUND_HALF_UP)


def visma_billed_terms(invoice: Mapping, *, base_currency: str) -> dict:
    """What Stripe bills from a Visma invoice: total and VAT (in the document currency), currency, due date and lines;
    a change to any is a change to a sent invoice (its balance, status or notes are not). An invoice whose figures
    cannot be read is a term of its own (so it differs from a readable one)."""
    currency = str(invoice.get("currencyId") or "").upper()
    terms = {"currency": currency, "due_date": str(invoice.get("documentDueDate") or "")[:10]}
    try:
        figures = visma_invoice_figures(invoice, base_currency=base_currency)
    except SourceDataError as exc:
        return {**terms, "amount": "", "vat": "", "lines": [], "unreadable": str(exc)}
    return {**terms, "amount": str(figures.total), "vat": str(figures.vat),
            "lines": [[line.description, str(line.net), line.vat_code or ""] for line in figures.lines]}


def visma_billed_changes(before: Mapping, now: Mapping) -> list[str]:
    """Each billed term that differs, in words: "amount 129.90 → 174.90", "due date 2026-06-30 → 2026-07-31"."""
    changes = []
    for term, label in (("amount", "amount"), ("vat", "VAT"), ("currency", "currency"), ("due_date", "due date")):
        if before.get(term) != now.get(term):
            changes.append(f"{label} {before.get(term) or 'none'} → {now.get(term) or 'none'}")
    if before.get("unreadable") != now.get("unreadable") and now.get("unreadable"):
        changes.append(f"figures unreadable: {now['unreadable']}")
    if before.get("lines") != now.get("lines"):
        changes.append(f"lines changed ({len(before.get('lines') or [])} → {len(now.get('lines') or [])} lines)")
    return changes


@dataclass(frozen=True)
class StripeCustomerMatch:
    """How the Stripe customer of a Visma customer is looked for: Stripe's search query and, in words, by what."""

    query: str
    how: str


def stripe_customer_match(settings: Mapping, *, number: str, name: str) -> StripeCustomerMatch:
    """The tenant's `customer_match`: the Visma customer number in a metadata key, or its name as the description."""
    match = settings.get("customer_match") or "metadata"
    if match == "description":
        return StripeCustomerMatch(query=f"description:{stripe_search_text(name)}", how="description")
    if match == "metadata":
        key = str(settings.get("customer_metadata_key") or VISMA_CUSTOMER_KEY)
        return StripeCustomerMatch(query=f"metadata[{stripe_search_text(key)}]:{stripe_search_text(number)}",
                                   how=f"metadata {key}")
    raise ValueError(f"customer_match {match!r} is neither metadata nor description")


class VismaInvoicesStream(StripeSource):
    """Visma customer invoices marked for Stripe collection → Stripe invoices (customer matched, or created when the
    tenant allows; invoice created under a key derived from the Visma invoice so a retry never makes a second one,
    finalized and sent)."""

    name = "visma_invoices"
    target_kind = "stripe_invoice"
    overlap = timedelta(minutes=10)
    max_window = timedelta(days=31)
    initial_lookback = timedelta(days=7)

    @cached_property
    def visma_client(self):
        from connectors.visma.client import VismaClient

        client = VismaClient(self.integration.visma_connection)
        weakref.finalize(self, client.close)
        return client

    def _settings(self) -> Mapping:
        return self.integration.settings or {}

    def is_for_stripe(self, invoice: Mapping) -> bool:
        """The configurable criterion: the invoice's `collect_field` contains `collect_value` (case-insensitive)."""
        settings = self._settings()
        wanted = str(settings.get("collect_value") or "STRIPE").lower()
        found = visma_field_text(invoice.get(settings.get("collect_field") or "paymentMethod")).lower()
        return bool(wanted) and wanted in found

    def _base_currency(self) -> str:
        """The Visma company's base currency (mirrored with the reference data, read once when missing)."""
        base = tenant_base_currency(self.tenant, client=self.visma_client)
        if not base:
            raise SourceDataError("Visma names no base currency for the company (GET /v1/currency): invoice amounts "
                                  "cannot be read")
        return base

    def _source(self, invoice: dict) -> SourceObject:
        """The invoice as a source object; once it was sent to Stripe and what Stripe bills changed since, a source
        of its own per change (`<number>:changed:<digest>`), which transform flags: a sent invoice is never re-sent."""
        number = str(invoice["referenceNumber"])
        currency = str(invoice.get("currencyId") or "")
        try:
            base = self._base_currency()
        except SourceDataError:
            # Read without figures; transform flags the invoice with the reason (a poll is not stopped by it).
            base = ""
        now = visma_billed_terms(invoice, base_currency=base)
        amount = Decimal(now["amount"]) if now["amount"] else None
        sent = record_of(self.integration, self.name, number)
        if sent is not None and sent.status == RecordStatus.POSTED:
            before = visma_billed_terms(sent.source_payload["invoice"], base_currency=base)
            if before != now:
                digest = hashlib.sha256(json.dumps(now, sort_keys=True).encode()).hexdigest()[:12]
                return SourceObject(source_id=f"{number}:changed:{digest}",
                                    payload={"invoice": invoice, "sent": before, "stripe_invoice": sent.target_id},
                                    updated_at=None, amount=amount, currency=currency)
        return SourceObject(source_id=number, payload={"invoice": invoice}, updated_at=None, amount=amount,
                            currency=currency)

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        rows = self.visma_client.changed(CUSTOMER_INVOICES, since=start, key="referenceNumber",
                                         params={"documentType": "Invoice"})
        for invoice in rows:
            if invoice.get("documentType", "Invoice") == "Invoice" and self.is_for_stripe(invoice) \
                    and invoice.get("status") == "Open":
                yield self._source(invoice)

    def read_one(self, source_id: str) -> SourceObject | None:
        number = source_id.split(":")[0]
        invoice = self.visma_client.get_one(f"{CUSTOMER_INVOICES}/{quote(number, safe='')}")
        return self._source(invoice) if invoice and self.is_for_stripe(invoice) else None

    def transform(self, source: SourceObject) -> Posting:
        invoice = source.payload["invoice"]
        if "sent" in source.payload:
            changes = visma_billed_changes(source.payload["sent"],
                                           visma_billed_terms(invoice, base_currency=self._base_currency()))
            raise SourceDataError(
                f"Visma invoice {invoice['referenceNumber']} changed after it was sent to Stripe as "
                f"{source.payload['stripe_invoice']} ({'; '.join(changes)}): not re-sent; correct the Stripe invoice "
                "by hand (void and send a new one) or undo the change in Visma")
        number = str(invoice["referenceNumber"])
        currency = str(invoice.get("currencyId") or "").upper()
        if not currency:
            raise SourceDataError(f"Visma invoice {number} has no currency")
        if invoice.get("status") != "Open":
            raise SourceDataError(f"Visma invoice {number} is {invoice.get('status')}: only released (Open) invoices "
                                  "are collected")
        figures = visma_invoice_figures(invoice, base_currency=self._base_currency())
        if figures.balance != figures.total:
            raise SourceDataError(f"Visma invoice {number} is partly paid ({figures.balance} of {figures.total} "
                                  f"{currency} open)")
        day = date.fromisoformat(str(invoice.get("documentDate") or "")[:10]) if invoice.get("documentDate") \
            else datetime.now(tz=UTC).date()
        lines = self._stripe_lines(figures, day)
        customer = str((invoice.get("customer") or {}).get("number") or "")
        return Posting(
            document="stripe_invoice", marker=self.marker(source.source_id), currency=currency, date=day,
            description=str(invoice.get("invoiceText") or f"Invoice {number}"),
            facts=MatchFacts(transaction_type="invoice", amount=figures.total, currency=currency),
            customer=customer,
            extra={"invoice_number": number, "lines": lines, "customer_name": (invoice.get("customer") or {})
                   .get("name") or "", "due_date": str(invoice.get("documentDueDate") or "")[:10],
                   "subtotal": str(figures.net), "vat": str(figures.vat), "total": str(figures.total)},
        )

    def _stripe_lines(self, figures: VismaInvoiceFigures, day: date) -> list[dict]:
        """The invoice's lines as Stripe will bill them: net amount, and the Visma VAT code with its rate on the
        document date; SourceDataError when the VAT Stripe computes from them is not Visma's vatTotal."""
        percents: dict[str, Decimal] = {}
        for code in sorted({line.vat_code for line in figures.lines if line.vat_code}):
            percent = visma_vat_rate_read(self.visma_client, code, day)
            if percent is None:
                raise SourceDataError(f"Visma invoice {figures.number}: Visma has no VAT code {code} with a rate on "
                                      f"{day}")
            percents[code] = percent
        lines = [{"description": line.description or f"Line {line.line_number}", "amount": str(line.net),
                  "vat_code": line.vat_code or "", "vat_percent": str(percents[line.vat_code]) if line.vat_code else ""}
                 for line in figures.lines]
        stripe_vat = sum((stripe_line_tax(line.net, percents[line.vat_code], figures.currency)
                          for line in figures.lines if line.vat_code), Decimal(0))
        if stripe_vat != figures.vat:
            raise SourceDataError(
                f"Visma invoice {figures.number}: Stripe would bill VAT {stripe_vat} {figures.currency} (its tax rates "
                f"on each line), Visma's vatTotal is {figures.vat}: not sent, the totals would differ")
        return lines

    def map(self, posting: Posting) -> MappingOutcome:
        return MappingOutcome(posting, None, [])

    def problems(self, posting: Posting) -> list[str]:
        problems = []
        allowed = [str(code).upper() for code in (self._settings().get("collect_currencies") or [])]
        if allowed and posting.currency not in allowed:
            problems.append(f"Visma invoice {posting.extra['invoice_number']} is in {posting.currency}; this Stripe "
                            f"account collects {', '.join(allowed)}")
        if not posting.customer:
            problems.append(f"Visma invoice {posting.extra['invoice_number']} has no customer")
        for index, line in enumerate(posting.extra.get("lines") or []):
            try:
                stripe_minor(Decimal(line["amount"]), posting.currency, field=f"line {index + 1}")
            except (SourceDataError, MoneyError) as exc:
                problems.append(f"Visma invoice {posting.extra['invoice_number']}: {exc}")
        if posting.facts.amount <= 0:
            problems.append(f"Visma invoice {posting.extra['invoice_number']} has nothing to collect")
        if not problems:
            try:
                problems.extend(self._stripe_customer_found(posting)[1])
            except PermanentError as exc:
                problems.append(f"Stripe refused the customer search: {exc.system_message}")
        return problems

    def _key(self, *parts: object) -> str:
        from .client import stripe_idempotency_key

        return stripe_idempotency_key(self.integration.pk, *parts)

    def _stripe_customer_found(self, posting: Posting) -> tuple[stripe.Customer | None, list[str]]:
        """The one Stripe customer matching the invoice's Visma customer (None: none, and the tenant lets us create
        it), or why the invoice cannot be sent: no match, several, or a customer billed in another currency."""
        settings = self._settings()
        name = str(posting.extra.get("customer_name") or "")
        who = f"Visma customer {posting.customer} {name}".rstrip()
        try:
            match = stripe_customer_match(settings, number=posting.customer, name=name)
        except ValueError as exc:
            return None, [str(exc)]
        if match.how == "description" and not name:
            return None, [f"{who} has no name to match a Stripe customer's description"]
        found = self.stripe.customers_search(match.query)
        if len(found) > 1:
            ids = ", ".join(customer.id for customer in found)
            several = f"{len(found)} Stripe customers match {who} by {match.how} ({ids}): keep one, or match another way"
            return None, [several]
        if not found:
            if settings.get("create_customers"):
                return None, []
            return None, [f"no Stripe customer matches {who} by {match.how}: create it in Stripe or allow creation"]
        [customer] = found
        # Stripe fixes a customer's currency at its first invoice or charge; an invoice in another is refused there.
        billed_in = str(customer.to_dict().get("currency") or "").upper()
        if billed_in and billed_in != posting.currency:
            invoice = posting.extra["invoice_number"]
            differs = f"Stripe customer {customer.id} of {who} is billed in {billed_in}; Visma invoice {invoice} is in " \
                f"{posting.currency}"
            return customer, [differs]
        return customer, []

    def _stripe_customer(self, posting: Posting) -> str:
        """The matched Stripe customer's id, or a new customer's (created only when the tenant allows)."""
        customer, problems = self._stripe_customer_found(posting)
        if problems:
            raise PermanentError("; ".join(problems))
        if customer is not None:
            return customer.id
        settings = self._settings()
        visma = self.visma_client.get_one(f"/v1/customer/{quote(posting.customer, safe='')}") or {}
        email = ((visma.get("mainContact") or {}).get("email")) or None
        name = visma.get("name") or posting.extra.get("customer_name") or posting.customer
        key = str(settings.get("customer_metadata_key") or VISMA_CUSTOMER_KEY)
        # Created so that the next invoice's search finds it again, whichever way the tenant matches.
        description = (posting.extra.get("customer_name") or name) if settings.get("customer_match") == "description" \
            else f"Visma customer {posting.customer}"
        params = {"name": name, "description": description, "metadata": {key: posting.customer}}
        if email:
            params["email"] = email
        return self.stripe.customer_create(params, idempotency_key=self._key("customer", posting.customer)).id

    def find_posted(self, posting: Posting, record) -> Written | None:
        name = str(posting.extra.get("customer_name") or "")
        try:
            match = stripe_customer_match(self._settings(), number=posting.customer, name=name)
        except ValueError:
            return None
        for customer in self.stripe.customers_search(match.query):
            for invoice in self.stripe.invoices_of(customer.id):
                metadata = invoice.to_dict().get("metadata") or {}
                if metadata.get(VISMA_INVOICE_KEY) == posting.extra["invoice_number"] and invoice.status != "draft":
                    return Written.of(posting, invoice.id, kind=self.target_kind)
        return None

    def write(self, posting: Posting, record) -> Written:
        number = posting.extra["invoice_number"]
        currency = posting.currency.lower()
        customer = self._stripe_customer(posting)
        params = {"customer": customer, "currency": currency, "collection_method": "send_invoice",
                  "description": posting.description,
                  "metadata": {VISMA_INVOICE_KEY: number, VISMA_CUSTOMER_KEY: posting.customer}}
        due = posting.extra.get("due_date")
        due_at = int(datetime.fromisoformat(due).replace(tzinfo=UTC).timestamp()) if due else 0
        if due_at > int(datetime.now(tz=UTC).timestamp()):
            params["due_date"] = due_at
        else:
            params["days_until_due"] = int(self._settings().get("days_until_due") or 14)
        created = self.stripe.invoice_create(params, idempotency_key=self._key("invoice", number))
        # A retry gets the first answer back (a draft without lines): what counts is the invoice as it is now.
        invoice = self.stripe.invoice(created.id)
        if invoice.status == "draft" and not invoice.lines.data:
            for index, line in enumerate(posting.extra["lines"]):
                item = {"customer": customer, "invoice": invoice.id, "currency": currency,
                        "amount": stripe_minor(Decimal(line["amount"]), posting.currency, field=f"line {index + 1}"),
                        "description": line["description"]}
                if line.get("vat_code"):
                    item["tax_rates"] = [self._stripe_tax_rate(line["vat_code"], Decimal(line["vat_percent"]))]
                self.stripe.invoice_item_create(item, idempotency_key=self._key("invoice", number, "line", index))
            invoice = self.stripe.invoice(invoice.id)
        if invoice.status == "draft":
            self._totals_check(invoice, posting)
            self.stripe.invoice_finalize(invoice.id, idempotency_key=self._key("invoice", number, "finalize"))
        self.stripe.invoice_send(invoice.id, idempotency_key=self._key("invoice", number, "send"))
        return Written.of(posting, invoice.id, kind=self.target_kind)

    def _stripe_tax_rate(self, vat_code: str, percent: Decimal) -> str:
        """The id of the Stripe TaxRate for a Visma VAT code at a percentage (exclusive, as Visma adds VAT to the
        lines): an active one marked with the code, else a new one (created once: its key is the code and rate)."""
        for rate in self.stripe.tax_rates(inclusive=False):
            found = rate.to_dict()
            if (found.get("metadata") or {}).get(VISMA_VAT_CODE_KEY) == vat_code and \
                    Decimal(str(found.get("percentage"))) == percent:
                return rate.id
        params = {"display_name": "VAT", "description": f"Visma VAT code {vat_code}", "percentage": str(percent),
                  "inclusive": False, "metadata": {VISMA_VAT_CODE_KEY: vat_code}}
        return self.stripe.tax_rate_create(params, idempotency_key=self._key("tax_rate", vat_code, percent)).id

    @staticmethod
    def _totals_check(invoice: stripe.Invoice, posting: Posting) -> None:
        """Before it is finalized: the draft's subtotal, tax and total are the Visma invoice's, else it stays a draft
        and the record is flagged (a person compares both)."""
        found = invoice.to_dict()
        tax = sum(int(row.get("amount") or 0) for row in found.get("total_taxes") or [])
        stripe_figures = (found.get("subtotal"), tax, found.get("total"))
        visma_figures = tuple(stripe_minor(Decimal(posting.extra[name]), posting.currency, field=name)
                              for name in ("subtotal", "vat", "total"))
        if stripe_figures != visma_figures:
            raise PermanentError(
                f"Stripe invoice {invoice.id} bills subtotal/tax/total {'/'.join(map(str, stripe_figures))}, Visma "
                f"invoice {posting.extra['invoice_number']} {'/'.join(map(str, visma_figures))} (smallest units of "
                f"{posting.currency}): left as a draft, not sent")


STREAMS[VismaInvoicesStream.name] = VismaInvoicesStream

__all__ = ["STREAMS", "ChargesStream", "DisputesStream", "RefundsStream", "StripeCustomerMatch", "VismaInvoicesStream",
           "stripe_amount", "stripe_customer_match", "stripe_line_tax"]
