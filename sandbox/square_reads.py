"""The Square emulator's read endpoints: locations, payments, refunds (and their lists' filters, sorting, limits and
cursors), as api.json and docs/square.md §5 describe them."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from .models import SquareMerchant, SquareObject
from .square_api import (
    SquareApiError,
    square_now,
    square_object,
    square_object_required,
    square_objects,
    square_public,
    square_time_parse,
)

SortKey = tuple[datetime | str, str]  # (the sort field's value, the object's id as tie-break)


# --- cursors ------------------------------------------------------------------------------------------------------


def _query_digest(query: Mapping[str, Any]) -> str:
    original = {name: value for name, value in query.items() if name != "cursor"}
    return hashlib.sha256(json.dumps(original, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cursor_read(query: Mapping[str, Any], started_at: datetime) -> tuple[SortKey | None, datetime]:
    """(the last key the previous page gave, when the walk started) from the query's `cursor`. A cursor is only good
    with the query it came from ("you must use the original query": docs/square.md §5): else 400 INVALID_CURSOR."""
    cursor = query.get("cursor")
    if not cursor:
        return None, started_at
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4)))
        kind, value, object_id = state["after"]
        after = (datetime.fromisoformat(value) if kind == "time" else str(value), str(object_id))
        started = datetime.fromisoformat(state["started"])
        digest = state["query"]
    except (ValueError, KeyError, TypeError, IndexError, AttributeError, binascii.Error, UnicodeDecodeError):
        raise SquareApiError(400, "INVALID_CURSOR", "The pagination cursor included in the request is invalid.",
                             field="cursor") from None
    if digest != _query_digest(query):
        raise SquareApiError(400, "INVALID_CURSOR", "The pagination cursor can only be used with the original "
                                                    "query.", field="cursor")
    return after, started


def page_cut(items: list[tuple[SortKey, dict]], query: Mapping[str, Any], *, limit: int, descending: bool,
             after: SortKey | None, started_at: datetime) -> tuple[list[dict], str | None]:
    """One page of `items` (sorted here) after the cursor's key, and the cursor for the next, or None at the end."""
    items = sorted(items, key=lambda item: item[0], reverse=descending)
    if after is not None:
        items = [item for item in items if (item[0] < after if descending else item[0] > after)]
    page, rest = items[:limit], items[limit:]
    if not rest:
        return [body for _, body in page], None
    last = page[-1][0]
    value = ["time", last[0].isoformat()] if isinstance(last[0], datetime) else ["text", last[0]]
    state = {"query": _query_digest(query), "after": [*value, last[1]], "started": started_at.isoformat()}
    return [body for _, body in page], base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def _answer(key: str, bodies: list[dict], cursor: str | None) -> dict:
    # An empty list is answered as {} (Square omits empty fields; the SDK pager stops when `cursor` is absent).
    answer: dict[str, Any] = {}
    if bodies:
        answer[key] = [square_public(body) for body in bodies]
    if cursor:
        answer["cursor"] = cursor
    return answer


def _limit(query: Mapping[str, Any], *, maximum: int, default: int | None = None, ignore_larger: bool = False) -> int:
    raw = query.get("limit")
    if raw in (None, ""):
        return default or maximum
    value = int(raw)
    if value < 1:
        raise SquareApiError(400, "VALUE_TOO_LOW", f"`limit` must be at least 1, not {value}.", field="limit")
    if value > maximum:
        if ignore_larger:
            return default or maximum
        raise SquareApiError(400, "VALUE_TOO_HIGH", f"`limit` must be at most {maximum}, not {value}.",
                             field="limit")
    return value


def _sort_order(query: Mapping[str, Any], name: str = "sort_order") -> bool:
    """True for DESC (the default of ListPayments and ListPaymentRefunds: spec)."""
    value = query.get(name) or "DESC"
    if value not in ("ASC", "DESC"):
        raise SquareApiError(400, "INVALID_SORT_ORDER", f"`{name}` must be ASC or DESC, not `{value}`.", field=name)
    return value == "DESC"


