"""Exports of moved records (CSV and JSON), streamed row by row: amounts as exact strings, times in UTC."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TextIO

from django.db.models import QuerySet

from mappings.money import MoneyError, is_exact, quantize

from .models import SyncRecord

EXPORT_FORMATS = ("csv", "json")
CHUNK_SIZE = 2000


@dataclass(frozen=True)
class RecordExportRow:
    """One record as finance reads it in an export."""

    integration: str
    stream: str
    source_id: str
    target_id: str
    status: str
    amount: str | None
    currency: str
    reasons: list[str]
    updated_at: str

    @classmethod
    def columns(cls) -> list[str]:
        return list(cls.__dataclass_fields__)

    def csv_values(self) -> list[str]:
        values = asdict(self)
        values["reasons"] = "; ".join(self.reasons)
        values["amount"] = self.amount or ""
        return [values[column] for column in self.columns()]


def _amount_text(amount: Decimal | None, currency: str) -> str | None:
    """The amount in the currency's own decimals when that loses nothing (100.0000 EUR → "100.00")."""
    if amount is None:
        return None
    try:
        if is_exact(amount, currency):
            return str(quantize(amount, currency))
    except MoneyError:
        pass
    return str(amount)


def _utc_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def sync_records_for_export(*, tenant) -> QuerySet[SyncRecord]:
    """Every record of a tenant, oldest first."""
    return SyncRecord.objects.filter(integration__tenant=tenant).order_by("id")


def sync_record_export_rows(records: QuerySet[SyncRecord]) -> Iterator[RecordExportRow]:
    """Rows for any selection of records, read in chunks (never the whole table in memory)."""
    fields = ("integration__kind", "stream", "source_id", "target_id", "status", "amount", "currency", "reasons",
              "updated_at")
    for kind, stream, source_id, target_id, status, amount, currency, reasons, updated_at in (
        records.values_list(*fields).iterator(chunk_size=CHUNK_SIZE)
    ):
        yield RecordExportRow(
            integration=kind, stream=stream, source_id=source_id, target_id=target_id, status=status,
            amount=_amount_text(amount, currency), currency=currency, reasons=[str(reason) for reason in reasons or []],
            updated_at=_utc_text(updated_at),
        )


def records_csv(rows: Iterable[RecordExportRow]) -> Iterator[str]:
    """CSV text, a header then one line per row (RFC 4180 line ends), in chunks fit for a streaming response."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(RecordExportRow.columns())
    for row in rows:
        writer.writerow(row.csv_values())
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def records_json(rows: Iterable[RecordExportRow]) -> Iterator[str]:
    """A JSON array, one object per line, in chunks fit for a streaming response."""
    yield "["
    separator = "\n"
    for row in rows:
        yield separator + json.dumps(asdict(row), ensure_ascii=False)
        separator = ",\n"
    yield "\n]\n"


def sync_records_export(records: QuerySet[SyncRecord], *, output: TextIO, export_format: str = "csv") -> int:
    """Write the records to `output` as CSV or JSON; returns how many rows were written."""
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {export_format!r}; choose {' or '.join(EXPORT_FORMATS)}")
    written = 0

    def counted() -> Iterator[RecordExportRow]:
        nonlocal written
        for row in sync_record_export_rows(records):
            written += 1
            yield row

    for chunk in (records_csv if export_format == "csv" else records_json)(counted()):
        output.write(chunk)
    return written
