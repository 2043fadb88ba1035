"""The check for documents in Visma that carry the same marker: a duplicate that slipped through is seen the same day.

Every posting writes its marker where Visma keeps it (journal line referenceNumber, invoice externalReference,
payment paymentRef, supplier invoice supplierReference). The check lists what changed in Visma over the last hours,
groups the documents by marker, and shows finance each record whose marker two documents of one kind carry.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audit.models import SyncRecord
from audit.selectors import record_posting, records_marked_since
from audit.services import record_possible_duplicate

from . import postings
from .client import DELTA_OVERLAP, VismaClient, visma_client_for, visma_datetime

log = logging.getLogger(__name__)

# kind, list path, extra filters, where the marker is, the document's id. (Journals are read apart: their marker is
# on each line.) Lists filtered by lastModifiedDateTime (spec: each is "Delta").
MARKED_LISTS = (
    ("customer_invoice", postings.CUSTOMER_INVOICES, {}, "externalReference", "referenceNumber"),
    ("customer_payment", postings.CUSTOMER_PAYMENTS, {}, "paymentRef", "refNbr"),
    ("supplier_invoice", postings.SUPPLIER_INVOICES, {}, "supplierReference", "referenceNumber"),
    ("supplier_payment", postings.SUPPLIER_PAYMENTS, {}, "paymentRef", "refNbr"),
)


@dataclass(frozen=True)
class MarkedDocument:
    kind: str
    number: str
    marker: str


def visma_marked_documents(client: VismaClient, *, since: datetime) -> Iterator[MarkedDocument]:
    """Every document changed in Visma since `since` that carries a marker, once per (kind, number, marker)."""
    seen: set[tuple[str, str, str]] = set()
    params = {"module": "GL", "lastModifiedDateTime": visma_datetime(since)}
    for batch in postings.visma_journal_batches(client, params):
        for line in batch.get("journalTransactionLines") or []:
            document = MarkedDocument("journal", str(batch.get("batchNumber")), str(line.get("referenceNumber") or ""))
            if document.marker and (document.kind, document.number, document.marker) not in seen:
                seen.add((document.kind, document.number, document.marker))
                yield document
    for kind, path, filters, marker_field, id_field in MARKED_LISTS:
        for row in client.changed(path, since=since, key=id_field, overlap=timedelta(0), params=filters):
            document = MarkedDocument(kind, str(row.get(id_field)), str(row.get(marker_field) or ""))
            if document.marker and (document.kind, document.number, document.marker) not in seen:
                seen.add((document.kind, document.number, document.marker))
                yield document


def _record_markers(tenant, *, since: datetime) -> dict[str, SyncRecord]:
    """The records of a tenant changed since `since`, by every marker they write (a payment's fee journal has its
    own)."""
    by_marker: dict[str, SyncRecord] = {}
    for record in records_marked_since(tenant, since):
        by_marker[record.posting_marker] = record
        if record.proposed_posting and record.proposed_posting.get("document") == "customer_payment":
            fee_journal = postings.visma_fee_journal(record_posting(record))
            if fee_journal is not None:
                by_marker.setdefault(fee_journal.marker, record)
    return by_marker


def visma_duplicates_check(tenant, *, hours: float | None = None, client: VismaClient | None = None
                           ) -> list[SyncRecord]:
    """Find documents of one kind in the tenant's Visma that share a marker, and show each on its record as a
    possible duplicate (audited with every document number). Returns the records newly shown."""
    hours = hours if hours is not None else settings.VISMA_DUPLICATE_CHECK_HOURS
    # Visma does not say which zone lastModifiedDateTime is in: the read reaches further back than asked.
    since = timezone.now() - timedelta(hours=hours)
    own_client = client is None
    client = client or visma_client_for(tenant)
    try:
        documents: dict[tuple[str, str], set[str]] = defaultdict(set)
        for document in visma_marked_documents(client, since=since - DELTA_OVERLAP):
            documents[(document.kind, document.marker)].add(document.number)
    finally:
        if own_client:
            client.close()
    shared = {key: numbers for key, numbers in documents.items() if len(numbers) > 1}
    if not shared:
        return []
    markers = _record_markers(tenant, since=since - timedelta(days=31))
    shown = []
    for (kind, marker), numbers in sorted(shared.items()):
        record = markers.get(marker)
        if record is None:
            log.warning("Visma %s %s share marker %s, which no record of %s wrote", kind, sorted(numbers), marker,
                        tenant)
            continue
        # The record's own document is not a duplicate of itself (a payment's target id names its fee journal too).
        ours = set(record.target_id.replace("+", " ").split())
        listed = " and ".join(sorted(numbers))
        updated = record_possible_duplicate(
            record, target_ids=sorted(numbers - ours),
            reason=f"possible duplicate in Visma: {kind} {listed} carry the same marker {marker}; check them and "
                   "reverse the one that should not be there",
            details={"kind": kind, "marker": marker, "documents": sorted(numbers)},
        )
        if updated.duplicate_targets != record.duplicate_targets:
            shown.append(updated)
    return shown
