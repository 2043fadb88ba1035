"""Square REST over HTTP: locations, payments, refunds, invoices, orders, customers, vendors, token status.

Not through the official `squareup` SDK's client (docs/square.md §1): it takes only an httpx client and retries 408,
409, 429 and 5xx itself, sleeping up to 60 s, so every attempt would escape our call budget, exchange log and
(connect, read) timeouts, and its Authorization header, built before sending, would defeat re-authentication after
a 401; the `responses` mocks of the tests see only `requests`. So the client calls the REST API through our
`ApiSession`, like the PayPal client, and takes from `squareup` only the webhook signature helper (webhooks.py).

Every request names `Square-Version` (pinned per integration, default SQUARE_VERSION: the version api.json
describes); every answer is read with numbers as Decimal (amounts are integers in minor units anyway).
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

from connectors.errors import AuthenticationError, ConnectorError, PermanentError, TransientError
from connectors.http import ApiSession
from connectors.models import Connection

if TYPE_CHECKING:
    from audit.models import SyncRecord

SQUARE_VERSION = "2025-08-20"
PRODUCTION_BASE_URL = "https://connect.squareup.com"
SANDBOX_BASE_URL = "https://connect.squareupsandbox.com"
# ListPayments / ListPaymentRefunds: "the maximum is 100" (a larger limit is ignored), spec ListPayments.limit.
MAX_PAGE_SIZE = 100
# SearchOrders location_ids: "Max: 10" (prose only in api.json, SearchOrdersRequest.location_ids).
ORDERS_SEARCH_MAX_LOCATIONS = 10
# SearchCustomers limit: 1–100 (spec SearchCustomersRequest.limit).
CUSTOMERS_SEARCH_LIMIT = 100


# --- errors ---------------------------------------------------------------------------------------------------


class SquareError(ConnectorError):
    """Square refused or failed a call; `errors` is Square's list of {category, code, detail, field}."""

    def __init__(self, message: str, *, status_code: int | None = None, system_message: str = "",
                 errors: list | None = None):
        super().__init__(message, status_code=status_code, system_message=system_message)
        self.errors = errors or []

    @property
    def codes(self) -> list[str]:
        return [str(error.get("code") or "") for error in self.errors if isinstance(error, Mapping)]


class SquareTransientError(SquareError, TransientError):
    """Square failed (5xx, 429, timeout) and kept failing through the retries."""


class SquarePermanentError(SquareError, PermanentError):
    """Square refused the request as it stands (4xx)."""


class SquareAuthenticationError(SquareError, AuthenticationError):
    """Square refused the access token, also after a renewal (or it is a personal token, which we cannot renew)."""


class SquareReauthorizationRequired(SquareError, PermanentError):
    """Square refused the refresh token (the grace after expiry passed, or the seller revoked access): only the seller
    can fix it, by authorizing the application again in Square."""


class SquareInvalidCursor(SquarePermanentError):
    """INVALID_CURSOR: the page cursor is no longer accepted; the caller restarts its walk from its time cursor."""


_SQUARE_CLASS: dict[type[ConnectorError], type[SquareError]] = {
    TransientError: SquareTransientError,
    PermanentError: SquarePermanentError,
    AuthenticationError: SquareAuthenticationError,
}


def square_errors_text(errors: list) -> str:
    """Square's errors in its own words: "CODE (field): detail; ..." (spec Error: category and code required)."""
    parts = []
    for error in errors:
        if not isinstance(error, Mapping):
            continue
        code = str(error.get("code") or error.get("category") or "")
        field = f" ({error['field']})" if error.get("field") else ""
        detail = f": {error['detail']}" if error.get("detail") else ""
        parts.append(f"{code}{field}{detail}")
    return "; ".join(parts)


