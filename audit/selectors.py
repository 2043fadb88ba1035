"""Reads for the admin: the review screen of one record (posting, trail, exchanges) and the dashboard's figures."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from connectors.models import HttpExchange, InboundEvent, SyncRun
from mappings.documents import NOTHING_BOOKED, Posting, posting_apply_correction
from mappings.money import MoneyError, quantize

from .models import AuditEntry, RecordStatus, SyncRecord
from .services import ALLOWED_TRANSITIONS


def json_pretty(value) -> str:
    """JSON indented for reading; a text that is not JSON comes back as it is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def money_display(amount: Decimal | None, currency: str) -> str:
    """`1234.5000 EUR` → `1234.50 EUR`: the amount at the currency's own precision."""
    if amount is None:
        return ""
    try:
        amount = quantize(amount, currency)
    except MoneyError:
        pass
    return f"{amount} {currency}".strip()


# --- the posting as a table ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostingLineRow:
    role: str
    account: str
    dimensions: dict[str, str]
    debit: Decimal
    credit: Decimal
    description: str
    account_corrected: bool = False
    dimensions_corrected: bool = False


@dataclass(frozen=True)
class PostingTable:
    """A posting laid out for a person: one row per line, the totals, and whether it balances."""

    document: str
    marker: str
    currency: str
    date: str
    description: str
    customer: str
    supplier: str
    rule: str
    lines: list[PostingLineRow]
    total_debit: Decimal
    total_credit: Decimal
    is_balanced: bool
    customer_corrected: bool = False


def posting_table(posting_json: dict | None, correction: dict | None = None) -> PostingTable | None:
    """The proposed posting (or, with `correction`, the posting as it will be written); None when unreadable."""
    if not posting_json:
        return None
    try:
        proposed = Posting.from_json(posting_json)
        posting = posting_apply_correction(Posting.from_json(posting_json), correction)
    except (KeyError, TypeError, ValueError, InvalidOperation):
        return None
    rows = [
        PostingLineRow(
            role=line.role, account=line.account, dimensions=dict(sorted(line.dimensions.items())),
            debit=line.debit, credit=line.credit, description=line.description,
            account_corrected=bool(correction) and line.account != before.account,
            dimensions_corrected=bool(correction) and line.dimensions != before.dimensions,
        )
        for line, before in zip(posting.lines, proposed.lines, strict=True)
    ]
    return PostingTable(
        document=posting.document, marker=posting.marker, currency=posting.currency,
        date=posting.date.isoformat(), description=posting.description, customer=posting.customer,
        supplier=posting.supplier, rule=posting.rule, lines=rows, total_debit=posting.total_debit,
        total_credit=posting.total_credit, is_balanced=posting.is_balanced,
        customer_corrected=bool(correction) and posting.customer != proposed.customer,
    )


# --- one record, everything a reviewer needs ------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeRow:
    exchange: HttpExchange
    request_body: str
    response_body: str


@dataclass(frozen=True)
class RecordReview:
    record: SyncRecord
    amount: str
    reasons: list[str]
    payload: str
    proposed: PostingTable | None
    proposed_raw: str
    corrected: PostingTable | None
    correction: str
    trail: list[AuditEntry]
    exchanges: list[ExchangeRow]
    can_approve: bool
    can_reject: bool
    can_replay: bool
    can_check_duplicate: bool = False


def record_can(record: SyncRecord, to_status: str) -> bool:
    """Whether the record's state allows the move at all (the service still decides, under its lock)."""
    return to_status in ALLOWED_TRANSITIONS[record.status]


def record_audit_trail(record: SyncRecord) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(sync_record=record).select_related("user").order_by("created_at", "id"))


def record_http_exchanges(record: SyncRecord) -> list[HttpExchange]:
    exchanges = HttpExchange.objects.filter(sync_record=record).select_related("connection__tenant")
    return list(exchanges.order_by("created_at", "id"))