def _time(body: dict, field: str) -> datetime:
    return datetime.fromisoformat(body[field])


def _window(query: Mapping[str, Any], begin: str, end: str, *, default_begin: datetime | None,
            default_end: datetime | None) -> tuple[datetime | None, datetime | None]:
    start = square_time_parse(query[begin], begin) if query.get(begin) else default_begin
    stop = square_time_parse(query[end], end) if query.get(end) else default_end
    if start and stop and start > stop:
        raise SquareApiError(400, "INVALID_TIME_RANGE", f"`{begin}` is after `{end}`.", field=begin)
    return start, stop


def _in_window(moment: datetime, start: datetime | None, stop: datetime | None) -> bool:
    # begin inclusive (spec ListPayments.begin_time "Inclusive"); the end is read as inclusive too.
    return (start is None or moment >= start) and (stop is None or moment <= stop)


# --- locations ----------------------------------------------------------------------------------------------------


def locations_list(merchant: SquareMerchant) -> dict:
    """ListLocations: every location, inactive ones included, alphabetical by name, no pagination (spec)."""
    return {"locations": sorted(square_objects(merchant, "location"), key=lambda body: body["name"])}


def location_retrieve(merchant: SquareMerchant, location_id: str) -> dict:
    """RetrieveLocation: `main` is the main location (spec RetrieveLocation.location_id)."""
    return {"location": square_object_required(
        merchant, "location", merchant.main_location_id if location_id == "main" else location_id)}


def _location_known(merchant: SquareMerchant, location_id: str) -> None:
    # What Square answers for a location of another seller is not documented; the emulator refuses it (stricter).
    if square_object(merchant, "location", location_id) is None:
        raise SquareApiError(404, "NOT_FOUND", f"Location `{location_id}` not found.", field="location_id")


# --- payments and refunds -----------------------------------------------------------------------------------------


def _time_listing(merchant: SquareMerchant, object_type: str, query: Mapping[str, Any], *,
                  keep: Callable[[dict], bool], sort_fields: Mapping[str, str]) -> tuple[list[dict], str | None]:
    """ListPayments / ListPaymentRefunds: `begin_time`/`end_time` on created_at (default now − 1 year / now),
    `updated_at_begin_time`/`updated_at_end_time` on updated_at, `sort_field`, `sort_order` (default DESC), `limit`
    ≤100 (a larger one is ignored: 100), cursor; a new object appears only after the list delay (spec: "Results are
    eventually consistent")."""
    now = square_now(merchant)
    after, started = cursor_read(query, now)
    limit = _limit(query, maximum=100, ignore_larger=True)
    descending = _sort_order(query)
    sort_field = sort_fields[query.get("sort_field") or "CREATED_AT"]
    created_from, created_to = _window(query, "begin_time", "end_time", default_begin=started - timedelta(days=365),
                                       default_end=started)
    updated_from, updated_to = _window(query, "updated_at_begin_time", "updated_at_end_time", default_begin=None,
                                       default_end=None)
    items = []
    for body in square_objects(merchant, object_type, listed_at=now):
        if not keep(body):
            continue
        if not _in_window(_time(body, "created_at"), created_from, created_to):
            continue
        if not _in_window(_time(body, "updated_at"), updated_from, updated_to):
            continue
        items.append(((_time(body, sort_field), body["id"]), body))
    return page_cut(items, query, limit=limit, descending=descending, after=after, started_at=started)


