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

from .models import SquareMerchant
from .square_api import (
    SquareApiError,
    square_now,
    square_object,
    square_object_required,
    square_objects,
    square_public,
    square_time,
    square_time_parse,
)

SortKey = tuple[datetime, str]


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
        after = (datetime.fromisoformat(state["after"][0]), state["after"][1])
        started = datetime.fromisoformat(state["started"])
        digest = state["query"]
    except (ValueError, KeyError, TypeError, IndexError, binascii.Error, UnicodeDecodeError):
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
    state = {"query": _query_digest(query), "after": [last[0].isoformat(), last[1]],
             "started": started_at.isoformat()}
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
                and (not query.get("source_type") or body.get("destination_type") == query["source_type"]))

    bodies, cursor = _time_listing(merchant, "refund", query, keep=keep,
                                   sort_fields={"CREATED_AT": "created_at", "UPDATED_AT": "updated_at"})
    return _answer("refunds", bodies, cursor)


def refund_retrieve(merchant: SquareMerchant, refund_id: str) -> dict:
    return {"refund": square_public(square_object_required(merchant, "refund", refund_id))}