def record_review(record: SyncRecord, *, user) -> RecordReview:
    """The review screen of one record: why it stopped, what it would post, what happened to it, and its calls."""
    may_review = user.has_perm("audit.review_syncrecord")
    may_replay = user.has_perm("audit.replay_syncrecord")
    return RecordReview(
        record=record,
        amount=money_display(record.amount, record.currency),
        reasons=[str(reason) for reason in (record.reasons or [])],
        payload=json_pretty(record.source_payload),
        proposed=posting_table(record.proposed_posting),
        proposed_raw=json_pretty(record.proposed_posting) if record.proposed_posting else "",
        corrected=(posting_table(record.proposed_posting, record.corrected_posting)
                   if record.corrected_posting else None),
        correction=json_pretty(record.corrected_posting) if record.corrected_posting else "",
        trail=record_audit_trail(record),
        exchanges=[
            ExchangeRow(exchange, json_pretty(exchange.request_body), json_pretty(exchange.response_body))
            for exchange in record_http_exchanges(record)
        ],
        # Without a proposed posting there is nothing to approve: the source has to be fixed and replayed.
        can_approve=may_review and record_can(record, RecordStatus.APPROVED) and bool(record.proposed_posting),
        can_reject=may_review and record_can(record, RecordStatus.REJECTED),
        can_replay=may_replay and record_can(record, RecordStatus.RECEIVED),
        can_check_duplicate=may_review and bool(record.duplicate_targets),
    )


# --- the dashboard --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCount:
    status: str
    label: str
    count: int