def payments_list(merchant: SquareMerchant, query: Mapping[str, Any]) -> dict:
    """ListPayments: only the MAIN location unless `location_id` names another ("By default, results are returned
    for the default (main) location": spec ListPayments.location_id); `total`, `last_4`, `card_brand` filters."""
    location_id = query.get("location_id") or merchant.main_location_id
    _location_known(merchant, location_id)

    def keep(body: dict) -> bool:
        card = (body.get("card_details") or {}).get("card") or {}
        return (body["location_id"] == location_id
                and (not query.get("total") or body["total_money"]["amount"] == int(query["total"]))
                and (not query.get("last_4") or card.get("last_4") == query["last_4"])
                and (not query.get("card_brand") or card.get("card_brand") == query["card_brand"]))

    # OFFLINE_CREATED_AT: the emulator has no offline payments, so it sorts as created_at.
    bodies, cursor = _time_listing(merchant, "payment", query, keep=keep, sort_fields={
        "CREATED_AT": "created_at", "OFFLINE_CREATED_AT": "created_at", "UPDATED_AT": "updated_at"})
    return _answer("payments", bodies, cursor)


def payment_retrieve(merchant: SquareMerchant, payment_id: str) -> dict:
    """GetPayment: at once, lists' delay or not."""
    return {"payment": square_public(square_object_required(merchant, "payment", payment_id))}


def refunds_list(merchant: SquareMerchant, query: Mapping[str, Any]) -> dict:
    """ListPaymentRefunds: ALL locations unless `location_id` is given (spec ListPaymentRefunds.location_id, unlike
    ListPayments); `status` and `source_type` filters; `updated_at_begin_time` absent → from begin_time."""
    location_id = query.get("location_id")
    if location_id:
        _location_known(merchant, location_id)
    if query.get("sort_field") not in (None, "", "CREATED_AT", "UPDATED_AT"):
        raise SquareApiError(400, "INVALID_ENUM_VALUE", "`sort_field` must be CREATED_AT or UPDATED_AT.",
                             field="sort_field")

    def keep(body: dict) -> bool:
        return ((not location_id or body["location_id"] == location_id)
                and (not query.get("status") or body["status"] == query["status"])
                and (not query.get("source_type") or _refund_source_type(merchant, body) == query["source_type"]))

    bodies, cursor = _time_listing(merchant, "refund", query, keep=keep,
                                   sort_fields={"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"})
    return _answer("refunds", bodies, cursor)


def _refund_source_type(merchant: SquareMerchant, refund: Mapping[str, Any]) -> str:
    """The source type ListPaymentRefunds' `source_type` filters on: that of the refund's payment ("only returns
    refunds whose payments have the indicated source type", spec ListPaymentRefunds.source_type), not the refund's
    destination_type (a card sale can be refunded in cash)."""
    payment = square_object(merchant, "payment", str(refund.get("payment_id") or ""))
    return str((payment or {}).get("source_type") or "")


def refund_retrieve(merchant: SquareMerchant, refund_id: str) -> dict:
    return {"refund": square_public(square_object_required(merchant, "refund", refund_id))}


# --- orders -------------------------------------------------------------------------------------------------------

ORDER_TIME_FIELDS = {"created_at": "CREATED_AT", "updated_at": "UPDATED_AT", "closed_at": "CLOSED_AT"}


def order_retrieve(merchant: SquareMerchant, order_id: str) -> dict:
    return {"order": square_public(square_object_required(merchant, "order", order_id))}


def orders_batch_retrieve(merchant: SquareMerchant, body: Mapping[str, Any]) -> dict:
    """BatchRetrieveOrders: the orders found, in the order asked; ids not found are left out (spec)."""
    orders = []
    for order_id in body.get("order_ids", []):
        order = square_object(merchant, "order", order_id)
        if order is not None and body.get("location_id") in (None, order["location_id"]):
            orders.append(square_public(order))
    return {"orders": orders} if orders else {}