def square_error_for(base: type[ConnectorError], context: str, response: requests.Response | None) -> SquareError:
    """Square's error body {"errors": [{category, code, detail, field}]} (docs/square.md §8) as our error."""
    error_class = _SQUARE_CLASS.get(base, SquarePermanentError)
    if response is None:
        return error_class(context)
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        body = {}
    errors = body.get("errors") if isinstance(body, dict) and isinstance(body.get("errors"), list) else []
    said = square_errors_text(errors) or response.reason or f"HTTP {response.status_code}"
    if any(isinstance(error, Mapping) and error.get("code") == "INVALID_CURSOR" for error in errors):
        error_class = SquareInvalidCursor
    return error_class(f"{context}: {said}", status_code=response.status_code, system_message=said, errors=errors)


# --- dates ----------------------------------------------------------------------------------------------------


def square_datetime(moment: datetime) -> str:
    """RFC 3339 in UTC with Z, as Square's list filters take it (begin_time, updated_at_begin_time...)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def square_time(text: str | None) -> datetime | None:
    """Square's RFC 3339 timestamps ("2026-03-02T10:15:00Z", "...T10:15:00.123456789+01:00") as aware UTC; None when
    missing or unreadable. Fractions longer than microseconds (Square sends nanoseconds) are cut."""
    if not text:
        return None
    value = str(text).strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    head, dot, tail = value.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        value = f"{head}.{tail[:min(digits, 6)]}{tail[digits:]}" if digits else head + tail
    try:
        moment = datetime.fromisoformat(value)
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


# --- the client -----------------------------------------------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """The current access token on each attempt, so the retry after a renewal carries the new one."""

    def __init__(self, api: SquareApi):
        self.api = api

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.api.auth.token()}"
        return request


def _batches(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _changed_since(updated_from: datetime, updated_to: datetime | None, begin_time: datetime,
                   page_size: int) -> dict:
    """ListPayments' and ListPaymentRefunds' shared filters: changed (updated_at) in the window, oldest first, among
    objects created since begin_time (sent explicitly: Square's default is a year back)."""
    params = {
        "begin_time": square_datetime(begin_time),
        "updated_at_begin_time": square_datetime(updated_from),
        "sort_field": "UPDATED_AT",
        "sort_order": "ASC",
        "limit": min(page_size, MAX_PAGE_SIZE),
    }
    if updated_to is not None:
        params["updated_at_end_time"] = square_datetime(updated_to)
    return params


class SquareApi:
    """One seller's Square account (production, Square's sandbox or ours: the connection's base URL decides)."""

    def __init__(self, connection: Connection, *, settings: Mapping | None = None, **session_options):
        from .auth import SquareAuth  # auth builds on this module's errors

        self.connection = connection
        self.settings = dict(settings or {})
        self.base_url = (connection.base_url or PRODUCTION_BASE_URL).rstrip("/")
        self.version = str(self.settings.get("square_version") or SQUARE_VERSION)
        self.api = ApiSession(connection, auth=_Bearer(self), reauthenticate=self._token_refused,
                              error_for=square_error_for, **session_options)
        self.api.session.headers.update({"Accept": "application/json", "Square-Version": self.version})
        # ObtainToken takes no bearer token (spec ObtainToken, security: []) and costs no API budget.
        identity = ApiSession(connection, error_for=square_error_for, budget=False, **session_options)
        identity.session.headers.update({"Accept": "application/json", "Square-Version": self.version})
        self.identity = identity
        self.auth = SquareAuth(connection, settings=self.settings, identity=identity, base_url=self.base_url)

    def close(self) -> None:
        self.api.close()
        self.identity.close()

    def _token_refused(self) -> None:
        self.auth.refused()

    # -- plain calls -----------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base_url}/{path.lstrip('/')}"

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None,
              sync_record: SyncRecord | None = None) -> dict:
        # A connection marked "re-authorize" stops here, and a token due for renewal is renewed here, both before the
        # call budget is touched (the bearer hook then finds the token ready).
        self.auth.token()
        # Square's reads and searches change nothing: a POST search may be repeated after a timeout.
        response = self.api.request(method, self.url(path), params=params, json=body, sync_record=sync_record,
                                    replay_safe=True)
        self.auth.worked()
        document = response.json(parse_float=Decimal) if response.content else {}
        return document if isinstance(document, dict) else {}

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None) -> dict:
        return self._call("GET", path, params=params)

    def post_json(self, path: str, body: Any) -> dict:
        return self._call("POST", path, body=body)

    def get_one(self, path: str, key: str) -> dict | None:
        """One object (the answer's `key`), or None when Square says it does not exist (404 NOT_FOUND)."""
        try:
            document = self.get_json(path)
        except SquarePermanentError as exc:
            if exc.status_code == 404:
                return None
            raise
        found = document.get(key)
        return found if isinstance(found, dict) else None

    def _pages(self, method: str, path: str, key: str, *, params: Mapping[str, Any] | None = None,
               body: Mapping[str, Any] | None = None) -> Iterator[dict]:
        """Every object of a list, page by page: the cursor is sent back with the original query until Square
        answers none or "" (docs/square.md §5)."""
        cursor = None
        while True:
            if method == "GET":
                page = self.get_json(path, params={**(params or {}), **({"cursor": cursor} if cursor else {})})
            else:
                page = self.post_json(path, {**(body or {}), **({"cursor": cursor} if cursor else {})})
            yield from (item for item in page.get(key) or [] if isinstance(item, dict))
            cursor = page.get("cursor")
            if not cursor:
                return

    # -- reads -----------------------------------------------------------------------------------------------

    def locations(self) -> list[dict]:
        """Every location, inactive ones included; ListLocations has no pagination (spec ListLocations)."""
        return [item for item in self.get_json("/v2/locations").get("locations") or [] if isinstance(item, dict)]

    def payment(self, payment_id: str) -> dict | None:
        return self.get_one(f"/v2/payments/{quote(payment_id, safe='')}", "payment")

    def payments(self, *, location_id: str, updated_from: datetime, updated_to: datetime | None,
                 begin_time: datetime, page_size: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """ListPayments of one location (without location_id Square lists only the main one) by updated_at,
        oldest first; begin_time (on created_at) sent explicitly, since Square's default is a year back."""
        params = {"location_id": location_id, **_changed_since(updated_from, updated_to, begin_time, page_size)}
        return self._pages("GET", "/v2/payments", "payments", params=params)

    def refund(self, refund_id: str) -> dict | None:
        return self.get_one(f"/v2/refunds/{quote(refund_id, safe='')}", "refund")

    def refunds(self, *, updated_from: datetime, updated_to: datetime | None, begin_time: datetime,
                page_size: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """ListPaymentRefunds of all locations (its default, spec ListPaymentRefunds.location_id) by updated_at."""
        params = _changed_since(updated_from, updated_to, begin_time, page_size)
        return self._pages("GET", "/v2/refunds", "refunds", params=params)

    def invoice(self, invoice_id: str) -> dict | None:
        return self.get_one(f"/v2/invoices/{quote(invoice_id, safe='')}", "invoice")

    def invoices(self, *, location_id: str, page_size: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """ListInvoices of one location (location_id is required; limit ≤ 200, spec ListInvoices)."""
        params = {"location_id": location_id, "limit": min(page_size, 200)}
        return self._pages("GET", "/v2/invoices", "invoices", params=params)

    def invoices_search(self, *, location_id: str, limit: int = 10) -> Iterator[dict]:
        """SearchInvoices of one location (query.filter.location_ids takes exactly one), newest invoice date first
        (INVOICE_SORT_DATE DESC: a draft's created_at, a scheduled one's scheduled_at, a published one's publication
        date; spec InvoiceSortField). Pages are read only as far as the caller reads."""
        body = {"query": {"filter": {"location_ids": [location_id]},
                          "sort": {"field": "INVOICE_SORT_DATE", "order": "DESC"}},
                "limit": max(1, min(limit, 200))}
        return self._pages("POST", "/v2/invoices/search", "invoices", body=body)

    def order(self, order_id: str) -> dict | None:
        return self.get_one(f"/v2/orders/{quote(order_id, safe='')}", "order")

    def orders_search(self, *, location_ids: list[str], updated_from: datetime, updated_to: datetime | None,
                      page_size: int = MAX_PAGE_SIZE) -> Iterator[dict]:
        """SearchOrders by updated_at, at most 10 locations a call; the sort names the same field as the
        date_time_filter, or Square refuses the search (spec SearchOrdersQuery.filter)."""
        time_range: dict[str, str] = {"start_at": square_datetime(updated_from)}
        if updated_to is not None:
            time_range["end_at"] = square_datetime(updated_to)
        for batch in _batches(list(location_ids), ORDERS_SEARCH_MAX_LOCATIONS):
            body = {
                "location_ids": batch,
                "query": {
                    "filter": {"date_time_filter": {"updated_at": time_range}},
                    "sort": {"sort_field": "UPDATED_AT", "sort_order": "ASC"},
                },
                "limit": page_size,
            }
            yield from self._pages("POST", "/v2/orders/search", "orders", body=body)

    def customer(self, customer_id: str) -> dict | None:
        return self.get_one(f"/v2/customers/{quote(customer_id, safe='')}", "customer")

    def customers_by_reference(self, reference_id: str) -> list[dict]:
        """Customer profiles whose reference_id is exactly `reference_id` (Square compares case-insensitively)."""
        body = {"query": {"filter": {"reference_id": {"exact": reference_id}}}, "limit": CUSTOMERS_SEARCH_LIMIT}
        return list(self._pages("POST", "/v2/customers/search", "customers", body=body))

    def vendor(self, vendor_id: str) -> dict | None:
        return self.get_one(f"/v2/vendors/{quote(vendor_id, safe='')}", "vendor")

    def vendors(self) -> Iterator[dict]:
        """Every vendor (SearchVendors, beta: no limit parameter), cursor followed."""
        return self._pages("POST", "/v2/vendors/search", "vendors", body={})

    def token_status(self) -> dict:
        """RetrieveTokenStatus: scopes, expires_at (empty for a token that never expires), merchant_id. The operation
        takes no request body (spec RetrieveTokenStatus), so none is sent."""
        return self._call("POST", "/oauth2/token/status")


def square_ping(connection: Connection) -> str:
    """Check the access token end to end: its status, then the locations (Square's own check of a token)."""
    from .auth import square_authorization_problem

    problem = square_authorization_problem(connection)
    if problem:
        raise SquareReauthorizationRequired(problem)
    settings = _integration_settings(connection)
    api = SquareApi(connection, settings=settings)
    try:
        status = api.token_status()
        locations = api.locations()
    finally:
        api.close()
    active = sum(1 for location in locations if location.get("status") == "ACTIVE")
    expiry = square_time(status.get("expires_at"))
    expires = f"expires {expiry:%Y-%m-%d %H:%M} UTC" if expiry else "does not expire"
    return (f"token OK ({expires}), merchant {status.get('merchant_id') or '?'}, {len(locations)} location(s), "
            f"{active} active, Square-Version {api.version} ({api.base_url})")


def _integration_settings(connection: Connection) -> dict:
    """The settings of the Square integration this connection serves (its Square-Version, its renewal age)."""
    from connectors.models import Integration

    integration = Integration.objects.filter(partner_connection=connection, kind="square").first()
    return dict(integration.settings or {}) if integration is not None else {}


__all__ = [
    "SQUARE_VERSION", "SquareApi", "SquareAuthenticationError", "SquareError", "SquareInvalidCursor",
    "SquarePermanentError", "SquareReauthorizationRequired", "SquareTransientError", "square_datetime",
    "square_error_for", "square_ping", "square_time",
]
