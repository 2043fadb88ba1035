"""How the Visma emulator keeps documents: versions (ETag/timeStamp), numbering sequences, delta filters, paging."""
from __future__ import annotations

import base64
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import IntegrityError, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from .models import VismaCounter, VismaDocument, VismaFault
from .openapi import visma_datetime_parse
from .visma_company import visma_invoice_twins_render

# Visma pages list endpoints and silently caps a larger pageSize at this (returned as metadata.maxPageSize).
VISMA_MAX_PAGE_SIZE = 100

# The emulator's own fault codes in the classic error body (Visma publishes only a few, e.g. 12002, 12027).
FAULT_VALIDATION = "10000"
FAULT_NOT_FOUND = "10001"
FAULT_DUPLICATE = "10002"
FAULT_STALE = "10003"
FAULT_COMPANY = "12002"


class VismaError(Exception):
    """An error answer the real Visma.net ERP gives: a status, a JSON body and extra headers."""

    def __init__(self, status: int, body: dict, headers: Mapping[str, str] | None = None):
        super().__init__(body.get("ExceptionMessage") or body.get("message") or str(body))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})

    @classmethod
    def ipp(cls, status: int, message: str, fault_code: str, details: str = "") -> VismaError:
        """The classic Visma.net ERP error body (IPPException)."""
        return cls(
            status,
            {
                "ExceptionType": "IPPException",
                "ExceptionMessage": message,
                "ExceptionFaultCode": fault_code,
                "ExceptionMessageID": f"{fault_code}_{uuid.uuid4()}",
                "ExceptionDetails": details,
            },
        )

    @classmethod
    def invalid(cls, message: str, details: str = "") -> VismaError:
        return cls.ipp(400, message, FAULT_VALIDATION, details)

    @classmethod
    def not_found(cls, message: str) -> VismaError:
        return cls.ipp(404, message, FAULT_NOT_FOUND)