def orders_search(merchant: SquareMerchant, body: Mapping[str, Any]) -> dict:
    """SearchOrders (spec SearchOrdersRequest, docs/square.md §5): 1 to 10 location_ids ("Max: 10", prose only, so
    checked here); one date_time_filter field, and sort_field the same field or 400; CLOSED_AT needs a state_filter of
    closed states; limit default 500, at most 1000; cursor only with the original query; an absent end_at is the time
    of the first request of the walk; `return_entries` → OrderEntry stubs."""
    location_ids = body.get("location_ids") or []
    if not location_ids:
        raise SquareApiError(400, "MISSING_REQUIRED_PARAMETER", "`location_ids` must name at least one location.",
                             field="location_ids")
    if len(location_ids) > 10:
        raise SquareApiError(400, "ARRAY_LENGTH_TOO_LONG", "`location_ids` can name at most 10 locations.",
                             field="location_ids")
    for location_id in location_ids:
        _location_known(merchant, location_id)
    query = body.get("query") or {}
    filters = query.get("filter") or {}
    sort = query.get("sort") or {}
    sort_field = sort.get("sort_field", "CREATED_AT")
    descending = _sort_order(sort, "sort_order")
    time_filters = {name: window for name, window in (filters.get("date_time_filter") or {}).items() if window}
    if len(time_filters) > 1:
        raise SquareApiError(400, "BAD_REQUEST", "`date_time_filter` takes only one time range at a time.",
                             field="query.filter.date_time_filter")
    for name in time_filters:
        if ORDER_TIME_FIELDS[name] != sort_field:
            raise SquareApiError(400, "BAD_REQUEST", f"A `date_time_filter` on `{name}` needs `sort_field` "
                                                     f"{ORDER_TIME_FIELDS[name]}, not {sort_field}.",
                                 field="query.sort.sort_field")
    states = (filters.get("state_filter") or {}).get("states") or []
    if sort_field == "CLOSED_AT" and (not states or set(states) - {"COMPLETED", "CANCELED"}):
        raise SquareApiError(400, "BAD_REQUEST", "Sorting or filtering on closed_at needs a `state_filter` of "
                                                 "COMPLETED or CANCELED.", field="query.filter.state_filter")
    for unsupported in ("fulfillment_filter",):
        if filters.get(unsupported):
            raise SquareApiError(400, "BAD_REQUEST", f"The sandbox does not emulate `{unsupported}`.",
                                 field=f"query.filter.{unsupported}")
    limit = body.get("limit") or 500
    if not 1 <= limit <= 1000:
        raise SquareApiError(400, "VALUE_TOO_HIGH" if limit > 1000 else "VALUE_TOO_LOW",
                             "`limit` must be between 1 and 1000.", field="limit")
    now = square_now(merchant)
    after, started = cursor_read(body, now)
    windows = {name: (square_time_parse(window["start_at"], f"{name}.start_at") if window.get("start_at") else None,
                      square_time_parse(window["end_at"], f"{name}.end_at") if window.get("end_at") else started)
               for name, window in time_filters.items()}
    customers = set((filters.get("customer_filter") or {}).get("customer_ids") or [])
    sources = set((filters.get("source_filter") or {}).get("source_names") or [])
    sort_key = {value: name for name, value in ORDER_TIME_FIELDS.items()}[sort_field]
    items = []
    for order in square_objects(merchant, "order"):
        if order["location_id"] not in location_ids or (states and order["state"] not in states):
            continue
        if (customers and order.get("customer_id") not in customers) or \
                (sources and (order.get("source") or {}).get("name") not in sources):
            continue
        if not order.get(sort_key):
            continue
        if any(not order.get(name) or not _in_window(_time(order, name), *window) for name, window in windows.items()):
            continue
        items.append(((_time(order, sort_key), order["id"]), order))
    bodies, cursor = page_cut(items, body, limit=limit, descending=descending, after=after, started_at=started)
    if body.get("return_entries"):
        entries = [{"order_id": order["id"], "version": order["version"], "location_id": order["location_id"]}
                   for order in bodies]
        answer: dict[str, Any] = {"order_entries": entries} if entries else {}
        if cursor:
            answer["cursor"] = cursor
        return answer
    return _answer("orders", bodies, cursor)


