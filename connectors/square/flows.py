"""Square → Visma: payments and refunds become journals on the cost center of the store (location) where they were
taken. A completed payment: the sale to revenue, the tip to the tips account, Square's processing fee to the fee
account, the net to the Square clearing account. A fee Square adjusts after the payment was posted: its own fee
journal. A posted payment Square later cancels: a reversal journal. A refund: the refunded amount back out of
revenue and clearing (a fee Square returns back to the fee account), after its payment is posted. A payment or
refund of a Square invoice is left to the invoice streams (connectors/square/invoices.py).

Each object is re-read from Square before it is written (a webhook is a trigger); payments are read per location
(ListPayments returns only the main location's by default), refunds for all locations at once, both by updated_at.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.utils import timezone

from audit.models import RecordStatus, SyncRecord
from audit.selectors import record_of, record_posting
from connectors.errors import WaitFor
from connectors.pipeline import SourceDataError, SourceObject, Stream, Written, source_take
from connectors.visma.target import VismaTarget
from mappings.documents import NO_CURRENCY, NOTHING_BOOKED, MatchFacts, Posting, PostingLine, posting_marker_part
from mappings.money import quantize
from mappings.services import MappingOutcome, location_display, mapping_rule_resolve, posting_map

from .invoices import square_invoice_of_payment, square_invoice_payment_take
from .sources import SquareSource, square_fee_change_lines, square_fee_entries, square_money, square_time

log = logging.getLogger(__name__)

# Payment.source_type values Square processes itself, so it charges a processing fee (docs/square.md §6, §7).
# CASH and EXTERNAL are not processed by Square: they post without a fee. A source type not known here is taken the
# stricter way (a fee is expected): its payment waits for one.
FEE_FREE_SOURCES = frozenset({"CASH", "EXTERNAL"})
# Payment.status (prose, no enum in api.json; docs/square.md §7): COMPLETED posts, APPROVED/PENDING wait,
# CANCELED/FAILED never become a sale.
PAYMENT_WAITS = frozenset({"APPROVED", "PENDING"})
PAYMENT_VOID = frozenset({"CANCELED", "FAILED"})
# PaymentRefund.status (prose; not the legacy RefundStatus enum, docs/square.md §7).
REFUND_WAITS = frozenset({"PENDING"})
REFUND_VOID = frozenset({"REJECTED", "FAILED"})

# A Square object that becomes no document of ours: the record is settled, saying why (audited), never flagged
# (mappings.documents.NOTHING_BOOKED).
# Its target kind when another stream books it (a payment of a Square invoice: the invoice payments stream).
LEFT_TO_INVOICE_PAYMENTS = "invoice_payments"


def _source_payment(payment: Mapping, source_id: str | None = None, **payload) -> SourceObject:
    currency = str((payment.get("total_money") or payment.get("amount_money") or {}).get("currency") or "").upper()
    amount = None
    try:
        amount = square_money(payment.get("total_money") or payment.get("amount_money"), field="total_money",
                              what=f"payment {payment.get('id')}")
    except SourceDataError:
        pass  # transform says what is wrong with it
    return SourceObject(source_id=source_id or str(payment["id"]), payload={"payment": dict(payment), **payload},
                        updated_at=square_time(payment.get("updated_at")), amount=amount, currency=currency)


class SquareToVisma(VismaTarget):
    """The Visma side of the Square streams: journals, and the "nothing booked" outcome that writes nothing.

    A part of a posted payment (a fee adjustment, a reversal, a refund) is mapped by the payment's own rule and facts
    (its location, source type), so it lands on the same accounts and the same cost center."""

    def map(self, posting: Posting) -> MappingOutcome:
        if posting.document == NOTHING_BOOKED:
            return MappingOutcome(posting, None, [])
        matched_as = posting.extra.get("matched_as")
        facts = posting.facts
        if matched_as:
            facts = MatchFacts(**{**matched_as["facts"], "amount": Decimal(matched_as["facts"]["amount"])})
        # Only a rule naming the payment's store (location) may book it: its cost center is that store's. A rule for
        # any store would put an unmapped store's sales on another store's cost center (review finding 8).
        rules = [rule for rule in self.mapping_rules if rule.location and rule.location == facts.location]
        # A part of a posted payment: the payment's rule first (if it is still active and names the store), then
        # whatever the payment's facts match now.
        named = [rule for rule in rules if matched_as and rule.name == matched_as.get("rule")]
        probe = dataclasses.replace(posting, facts=facts)  # shares the lines: the accounts land on them
        outcome = posting_map(tenant=self.tenant, system=self.integration.kind, posting=probe,
                              rules=named or rules)
        posting.rule = probe.rule
        if outcome.rule is None and mapping_rule_resolve(tenant=self.tenant, system=self.integration.kind,
                                                         posting=probe, rules=self.mapping_rules) is not None:
            # Only a rule for any store (or another store's) matches: say which store needs its own.
            return MappingOutcome(posting, None, [
                f"No mapping rule for store {location_display(self.tenant, facts.location)}: add one (a rule for "
                "any store is not used for Square payments, so that no store's sales land on another store's cost "
                "center)"])
        return MappingOutcome(posting, outcome.rule, outcome.problems)

    def problems(self, posting: Posting) -> list[str]:
        if posting.document == NOTHING_BOOKED:
            return []
        return super().problems(posting)

    def find_posted(self, posting: Posting, record) -> Written | None:
        if posting.document == NOTHING_BOOKED:
            return self._nothing_written(posting)
        return super().find_posted(posting, record)

    def write(self, posting: Posting, record) -> Written:
        if posting.document == NOTHING_BOOKED:
            return self._nothing_written(posting)
        return super().write(posting, record)

    @staticmethod
    def _nothing_written(posting: Posting) -> Written:
        # The record's target says where it went instead: "invoice_payments <payment id>", or nothing booked.
        left_to = posting.extra.get("left_to") or ""
        return Written(kind=left_to or NOTHING_BOOKED, target_id=posting.extra.get("left_as") or "",
                       marker=posting.marker)

    def nothing_booked(self, source_id: str, *, currency: str, day, why: str, facts: MatchFacts,
                       left_to: str = "", left_as: str = "", **extra) -> Posting:
        """The posting of an object we book nothing for: settled with the reason (the record and its audit say
        it), written nowhere."""
        return Posting(document=NOTHING_BOOKED, marker=self.marker(source_id), currency=currency, date=day,
                       description=why, facts=facts,
                       extra={**extra, **({"left_to": left_to, "left_as": left_as} if left_to else {})})


# --- payments -------------------------------------------------------------------------------------------------


class PaymentSource(SquareSource):
    """Square payments → sale journals, and the journals of what happens to a posted payment later: a fee
    adjustment ("<payment id>:fee:<effective_at>") and a reversal ("<payment id>:reversal"), each its own record."""

    name = "payments"
    target_kind = "journal"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        seen: set[str] = set()
        # Every location, inactive ones too (their payments can still be adjusted or canceled), read afresh: a store
        # opened since the last refresh is polled from its first payment on.
        for location in sorted(self.locations_refresh(), key=lambda found: found.location_id):
            listing = self.walk(lambda location_id=location.location_id: self.square.payments(
                location_id=location_id, updated_from=start, updated_to=end, begin_time=self.begin_time,
                page_size=self.page_size), what=f"payments of location {location.location_id}")
            for payment in listing:
                if payment.get("id") in seen:
                    continue
                seen.add(payment["id"])
                yield self.fresh(_source_payment(payment))
                # Found after the payment itself was taken (it may have been settled just now): a payment of an
                # invoice goes to the invoice payments stream, the parts of a posted sale are taken.
                self.invoice_payment_hand_over(payment)
                yield from self.payment_parts(payment)

    def read_one(self, source_id: str) -> SourceObject | None:
        payment_id = source_id.split(":")[0]
        payment = self.square.payment(payment_id)
        if payment is None:
            return None
        parts = self.payment_parts(payment)
        for part in parts:
            if part.source_id != source_id:
                source_take(self.integration, self, part)
        if source_id == payment_id:
            source = self.fresh(_source_payment(payment))
            if payment.get("order_id"):
                # It may pay an invoice (only a payment with an order can): taken here, so that the invoice's
                # customer payment is handed over at once, not at the next poll. The caller's take finds it settled.
                self.payment_take(source)
            return source
        return next((part for part in parts if part.source_id == source_id), None)

    def payment_take(self, source: SourceObject):
        """Take the payment now, then hand a payment of an invoice over to the invoice payments stream."""
        record, _ = source_take(self.integration, self, source)
        self.invoice_payment_hand_over(source.payload["payment"])
        return record

    def invoice_payment_hand_over(self, payment: Mapping) -> None:
        """A payment this stream settled as an invoice's (left to invoice_payments): taken by the invoice payments
        stream at once (review finding 7), so the customer payment does not wait for the next invoices poll. Every
        read hands it over again: a fee Square reports later reaches the invoice payment too (taking a settled one
        again changes nothing). A failure here leaves it to the invoices poll, which reads the invoice's payments."""
        payment_id = str(payment.get("id") or "")
        record = record_of(self.integration, self.name, payment_id)
        if record is None or record.status != RecordStatus.POSTED or record.target_kind != LEFT_TO_INVOICE_PAYMENTS:
            return
        try:
            invoice = self.square_invoice_of_payment(payment)
            square_invoice_payment_take(self.integration, payment=payment, invoice=invoice)
        except Exception:
            log.exception("Square payment %s: handing it to the invoice payments stream failed; the next invoices "
                          "poll takes it", payment_id)

    def payment_parts(self, payment: Mapping) -> list[SourceObject]:
        """What a posted sale of this payment does not hold yet: fee entries Square added after it was booked (one
        journal per effective_at), and its cancellation."""
        payment_id = str(payment["id"])
        record = record_of(self.integration, self.name, payment_id)
        if record is None or record.status != RecordStatus.POSTED or not record.proposed_posting:
            return []
        sale = record_posting(record)
        if sale.document != "journal":
            return []  # nothing was booked for it (an invoice's payment, a payment never completed)
        parts = []
        if str(payment.get("status") or "") in PAYMENT_VOID:
            parts.append(_source_payment(payment, f"{payment_id}:reversal"))
        booked = set(sale.extra.get("fee_entries") or [])
        try:
            entries = square_fee_entries(payment, currency=sale.currency, what=f"payment {payment_id}")
        except SourceDataError:
            entries = []  # the fee journal's transform flags it, with the reason
            if payment.get("processing_fee") != record.source_payload.get("payment", {}).get("processing_fee"):
                parts.append(_source_payment(payment, f"{payment_id}:fee:unreadable"))
        for effective_at in dict.fromkeys(entry["effective_at"] for entry in entries if entry["key"] not in booked):
            parts.append(_source_payment(payment, f"{payment_id}:fee:{effective_at}"))
        return parts

    # --- transform -----------------------------------------------------------------------------------------

    def transform(self, source: SourceObject) -> Posting:
        payment = source.payload["payment"]
        payment_id = str(payment.get("id") or source.source_id)
        part = source.source_id[len(payment_id) + 1:] if source.source_id != payment_id else ""
        if part == "reversal":
            return self.reversal(source, payment)
        if part.startswith("fee:"):
            return self.fee_adjustment(source, payment, effective_at=part[len("fee:"):])
        return self.sale(source, payment)

    def sale(self, source: SourceObject, payment: Mapping) -> Posting:
        payment_id = str(payment["id"])
        what = f"payment {payment_id}"
        status = str(payment.get("status") or "")
        source_type = str(payment.get("source_type") or "")
        location = self.location(str(payment.get("location_id") or ""))
        currency = str((payment.get("amount_money") or {}).get("currency") or "").upper()
        created_at = square_time(payment.get("created_at"), field="created_at")
        day = self.day(created_at)
        facts = MatchFacts(transaction_type="payment", amount=Decimal(0), currency=currency,
                           payment_method=source_type, location=location.location_id)
        if self.before_go_live(created_at):
            # Keyed by hand before the integration started (review findings 1, 3): a webhook or a refund's
            # payment.updated must not book it now.
            return self.nothing_booked(
                source.source_id, currency=currency or location.currency or NO_CURRENCY, day=day, facts=facts,
                before_go_live=True,
                why=f"{what} was taken before this integration's start on {self.go_live_text()}: booked by hand "
                    "before, nothing booked")
        if status in PAYMENT_WAITS:
            raise WaitFor(f"{what} is {status} at Square (authorized, not yet completed): it is posted once "
                          "completed, and never if Square cancels it")
        if status in PAYMENT_VOID:
            return self.nothing_booked(source.source_id, currency=currency or location.currency or NO_CURRENCY, day=day,
                                       facts=facts, why=f"{what} is {status}: no sale, nothing booked")
        if status != "COMPLETED":
            raise SourceDataError(f"{what} has status {status or 'none'}, which Square does not document: not posted")
        # A sale journal of this payment may be in Visma already (an earlier write whose answer was lost, the record
        # then failed and was replayed): it stays a sale, looked up by its marker; never also a customer payment.
        record = record_of(self.integration, self.name, source.source_id)
        journal_may_exist = record is not None and record.write_attempted and record.target_kind not in (
            NOTHING_BOOKED, LEFT_TO_INVOICE_PAYMENTS)
        invoice = None if journal_may_exist else self.square_invoice_of_payment(payment)
        if invoice is not None:
            number = invoice.get("invoice_number") or invoice.get("id")
            return self.nothing_booked(
                source.source_id, currency=currency, day=day, facts=facts, left_to=LEFT_TO_INVOICE_PAYMENTS,
                left_as=f"{LEFT_TO_INVOICE_PAYMENTS} {payment_id}", square_invoice=str(invoice.get("id") or ""),
                why=f"{what} pays Square invoice {number}: booked as its customer payment by the invoice payments "
                    "stream, not as a sale")
        if currency != location.currency:
            raise SourceDataError(f"{what} is in {currency}, but its location {location.name} ({location.location_id})"
                                  f" takes {location.currency or 'no currency'}: not booked until a person decides")
        gross = square_money(payment.get("amount_money"), field="amount_money", what=what, currency=currency)
        tip = square_money(payment.get("tip_money"), field="tip_money", what=what, currency=currency)
        total = square_money(payment.get("total_money"), field="total_money", what=what, currency=currency) \
            if payment.get("total_money") else gross + tip
        if total != gross + tip or gross <= 0:
            raise SourceDataError(f"{what}: amount {gross} and tip {tip} do not make total {total} {currency}")
        entries = square_fee_entries(payment, currency=currency, what=what)
        if not entries and source_type not in FEE_FREE_SOURCES:
            waited_until = created_at + timedelta(minutes=int(self.settings.get("fee_wait_minutes") or 0))
            if timezone.now() < waited_until:
                raise WaitFor(f"{what} ({source_type or 'no source type'}) has no processing fee from Square yet; "
                              f"it is posted once Square reports it (waits until {waited_until:%Y-%m-%d %H:%M} UTC)")
            raise SourceDataError(f"Square has not reported the processing fee of {what} ({source_type}) "
                                  f"{self.settings.get('fee_wait_minutes')} minutes after it was taken: book the fee "
                                  "by hand and approve, or wait for Square and replay")
        fee = sum((entry["amount"] for entry in entries), Decimal(0))
        # Payment.app_fee_money: "the amount the developer is taking as a fee for facilitating the payment"
        # (api.json): it never reaches the seller, so it leaves the net like Square's fee (review finding 5).
        app_fee = square_money(payment.get("app_fee_money"), field="app_fee_money", what=what, currency=currency)
        if app_fee > total:  # api.json: "cannot be more than 90% of the total_money"
            raise SourceDataError(f"{what}: application fee {app_fee} {currency} is more than the payment's total "
                                  f"{total} {currency}")
        net = total - fee - app_fee
        label = f"Square {payment_id}"
        lines = [PostingLine(role="clearing", debit=net, description=f"{label} net")]
        if fee > 0:
            lines.append(PostingLine(role="fee", debit=fee, description=f"{label} processing fee"))
        elif fee < 0:
            lines.append(PostingLine(role="fee", credit=-fee, description=f"{label} processing fee returned"))
        if app_fee:
            lines.append(PostingLine(role="fee", debit=app_fee, description=f"{label} application fee"))
        lines.append(PostingLine(role="account", credit=gross, description=f"{label} sale · {location.name}"))
        if tip:
            lines.append(PostingLine(role="tip", credit=tip, description=f"{label} tip · {location.name}"))
        facts = dataclasses.replace(facts, amount=total)
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency, date=day,
            description=f"Square payment {payment_id} · {location.name} · {source_type}",
            facts=facts, lines=lines,
            extra={"square_id": payment_id, "location_id": location.location_id, "location": location.name,
                   "source_type": source_type, "gross": str(gross), "tip": str(tip), "fee": str(fee),
                   "app_fee": str(app_fee), "net": str(net), "fee_entries": [entry["key"] for entry in entries]},
        )

    def square_invoice_of_payment(self, payment: Mapping) -> dict | None:
        """The Square invoice this payment pays, or None (connectors/square/invoices.py decides, from the order);
        asked once per payment and stream instance (the hand-over after the take uses the same answer)."""
        found: dict = self.__dict__.setdefault("_invoices_of_payments", {})
        payment_id = str(payment.get("id") or "")
        if payment_id not in found:
            found[payment_id] = square_invoice_of_payment(self, payment)
        return found[payment_id]

    def _posted_sale(self, payment_id: str, *, what: str) -> tuple[Posting, object]:
        """The payment's posted sale journal and its record; WaitFor while it is not posted."""
        record = record_of(self.integration, self.name, payment_id)
        if record is None or record.status != RecordStatus.POSTED:
            state = record.status if record else "not read yet"
            raise WaitFor(f"payment {payment_id} is not posted yet ({state}); {what} is booked after it",
                          on=(self.name, payment_id))
        sale = record_posting(record)
        if sale.document != "journal":
            raise SourceDataError(f"{what}: payment {payment_id} was not booked as a sale ({sale.description})")
        return sale, record

    @staticmethod
    def _matched_as(sale: Posting) -> dict:
        facts = dataclasses.asdict(sale.facts)
        return {"rule": sale.rule, "facts": {**facts, "amount": str(facts["amount"])}}

    def fee_adjustment(self, source: SourceObject, payment: Mapping, *, effective_at: str) -> Posting:
        payment_id = str(payment["id"])
        what = f"the processing fee Square changed on payment {payment_id} ({effective_at})"
        sale, _record = self._posted_sale(payment_id, what=what)
        entries = square_fee_entries(payment, currency=sale.currency, what=f"payment {payment_id}")
        booked = set(sale.extra.get("fee_entries") or [])
        new = [entry for entry in entries if entry["effective_at"] == effective_at and entry["key"] not in booked]
        fee, lines = square_fee_change_lines(payment_id, new)
        if not new or not fee:
            raise SourceDataError(f"{what}: no new fee entry of that time is left to book (payment has "
                                  f"{len(entries)} fee entries, {len(booked)} booked with the sale)")
        moment = square_time(effective_at, field="effective_at") if effective_at else None
        return Posting(
            document="journal", marker=posting_marker_part(sale.marker, f"fee:{effective_at}"),
            currency=sale.currency, date=self.day(moment) if moment else sale.date,
            description=f"Square processing fee {new[0]['type'].lower() or 'entry'} of payment {payment_id} "
                        f"· {sale.extra.get('location', '')}",
            facts=dataclasses.replace(sale.facts, transaction_type="fee_adjustment", amount=abs(fee)),
            lines=lines,
            extra={"square_id": payment_id, "location_id": sale.extra.get("location_id", ""),
                   "fee": str(fee), "fee_entries": [entry["key"] for entry in new],
                   "sale_marker": sale.marker, "matched_as": self._matched_as(sale)},
        )

    def reversal(self, source: SourceObject, payment: Mapping) -> Posting:
        payment_id = str(payment["id"])
        status = str(payment.get("status") or "")
        what = f"the reversal of payment {payment_id} ({status} after it was booked)"
        if status not in PAYMENT_VOID:
            raise SourceDataError(f"{what}: the payment is {status} again at Square; check it before booking")
        sale, record = self._posted_sale(payment_id, what=what)
        # The sale journal exactly undone: every line on the other side, same accounts and cost center.
        lines = [PostingLine(role=line.role, debit=line.credit, credit=line.debit,
                             description=f"Reversal · {line.description}"[:256]) for line in sale.lines]
        return Posting(
            document="journal", marker=posting_marker_part(sale.marker, "reversal"), currency=sale.currency,
            date=self.day(square_time(payment.get("updated_at"))),
            description=f"Square payment {payment_id} {status} after it was booked: reversal of journal "
                        f"{record.target_id}",
            facts=dataclasses.replace(sale.facts, transaction_type="payment_reversal"), lines=lines,
            extra={"square_id": payment_id, "location_id": sale.extra.get("location_id", ""),
                   "reverses": record.target_id, "sale_marker": sale.marker, "matched_as": self._matched_as(sale)},
        )