def visma_now() -> datetime:
    """Now in UTC, to the millisecond Visma shows, so a date read back filters exactly."""
    now = timezone.now().astimezone(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def visma_datetime_format(moment: datetime | None) -> str | None:
    """A moment as Visma writes it in read DTOs: UTC, no offset, milliseconds (e.g. 2026-01-05T08:00:00.000)."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def visma_date_format(moment: datetime) -> str:
    """A document date as Visma writes it: midnight, no offset."""
    return moment.strftime("%Y-%m-%dT00:00:00")


def visma_query_datetime(text: str) -> datetime:
    """A date filter from the query, read as UTC (Visma does not say which zone it means)."""
    parsed = visma_datetime_parse(text)
    if parsed is None:
        raise VismaError.invalid(f"'{text}' is not a date in an accepted format")
    return parsed.replace(tzinfo=UTC)


def visma_money(amount: Decimal | float | int | None) -> Decimal:
    """An amount from a DTO as Decimal to the cent (Visma's doubles arrive as JSON numbers)."""
    if amount is None:
        return Decimal("0.00")
    return Decimal(str(amount)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def visma_etag_new() -> str:
    """A new version stamp, shaped like the SQL Server rowversion Visma shows (e.g. AAAAAE0YIiI=)."""
    return base64.b64encode(secrets.token_bytes(8)).decode()


def visma_if_match_matches(if_match: str, etag: str) -> bool:
    """Whether an If-Match header names this version; quoted, unquoted and weak forms are all accepted."""
    candidates = [part.strip() for part in if_match.split(",")]
    for candidate in candidates:
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


def visma_number_next(company_id: str, series: str, *, first: int) -> int:
    """The next number of a company's numbering sequence; atomic across processes."""
    with transaction.atomic():
        counter, _ = VismaCounter.objects.select_for_update().get_or_create(
            company_id=company_id, series=series, defaults={"last_number": first - 1}
        )
        counter.last_number += 1
        counter.save(update_fields=["last_number"])
        return counter.last_number


def visma_number_at_least(company_id: str, series: str, number: int) -> None:
    """Make sure the sequence hands out numbers above `number` (after seeding or a caller-chosen number)."""
    with transaction.atomic():
        counter, created = VismaCounter.objects.select_for_update().get_or_create(
            company_id=company_id, series=series, defaults={"last_number": number}
        )
        if not created and counter.last_number < number:
            counter.last_number = number
            counter.save(update_fields=["last_number"])


def visma_document_find(company_id: str, collection: str, key: str) -> VismaDocument | None:
    return VismaDocument.objects.filter(company_id=company_id, collection=collection, key=key).first()


def visma_document_get(company_id: str, collection: str, key: str, *, label: str) -> VismaDocument:
    document = visma_document_find(company_id, collection, key)
    if document is None:
        raise VismaError.not_found(f"{label} '{key}' was not found.")
    return document


def visma_document_create(
    company_id: str, collection: str, key: str, body: dict, *, label: str, at: datetime | None = None
) -> VismaDocument:
    """Store a new document; a second document with the same key is refused as Visma refuses a duplicate number."""
    moment = at or visma_now()
    try:
        with transaction.atomic():
            return VismaDocument.objects.create(
                company_id=company_id,
                collection=collection,
                key=key,
                body=body,
                etag=visma_etag_new(),
                last_modified=moment,
                created=moment,
            )
    except IntegrityError:
        raise VismaError.ipp(400, f"{label} '{key}' already exists.", FAULT_DUPLICATE) from None


def visma_document_touch(document: VismaDocument, *, at: datetime | None = None) -> VismaDocument:
    """Give a document a new version without changing its content (what another user's save looks like)."""
    document.etag = visma_etag_new()
    document.last_modified = at or visma_now()
    document.save(update_fields=["etag", "last_modified"])
    return document


def visma_fault_take(kind: str) -> VismaFault | None:
    """Use up one call of the oldest switched-on fault of this kind; atomic across processes."""
    for fault in VismaFault.objects.filter(kind=kind, remaining__gt=0).order_by("id"):
        if VismaFault.objects.filter(pk=fault.pk, remaining__gt=0).update(remaining=F("remaining") - 1):
            return fault
    return None


def visma_document_update(
    company_id: str,
    collection: str,
    key: str,
    change: Callable[[dict], dict],
    *,
    label: str,
    if_match: str | None,
    edited_by_others: bool = True,
) -> VismaDocument:
    """Apply `change` to a document under a row lock; a stale If-Match is refused with 412 as Visma does.

    `edited_by_others`: the stale-PUT fault switch may let "another user" save the document first.
    """
    documents = VismaDocument.objects.filter(company_id=company_id, collection=collection, key=key)
    current = documents.first()
    if current is None:
        raise VismaError.not_found(f"{label} '{key}' was not found.")
    # The "other user's" save is committed on its own, so the 412 below does not undo it.
    if edited_by_others and visma_fault_take(VismaFault.Kind.STALE_PUT):
        visma_document_touch(current)
    with transaction.atomic():
        document = documents.select_for_update().first()
        if document is None:
            raise VismaError.not_found(f"{label} '{key}' was not found.")
        if if_match and not visma_if_match_matches(if_match, document.etag):
            raise VismaError.ipp(412, f"{label} version does not match with If-Match header.", FAULT_STALE)
        document.body = change(dict(document.body))
        document.etag = visma_etag_new()
        document.last_modified = visma_now()
        document.save(update_fields=["body", "etag", "last_modified"])
        return document


def visma_document_render(document: VismaDocument, *, metadata: dict | None = None) -> dict:
    """The read DTO: the stored body with the system fields Visma adds (lastModifiedDateTime, timeStamp)."""
    rendered = dict(document.body)
    rendered["lastModifiedDateTime"] = visma_datetime_format(document.last_modified)
    rendered["timeStamp"] = document.etag
    if document.collection == "customer_invoice":
        rendered = visma_invoice_twins_render(rendered)
    if metadata is not None:
        rendered["metadata"] = metadata
    return rendered


@dataclass(frozen=True)
class ListFilter:
    """A query parameter that narrows a list: the body field it compares, or a test on the whole body."""

    lookup: str = ""
    kind: str = "text"  # text | iexact | boolean
    test: Callable[[dict, str], bool] | None = None


@dataclass(frozen=True)
class ListSpec:
    """How one list endpoint filters and pages."""

    collection: str
    filters: Mapping[str, ListFilter] = field(default_factory=dict)
    paged: bool = True
    ignored: frozenset[str] = frozenset({"greaterThanValue", "orderBy"})


DATE_FILTERS = {"lastModifiedDateTime": "last_modified", "createdDateTime": "created"}
CONDITION_LOOKUPS = {">": "gt", "<": "lt", ">=": "gte", "<=": "lte"}


def _query_value(query: Mapping, name: str) -> str | None:
    value = query.get(name)
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return value


def visma_documents_query(company_id: str, spec: ListSpec, query: Mapping) -> tuple[QuerySet, list]:
    """The documents a list request selects, and the tests that must run on the bodies themselves."""
    documents = VismaDocument.objects.filter(company_id=company_id, collection=spec.collection).order_by("id")
    tests = []
    for name in query:
        value = _query_value(query, name)
        if name in DATE_FILTERS:
            condition = _query_value(query, f"{name}Condition") or ">="
            if condition not in CONDITION_LOOKUPS:
                raise VismaError.invalid(f"{name}Condition: '{condition}' is not one of >, <, >=, <=")
            documents = documents.filter(
                **{f"{DATE_FILTERS[name]}__{CONDITION_LOOKUPS[condition]}": visma_query_datetime(value)}
            )
        elif name.endswith("Condition") and name[: -len("Condition")] in DATE_FILTERS:
            continue
        elif name in spec.filters:
            list_filter = spec.filters[name]
            if list_filter.test is not None:
                tests.append((list_filter.test, value))
            elif list_filter.kind == "boolean":
                documents = documents.filter(**{f"body__{list_filter.lookup}": value.lower() == "true"})
            elif list_filter.kind == "iexact":
                documents = documents.filter(**{f"body__{list_filter.lookup}__iexact": value})
            else:
                documents = documents.filter(**{f"body__{list_filter.lookup}": value})
        elif name in ("pageNumber", "pageSize", "numberToRead", "skipRecords"):
            continue
        elif name in spec.ignored or name.startswith("expand") or name.startswith("include"):
            continue
        else:
            raise VismaError.invalid(
                f"{name}: the Visma sandbox does not emulate this filter; remove it or extend sandbox/visma_erp.py"
            )
    return documents, tests


@dataclass(frozen=True)
class Page:
    """One page of a list and the numbers Visma reports with it."""

    documents: list[VismaDocument]
    total_count: int
    max_page_size: int = VISMA_MAX_PAGE_SIZE

    @property
    def metadata(self) -> dict:
        return {"totalCount": self.total_count, "maxPageSize": self.max_page_size}


def visma_page_window(query: Mapping, *, total: int, paged: bool) -> tuple[int, int]:
    """(offset, size) of the requested page: pageNumber/pageSize (1-based, size capped at the maximum, page 1 of
    the maximum when absent) on paged endpoints, else the deprecated skipRecords/numberToRead (default: all)."""
    page_number = _query_value(query, "pageNumber")
    page_size = _query_value(query, "pageSize")
    if paged and (page_number is not None or page_size is not None or _query_value(query, "numberToRead") is None):
        number = max(int(page_number or 1), 1)
        size = min(max(int(page_size or VISMA_MAX_PAGE_SIZE), 1), VISMA_MAX_PAGE_SIZE)
        return (number - 1) * size, size
    skip = max(int(_query_value(query, "skipRecords") or 0), 0)
    number_to_read = _query_value(query, "numberToRead")
    return skip, int(number_to_read) if number_to_read is not None else max(total - skip, 0)


def visma_documents_page(company_id: str, spec: ListSpec, query: Mapping) -> Page:
    """The page of documents a list request asks for, with the total count before paging."""
    documents, tests = visma_documents_query(company_id, spec, query)
    if tests:
        selected: list | QuerySet = [
            document for document in documents if all(test(document.body, value) for test, value in tests)
        ]
        total = len(selected)
    else:
        selected = documents
        total = documents.count()
    offset, size = visma_page_window(query, total=total, paged=spec.paged)
    return Page(documents=list(selected[offset : offset + size]), total_count=total)


def visma_documents_all(company_id: str, collection: str) -> QuerySet:
    return VismaDocument.objects.filter(company_id=company_id, collection=collection)