# --- invoices -----------------------------------------------------------------------------------------------------


def _invoice_sort_date(invoice: Mapping[str, Any]) -> datetime:
    """InvoiceSortField INVOICE_SORT_DATE (api.json): a draft → created_at; one scheduled for publication →
    scheduled_at; a published one → its publication date (kept by the emulator as `_published_at`)."""
    if invoice["status"] == "DRAFT":
        return _time(invoice, "created_at")
    if invoice["status"] == "SCHEDULED" and invoice.get("scheduled_at"):
        return _time(invoice, "scheduled_at")
    return _time(invoice, "_published_at" if invoice.get("_published_at") else "created_at")


def _invoice_page(merchant: SquareMerchant, request: Mapping[str, Any], location_id: str, *, limit: int,
                  customer_ids: list[str] = (), descending: bool = False, by_invoice_date: bool = False) -> dict:
    _location_known(merchant, location_id)
    after, started = cursor_read(request, square_now(merchant))
    items = []
    rows = SquareObject.objects.filter(merchant=merchant, object_type="invoice").order_by("pk")
    for invoice in (row.body for row in rows):  # with the bookkeeping keys: the publication date sorts
        if invoice["location_id"] != location_id:
            continue
        if customer_ids and invoice["primary_recipient"].get("customer_id") not in customer_ids:
            continue
        # ListInvoices names no order: by creation. SearchInvoices sorts by INVOICE_SORT_DATE.
        key = _invoice_sort_date(invoice) if by_invoice_date else _time(invoice, "created_at")
        items.append(((key, invoice["id"]), square_public(invoice)))
    bodies, cursor = page_cut(items, request, limit=limit, descending=descending, after=after, started_at=started)
    return _answer("invoices", bodies, cursor)


def invoices_list(merchant: SquareMerchant, query: Mapping[str, Any]) -> dict:
    """ListInvoices: `location_id` REQUIRED (spec parameter required: true; not checked by the spec index, so here),
    `limit` default 100, at most 200 (a larger one refused: stricter), cursor."""
    if not query.get("location_id"):
        raise SquareApiError(400, "MISSING_REQUIRED_PARAMETER", "`location_id` is required.", field="location_id")
    return _invoice_page(merchant, query, query["location_id"], limit=_limit(query, maximum=200, default=100))


def invoice_retrieve(merchant: SquareMerchant, invoice_id: str) -> dict:
    return {"invoice": square_public(square_object_required(merchant, "invoice", invoice_id))}


def invoices_search(merchant: SquareMerchant, body: Mapping[str, Any]) -> dict:
    """SearchInvoices: `query.filter.location_ids` with exactly one location, `customer_ids` at most one, sort by
    INVOICE_SORT_DATE (default DESC), `limit` ≤200 (spec SearchInvoicesRequest, InvoiceFilter)."""
    filters = body["query"]["filter"]
    if len(filters["location_ids"]) != 1:
        raise SquareApiError(400, "BAD_REQUEST", "`location_ids` must name exactly one location.",
                             field="query.filter.location_ids")
    customer_ids = filters.get("customer_ids") or []
    if len(customer_ids) > 1:
        raise SquareApiError(400, "ARRAY_LENGTH_TOO_LONG", "`customer_ids` can name at most one customer.",
                             field="query.filter.customer_ids")
    limit = body.get("limit") or 100
    if not 1 <= limit <= 200:
        raise SquareApiError(400, "VALUE_TOO_HIGH" if limit > 200 else "VALUE_TOO_LOW",
                             "`limit` must be between 1 and 200.", field="limit")
    sort = body["query"].get("sort") or {}
    return _invoice_page(merchant, body, filters["location_ids"][0], limit=limit, customer_ids=customer_ids,
                         descending=(sort.get("order") or "DESC") == "DESC", by_invoice_date=True)