@dataclass(frozen=True)
class WaitingRow:
    """A record waiting on another (or on its source): what for, and for how long."""

    record: SyncRecord
    age: timedelta
    waiting_for: str

    @property
    def age_display(self) -> str:
        minutes = int(self.age.total_seconds() // 60)
        if minutes < 60:
            return f"{minutes} min"
        hours, minutes = divmod(minutes, 60)
        return f"{hours} h {minutes:02d} min" if hours < 48 else f"{hours // 24} days"


def records_waiting(*, limit: int = 10) -> list[WaitingRow]:
    """The records waiting longest, oldest first."""
    now = timezone.now()
    records = (SyncRecord.objects.filter(status=RecordStatus.WAITING).select_related("integration__tenant")
               .order_by("waiting_since", "pk")[:limit])
    return [
        WaitingRow(record=record, age=now - (record.waiting_since or record.updated_at),
                   waiting_for=(f"{record.waiting_on_stream} {record.waiting_on_source_id}"
                                if record.waiting_on_stream else "the source system"))
        for record in records
    ]


@dataclass(frozen=True)
class Dashboard:
    """What the admin's front page shows; a section is None when the user may not see what it counts."""

    record_counts: list[StatusCount] | None = None
    flagged: int = 0
    possible_duplicates: int = 0
    waiting: list[WaitingRow] = field(default_factory=list)
    failed_inbound_events: int | None = None
    latest_failed_events: list[InboundEvent] = field(default_factory=list)
    last_sync_runs: list[SyncRun] | None = None


def records_count_by_status() -> list[StatusCount]:
    """Every status, in the record's life order, with how many records are in it (zeros included)."""
    counts = dict(SyncRecord.objects.order_by().values_list("status").annotate(n=Count("id")))
    return [StatusCount(status, label, counts.get(status, 0)) for status, label in RecordStatus.choices]


def inbound_events_failed() -> tuple[int, list[InboundEvent]]:
    failed = InboundEvent.objects.filter(status=InboundEvent.Status.FAILED)
    latest = list(failed.select_related("integration__tenant").order_by("-received_at")[:5])
    return failed.count(), latest


def sync_runs_last_per_stream(limit: int = 20) -> list[SyncRun]:
    """The newest run of each integration's stream, newest first: how every poller did last time."""
    newest = SyncRun.objects.filter(integration=OuterRef("integration"), stream=OuterRef("stream")).order_by(
        "-started_at", "-id"
    )
    return list(
        SyncRun.objects.filter(pk=Subquery(newest.values("pk")[:1]))
        .select_related("integration__tenant")
        .order_by("-started_at", "-id")[:limit]
    )


def dashboard_for(user) -> Dashboard:
    """The dashboard sections this user may see, filled in."""
    may_see_records = user.has_perm("audit.view_syncrecord")
    record_counts = records_count_by_status() if may_see_records else None
    failed_events, latest_failed = (
        inbound_events_failed() if user.has_perm("connectors.view_inboundevent") else (None, [])
    )
    return Dashboard(
        record_counts=record_counts,
        flagged=next((row.count for row in record_counts or [] if row.status == RecordStatus.FLAGGED), 0),
        possible_duplicates=SyncRecord.objects.exclude(duplicate_targets=[]).count() if may_see_records else 0,
        waiting=records_waiting() if may_see_records else [],
        failed_inbound_events=failed_events,
        latest_failed_events=latest_failed,
        last_sync_runs=sync_runs_last_per_stream() if user.has_perm("connectors.view_syncrun") else None,
    )


@dataclass(frozen=True)
class StreamStatusCount:
    kind: str
    stream: str
    status: str
    count: int


# A posted record whose posting books nothing (a payment Square canceled before it was booked, a payment another
# stream books as an invoice's customer payment): settled, but no document of its own. Counted apart, after posted.
SETTLED_NOTHING_BOOKED = "nothing booked"
# The order counts are shown in: the record's life, with those that booked nothing right after the posted ones.
COUNT_ORDER = [*RecordStatus.values[:RecordStatus.values.index(RecordStatus.POSTED) + 1], SETTLED_NOTHING_BOOKED,
               *RecordStatus.values[RecordStatus.values.index(RecordStatus.POSTED) + 1:]]


def tenant_records_count_by_stream(tenant) -> list[StreamStatusCount]:
    """How many of one tenant's records each integration's stream holds in each status (non-zero only), by kind,
    stream, then the record's life order; posted records that book nothing are counted as SETTLED_NOTHING_BOOKED."""
    rows = (
        SyncRecord.objects.filter(integration__tenant=tenant)
        .order_by()
        .values_list("integration__kind", "stream", "status")
        .annotate(n=Count("id"), nothing=Count("id", filter=Q(status=RecordStatus.POSTED,
                                                              proposed_posting__document=NOTHING_BOOKED)))
    )
    life_order = {status: position for position, status in enumerate(COUNT_ORDER)}
    counts = []
    for kind, stream, status, count, nothing in rows:
        if count - nothing:
            counts.append(StreamStatusCount(kind, stream, status, count - nothing))
        if nothing:
            counts.append(StreamStatusCount(kind, stream, SETTLED_NOTHING_BOOKED, nothing))
    return sorted(counts, key=lambda row: (row.kind, row.stream, life_order[row.status]))


# --- what streams read of other records -----------------------------------------------------------------------


def record_of(integration, stream: str, source_id: str) -> SyncRecord | None:
    """The record of one source object of an integration's stream, if it was received."""
    return SyncRecord.objects.filter(integration=integration, stream=stream, source_id=source_id).first()


def records_final(integration, stream: str, source_ids: list[str]) -> dict[str, SyncRecord]:
    """Records of these source objects that will not change any more (posted, rejected), by source id."""
    records = SyncRecord.objects.filter(
        integration=integration, stream=stream, source_id__in=source_ids,
        status__in=[RecordStatus.POSTED, RecordStatus.REJECTED],
    ).only("source_id", "source_payload", "source_updated_at", "amount", "currency", "status", "target_id")
    return {record.source_id: record for record in records}


def record_posting(record: SyncRecord) -> Posting:
    """The posting a record was (or will be) written as: the proposed one with a person's corrections."""
    return posting_apply_correction(Posting.from_json(record.proposed_posting), record.corrected_posting)


def records_marked_since(tenant, since) -> list[SyncRecord]:
    """The tenant's records that carry a marker and changed since `since`: what the duplicate check matches."""
    return list(SyncRecord.objects.filter(integration__tenant=tenant, updated_at__gte=since).exclude(
        posting_marker="").select_related("integration"))


def record_claim_times(record: SyncRecord, *, first: int = 2) -> list:
    """When the record's write was claimed (moved into `posting`), oldest first, at most `first` of them."""
    return list(AuditEntry.objects.filter(sync_record=record, to_status=RecordStatus.POSTING)
                .order_by("created_at", "id").values_list("created_at", flat=True)[:first])