# --- refunds --------------------------------------------------------------------------------------------------


class RefundSource(SquareSource):
    """Square refunds (all locations) → the reversal of the refunded amount of their payment, after that payment is
    posted: debit revenue and the tip account in the payment's proportion, credit clearing; a fee Square returns (a
    negative processing_fee entry) credits the fee account (docs/square-postings.md)."""

    name = "refunds"
    target_kind = "journal"

    def read_window(self, start: datetime, end: datetime) -> Iterator[SourceObject]:
        seen: set[str] = set()
        for refund in self.walk(lambda: self.square.refunds(updated_from=start, updated_to=end,
                                                            begin_time=self.begin_time, page_size=self.page_size),
                                what="refunds"):
            if refund.get("id") in seen:
                continue  # read again after a restarted walk
            seen.add(refund["id"])
            yield self._source(refund)

    def read_one(self, source_id: str) -> SourceObject | None:
        refund = self.square.refund(source_id)
        return self._source(refund) if refund is not None else None

    def _source(self, refund: Mapping) -> SourceObject:
        self._payment_take(str(refund.get("payment_id") or ""))
        amount = None
        try:
            amount = square_money(refund.get("amount_money"), field="amount_money", what=f"refund {refund.get('id')}")
        except SourceDataError:
            pass
        return self.fresh(SourceObject(source_id=str(refund["id"]), payload={"refund": dict(refund)},
                            updated_at=square_time(refund.get("updated_at")), amount=amount,
                            currency=str((refund.get("amount_money") or {}).get("currency") or "").upper()))

    def _payment_take(self, payment_id: str) -> None:
        """A refund of a payment we have not read (its location polled later, a missed webhook): the payment is
        read and taken first, so the refund finds it."""
        if not payment_id or record_of(self.integration, PaymentSource.name, payment_id) is not None:
            return
        payments = self._payments_stream()
        payment = self.square.payment(payment_id)
        if payment is not None:
            payments.payment_take(_source_payment(payment))

    def _payments_stream(self) -> Stream:
        from connectors.pipeline import stream_for

        stream = stream_for(self.integration, PaymentSource.name)
        stream.__dict__["square"] = self.square  # one client, one token renewal
        return stream

    def transform(self, source: SourceObject) -> Posting:
        refund = source.payload["refund"]
        refund_id = str(refund.get("id") or source.source_id)
        what = f"refund {refund_id}"
        status = str(refund.get("status") or "")
        payment_id = str(refund.get("payment_id") or "")
        currency = str((refund.get("amount_money") or {}).get("currency") or "").upper()
        created_at = square_time(refund.get("created_at"), field="created_at")
        day = self.day(created_at)
        if refund.get("unlinked") or not payment_id:
            raise SourceDataError(f"{what} is not linked to a Square payment (unlinked refund): there is no sale to "
                                  "reverse; book it by hand")
        facts = MatchFacts(transaction_type="refund", amount=Decimal(0), currency=currency,
                           location=str(refund.get("location_id") or ""))
        if self.before_go_live(created_at):
            return self.nothing_booked(
                source.source_id, currency=currency or NO_CURRENCY, day=day, facts=facts, before_go_live=True,
                why=f"{what} was made before this integration's start on {self.go_live_text()}: booked by hand "
                    "before, nothing booked")
        if status in REFUND_WAITS:
            raise WaitFor(f"{what} is pending at Square: it is booked once completed")
        if status in REFUND_VOID:
            return self.nothing_booked(source.source_id, currency=currency or NO_CURRENCY, day=day, facts=facts,
                                       why=f"{what} is {status}: no money went back, nothing booked")
        if status != "COMPLETED":
            raise SourceDataError(f"{what} has status {status or 'none'}, which Square does not document: not posted")
        record = record_of(self.integration, PaymentSource.name, payment_id)
        if record is not None and record.status == RecordStatus.REJECTED:
            raise SourceDataError(f"payment {payment_id} was rejected, so {what} has nothing to reverse in Visma: "
                                  "reject it too, or book it by hand")
        if record is None or record.status != RecordStatus.POSTED:
            waited_until = created_at + timedelta(hours=int(self.settings.get("refund_wait_hours") or 0))
            state = record.status if record else "not read yet"
            if timezone.now() >= waited_until:
                raise SourceDataError(f"{what}: its payment {payment_id} is still not posted ({state}) "
                                      f"{self.settings.get('refund_wait_hours')} hours after the refund; book the "
                                      "payment first, then replay this refund")
            raise WaitFor(f"payment {payment_id} is not posted yet ({state}); {what} is booked after it (waits "
                          f"until {waited_until:%Y-%m-%d %H:%M} UTC)", on=(PaymentSource.name, payment_id))
        sale = record_posting(record)
        if sale.document != "journal":
            if sale.extra.get("before_go_live"):
                raise SourceDataError(f"{what}: refund of a payment from before the integration's start "
                                      f"({payment_id}): book it by hand")
            if sale.extra.get("left_to") == LEFT_TO_INVOICE_PAYMENTS:
                return self.nothing_booked(
                    source.source_id, currency=currency, day=day, facts=facts, left_to=LEFT_TO_INVOICE_PAYMENTS,
                    left_as=f"{LEFT_TO_INVOICE_PAYMENTS} {payment_id}",
                    why=f"{what} returns a payment of Square invoice {sale.extra.get('square_invoice', '')}: booked "
                        "as a credit note by the invoice payments stream")
            raise SourceDataError(f"{what}: its payment {payment_id} was not booked as a sale ({sale.description})")
        if currency != sale.currency:
            raise SourceDataError(f"{what} is in {currency}, its payment {payment_id} in {sale.currency}")
        amount = square_money(refund.get("amount_money"), field="amount_money", what=what, currency=currency)
        gross, tip = Decimal(sale.extra.get("gross", "0")), Decimal(sale.extra.get("tip", "0"))
        paid = gross + tip
        # Refunds of this payment already booked: together they never return more than was paid.
        earlier = [record_posting(found) for found in SyncRecord.objects.filter(
            integration=self.integration, stream=self.name, status=RecordStatus.POSTED, target_kind="journal",
            source_payload__refund__payment_id=payment_id).exclude(source_id=source.source_id)]
        earlier_amount = quantize(sum((Decimal(found.extra.get("amount", "0")) for found in earlier), Decimal(0)),
                                  currency)
        if amount <= 0 or earlier_amount + amount > paid:
            raise SourceDataError(f"{what} of {amount} {currency} does not fit payment {payment_id} of {paid} "
                                  f"{currency}" + (f" ({earlier_amount} {currency} refunded before)"
                                                   if earlier_amount else ""))
        revenue, tip_back = self._refund_split(amount, gross=gross, tip=tip, currency=currency, earlier=earlier)
        fee = sum((entry["amount"] for entry in square_fee_entries(refund, currency=currency, what=what)), Decimal(0))
        # PaymentRefund.app_fee_money: "the amount of money the application developer contributed to help cover the
        # refunded amount" (api.json): that part does not leave our clearing; it comes back against the fee account,
        # where the payment's application fee was booked.
        app_fee = square_money(refund.get("app_fee_money"), field="app_fee_money", what=what, currency=currency)
        if app_fee > amount:  # api.json RefundPaymentRequest: "cannot be more than the amount_money"
            raise SourceDataError(f"{what}: the developer's contribution {app_fee} {currency} (app_fee_money) is "
                                  f"more than the refund of {amount} {currency}")
        location = sale.extra.get("location", "")
        label = f"Square refund {refund_id}"
        lines = [PostingLine(role="account", debit=revenue, description=f"{label} of {payment_id} · {location}")] \
            if revenue else []
        if tip_back:
            lines.append(PostingLine(role="tip", debit=tip_back, description=f"{label} tip of {payment_id}"))
        if fee < 0:  # Square returned (part of) its fee
            lines.append(PostingLine(role="fee", credit=-fee, description=f"{label} processing fee returned"))
        elif fee > 0:  # Square charged for the refund
            lines.append(PostingLine(role="fee", debit=fee, description=f"{label} processing fee"))
        if app_fee:
            lines.append(PostingLine(role="fee", credit=app_fee,
                                     description=f"{label} application fee: the developer's share of the refund"))
        lines.append(PostingLine(role="clearing", credit=amount + fee - app_fee, description=f"{label} net"))
        return Posting(
            document="journal", marker=self.marker(source.source_id), currency=currency, date=day,
            description=f"Square refund {refund_id} of payment {payment_id} · {location}",
            facts=dataclasses.replace(sale.facts, transaction_type="refund", amount=amount), lines=lines,
            extra={"square_id": refund_id, "payment_id": payment_id, "location_id": sale.extra.get("location_id", ""),
                   "amount": str(amount), "revenue": str(revenue), "tip": str(tip_back), "fee": str(fee),
                   "app_fee": str(app_fee), "payment_target_id": record.target_id,
                   "matched_as": PaymentSource._matched_as(sale)},
        )


    @staticmethod
    def _refund_split(amount: Decimal, *, gross: Decimal, tip: Decimal, currency: str,
                      earlier: list[Posting]) -> tuple[Decimal, Decimal]:
        """(revenue, tip) a refund reverses. Square's refund does not say which part it returns, so it is split in
        the payment's proportion of amount to tip (review finding 9). The split is taken on the running total
        (everything refunded so far, this one included) less what earlier refunds reversed: the rounding never
        drifts, and the refund that brings the total to the payment's reverses exactly what is left of each."""
        paid = gross + tip
        # A refund booked before refunds were split reversed revenue only (its extra has no "revenue").
        revenue_before = sum((Decimal(found.extra.get("revenue", found.extra.get("amount", "0"))) for found in earlier),
                             Decimal(0))
        tip_before = sum((Decimal(found.extra.get("tip", "0")) for found in earlier), Decimal(0))
        refunded = sum((Decimal(found.extra.get("amount", "0")) for found in earlier), Decimal(0)) + amount
        revenue = quantize(refunded * gross / paid, currency) - revenue_before if paid else amount
        # Never more than is left on either account.
        revenue = min(max(revenue, amount - (tip - tip_before)), gross - revenue_before, amount)
        return revenue, amount - revenue


class PaymentsStream(SquareToVisma, PaymentSource):
    """Square payments → Visma journals on the location's cost center (sale, tip, fee, net)."""


class RefundsStream(SquareToVisma, RefundSource):
    """Square refunds → Visma journals reversing the refunded amount on the payment's cost center."""


STREAMS: dict[str, type[Stream]] = {stream.name: stream for stream in (PaymentsStream, RefundsStream)}

__all__ = ["STREAMS", "PaymentsStream", "RefundsStream", "NOTHING_BOOKED", "LEFT_TO_INVOICE_PAYMENTS"]