# --- customers ----------------------------------------------------------------------------------------------------


def customer_retrieve(merchant: SquareMerchant, customer_id: str) -> dict:
    return {"customer": square_public(square_object_required(merchant, "customer", customer_id))}


def _text_match(value: str | None, text_filter: Mapping[str, str]) -> bool:
    value = (value or "").casefold()
    if text_filter.get("exact") is not None:
        return value == text_filter["exact"].casefold()
    if text_filter.get("fuzzy") is not None:
        # "search queries are tokenized, and then each query token must be matched somewhere in the searched
        # attribute" (spec CustomerTextFilter.fuzzy).
        return all(token in value for token in text_filter["fuzzy"].casefold().split())
    return True


def customers_search(merchant: SquareMerchant, body: Mapping[str, Any]) -> dict:
    """SearchCustomers by `reference_id` or `email_address` {exact | fuzzy}, case-insensitive; `limit` 1 to 100 (else
    400 VALUE_TOO_LOW / VALUE_TOO_HIGH: spec SearchCustomersRequest.limit); cursor; `count`."""
    limit = body.get("limit", 100)
    if limit < 1:
        raise SquareApiError(400, "VALUE_TOO_LOW", "`limit` must be at least 1.", field="limit")
    if limit > 100:
        raise SquareApiError(400, "VALUE_TOO_HIGH", "`limit` must be at most 100.", field="limit")
    query = body.get("query") or {}
    filters = query.get("filter") or {}
    unsupported = set(filters) - {"reference_id", "email_address"}
    if unsupported:
        raise SquareApiError(400, "BAD_REQUEST", f"The sandbox does not emulate the filters {sorted(unsupported)}.",
                             field="query.filter")
    descending = ((query.get("sort") or {}).get("order") or "ASC") == "DESC"
    after, started = cursor_read(body, square_now(merchant))
    items = [((_time(customer, "created_at"), customer["id"]), customer)
             for customer in square_objects(merchant, "customer")
             if all(_text_match(customer.get(name), text_filter) for name, text_filter in filters.items())]
    bodies, cursor = page_cut(items, body, limit=limit, descending=descending, after=after, started_at=started)
    answer = _answer("customers", bodies, cursor)
    if body.get("count"):
        answer["count"] = len(items)
    return answer


# --- vendors ------------------------------------------------------------------------------------------------------

# SearchVendors has no `limit` (spec SearchVendorsRequest); the emulator's page size, small so cursors get used.
VENDORS_PAGE_SIZE = 20


def vendor_retrieve(merchant: SquareMerchant, vendor_id: str) -> dict:
    return {"vendor": square_public(square_object_required(merchant, "vendor", vendor_id))}


def vendors_search(merchant: SquareMerchant, body: Mapping[str, Any]) -> dict:
    """SearchVendors (BETA): filter `name[]` (exact, case-insensitive) and `status[]`, sort NAME or CREATED_AT
    (default NAME ASC: not stated by Square), cursor with the original query."""
    filters = body.get("filter") or {}
    names = {name.casefold() for name in filters.get("name") or []}
    statuses = set(filters.get("status") or [])
    sort = body.get("sort") or {}
    field = sort.get("field") or "NAME"
    descending = (sort.get("order") or "ASC") == "DESC"
    after, started = cursor_read(body, square_now(merchant))
    items = []
    for vendor in square_objects(merchant, "vendor"):
        if (names and vendor["name"].casefold() not in names) or (statuses and vendor["status"] not in statuses):
            continue
        key = vendor["name"].casefold() if field == "NAME" else _time(vendor, "created_at")
        items.append(((key, vendor["id"]), vendor))
    bodies, cursor = page_cut(items, body, limit=VENDORS_PAGE_SIZE, descending=descending, after=after,
                              started_at=started)
    return _answer("vendors", bodies, cursor)
