"""PayPal REST over HTTP: the client-credentials token, captures, refunds, orders, Transaction Search, Invoicing v2."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import requests
from django.utils import timezone
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error

from connectors.errors import (
    AuthenticationError,
    ConnectorError,
    PermanentError,
    TransientError,
)
from connectors.http import ApiSession
from connectors.models import Connection
from connectors.services import connection_credentials
from connectors.tokens import connection_token, connection_token_renew

if TYPE_CHECKING:
    from audit.models import SyncRecord

LIVE_BASE_URL = "https://api-m.paypal.com"
SANDBOX_BASE_URL = "https://api-m.sandbox.paypal.com"
TOKEN_PATH = "/v1/oauth2/token"
# Transaction Search: "The maximum supported range is 31 days" (end_date, reporting_transactions_v1.json).
SEARCH_MAX_RANGE = timedelta(days=31)
SEARCH_PAGE_SIZE = 500
# A window split this small that is still too large cannot be read completely: fail rather than truncate.
SEARCH_SMALLEST_SPLIT = timedelta(minutes=1)
# PayPal's answer when its data lags behind the start date asked for (INVALID_REQUEST, seen in production:
# PayPal-node-SDK issue #452): nothing is published from there on yet, if the start is within the three years
# Transaction Search lists ("This call lists transaction for the previous three years").
START_NOT_AVAILABLE = "data for the given start date is not available"
SEARCH_HISTORY = timedelta(days=3 * 365)
INVOICE_PAGE_SIZE = 100
# Renew this long before expires_in runs out (PayPal's tokens live 15 minutes to 9 hours).


# --- errors ---------------------------------------------------------------------------------------------------


class PayPalError(ConnectorError):
    """PayPal refused or failed a call; `name` and `debug_id` are PayPal's own, for support tickets."""

    def __init__(self, message: str, *, status_code: int | None = None, system_message: str = "",
                 name: str = "", debug_id: str = "", details: list | None = None):
        super().__init__(message, status_code=status_code, system_message=system_message)
        self.name = name
        self.debug_id = debug_id
        self.details = details or []


class PayPalTransientError(PayPalError, TransientError):
    """PayPal failed (5xx, 429, timeout) and kept failing through the retries."""


class PayPalPermanentError(PayPalError, PermanentError):
    """PayPal refused the request as it stands (4xx)."""


class PayPalAuthenticationError(PayPalError, AuthenticationError):
    """PayPal refused the client credentials, or the API refused a freshly fetched token."""


class ResultSetTooLarge(PayPalPermanentError):
    """Transaction Search found more transactions in the window than it serves: the window must be split."""


_PAYPAL_CLASS: dict[type[ConnectorError], type[PayPalError]] = {
    TransientError: PayPalTransientError,
    PermanentError: PayPalPermanentError,
    AuthenticationError: PayPalAuthenticationError,
}


def paypal_error_for(base: type[ConnectorError], context: str, response: requests.Response | None) -> PayPalError:
    """PayPal's error body ({"name", "message", "debug_id", "details"} or OAuth's {"error", "error_description"})."""
    error_class = _PAYPAL_CLASS.get(base, PayPalPermanentError)
    if response is None:
        return error_class(context)
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    name = str(body.get("name") or body.get("error") or "")
    message = str(body.get("message") or body.get("error_description") or response.reason or "")
    details = body.get("details") if isinstance(body.get("details"), list) else []
    issues = "; ".join(
        f"{detail.get('field', '')} {detail.get('issue', '')}: {detail.get('description', '')}".strip()
        for detail in details if isinstance(detail, dict)
    )
    said = " ".join(part for part in (name, message, f"({issues})" if issues else "") if part)
    said = said or f"HTTP {response.status_code}"
    if name == "RESULTSET_TOO_LARGE":
        error_class = ResultSetTooLarge
    return error_class(f"{context}: {said}", status_code=response.status_code, system_message=said, name=name,
                       debug_id=str(body.get("debug_id") or ""), details=details)


def _token_error_for(base: type[ConnectorError], context: str, response: requests.Response | None) -> PayPalError:
    # PayPal answers a wrong client id or secret with 401 invalid_client: the credentials are refused.
    return paypal_error_for(AuthenticationError if base is PermanentError else base, context, response)


# --- dates ----------------------------------------------------------------------------------------------------


def paypal_datetime(moment: datetime) -> str:
    """RFC 3339 with seconds and Z, as Transaction Search and Invoicing take it (an offset needs a colon)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def paypal_time(text: str | None) -> datetime | None:
    """PayPal's RFC 3339 timestamps ("2026-03-02T10:15:00Z", "...+0000", "...+00:00") as aware UTC datetimes."""
    if not text:
        return None
    value = str(text).strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    elif len(value) > 5 and value[-5] in "+-" and value[-4:].isdigit():
        value = f"{value[:-2]}:{value[-2:]}"
    try:
        moment = datetime.fromisoformat(value)
        # 0001-01-01T00:00:00+01:00 and 9999-12-31T23:59:59-01:00 parse, but fall outside datetime's range in UTC.
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def link_target_id(resource: Mapping[str, Any], rel: str) -> str:
    """The last path segment of the resource's HATEOAS link `rel` (a refund's "up" is its capture)."""
    for link in resource.get("links") or []:
        if isinstance(link, Mapping) and link.get("rel") == rel and link.get("href"):
            return urlsplit(str(link["href"])).path.rstrip("/").rsplit("/", 1)[-1]
    return ""


# --- the client -----------------------------------------------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """Puts the connection's current token on each attempt, so a retry after re-authentication uses the new one."""

    def __init__(self, client: PayPalClient):
        self.client = client

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.client.token()}"
        return request


@dataclass(frozen=True)
class SearchPage:
    """One page of Transaction Search: its rows and how far PayPal's data is complete."""

    transactions: list[dict]
    page: int
    total_pages: int
    last_refreshed: datetime | None


@dataclass
class SearchHorizon:
    """How far Transaction Search had published what a read asked for: the earliest last_refreshed_datetime short of
    a window's end (`until`, None when every window was published whole), and whether an answer left it out
    (`unsaid`: the field is optional in search_response, reporting_transactions_v1.json)."""

    until: datetime | None = None
    unsaid: bool = False

    def saw(self, last_refreshed: datetime | None, window_end: datetime) -> None:
        if last_refreshed is None:
            self.unsaid = True
        # PayPal's times have whole seconds (end_date goes out truncated too): a window ending within the second
        # PayPal refreshed was published whole.
        elif last_refreshed < window_end.replace(microsecond=0):
            self.published_to(last_refreshed)

    def published_to(self, moment: datetime) -> None:
        self.until = moment if self.until is None else min(self.until, moment)


class PayPalClient:
    """One tenant's PayPal account (live, PayPal's sandbox, or ours: the base URL decides), over the shared session."""

    def __init__(self, connection: Connection, *, sleep: Callable[[float], None] = time.sleep, **session_options):
        credentials = connection_credentials(connection)
        self.connection = connection
        self.base_url = (connection.base_url or LIVE_BASE_URL).rstrip("/")
        self._credentials = credentials
        self.api = ApiSession(
            connection, auth=_Bearer(self), reauthenticate=self._token_refused, error_for=paypal_error_for,
            idempotency_header="PayPal-Request-Id", sleep=sleep, **session_options,
        )
        self.api.session.headers.update({"Accept": "application/json"})
        self.identity = ApiSession(
            connection,
            auth=requests.auth.HTTPBasicAuth(str(credentials["client_id"]), str(credentials["client_secret"])),
            error_for=_token_error_for, budget=False, sleep=sleep, **session_options,
        )

    def close(self) -> None:
        self.api.close()
        self.identity.close()

    # -- token -----------------------------------------------------------------------------------------------

    def token(self) -> str:
        """The connection's access token; a new one only when it is missing or about to expire."""
        return connection_token(self.connection, self._token_fetch)

    def _token_refused(self) -> None:
        self.token_renew(refused=self.connection.access_token)

    def token_renew(self, *, refused: str | None = None) -> str:
        return connection_token_renew(self.connection, self._token_fetch, refused=refused)

    def _token_fetch(self) -> tuple[str, datetime]:
        """POST /v1/oauth2/token (Basic client id:secret, grant_type=client_credentials): the token and its expiry."""
        oauth = BackendApplicationClient(client_id=self._credentials["client_id"])
        url = self.connection.token_url or f"{self.base_url}{TOKEN_PATH}"
        response = self.identity.request(
            "POST", url, data=oauth.prepare_request_body(include_client_id=False), replay_safe=True,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            token = oauth.parse_request_body_response(response.text)
        except (OAuth2Error, ValueError, Warning) as exc:
            raise PayPalAuthenticationError(
                f"PayPal token answer unusable: {exc}", status_code=response.status_code, system_message=str(exc)
            ) from exc
        lifetime = timedelta(seconds=int(token.get("expires_in") or 0))
        if lifetime <= timedelta(0):
            raise PayPalAuthenticationError("PayPal token answer has no expires_in", status_code=response.status_code)
        return token["access_token"], timezone.now() + lifetime

    # -- plain calls -----------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None,
                 sync_record: SyncRecord | None = None) -> Any:
        return self.api.request("GET", self.url(path), params=params, sync_record=sync_record).json(parse_float=Decimal)

    def get_one(self, path: str, *, sync_record: SyncRecord | None = None) -> dict | None:
        """One resource, or None when PayPal says it does not exist (404 RESOURCE_NOT_FOUND)."""
        try:
            return self.get_json(path, sync_record=sync_record)
        except PayPalPermanentError as exc:
            if exc.status_code == 404:
                return None
            raise

    def post_json(self, path: str, body: Any, *, idempotency_key: str | None = None,
                  params: Mapping[str, Any] | None = None, replay_safe: bool | None = None) -> Any:
        response = self.api.request("POST", self.url(path), json=body, params=params, idempotency_key=idempotency_key,
                                    replay_safe=replay_safe)
        return response.json(parse_float=Decimal) if response.content else None

    # -- payments --------------------------------------------------------------------------------------------

    def capture_get(self, capture_id: str) -> dict | None:
        return self.get_one(f"/v2/payments/captures/{quote(capture_id, safe='')}")

    def refund_get(self, refund_id: str) -> dict | None:
        return self.get_one(f"/v2/payments/refunds/{quote(refund_id, safe='')}")

    def order_get(self, order_id: str) -> dict | None:
        return self.get_one(f"/v2/checkout/orders/{quote(order_id, safe='')}")

    def capture_refund(self, capture_id: str, *, amount=None, currency: str = "", request_id: str,
                       note_to_payer: str = "") -> dict:
        """Refund a capture, in part (`amount`) or whole; PayPal-Request-Id makes a repeat of it harmless."""
        body: dict[str, Any] = {}
        if amount is not None:
            body["amount"] = {"currency_code": currency, "value": str(amount)}
        if note_to_payer:
            body["note_to_payer"] = note_to_payer
        return self.post_json(f"/v2/payments/captures/{quote(capture_id, safe='')}/refund", body,
                              idempotency_key=request_id)

    # -- Transaction Search ----------------------------------------------------------------------------------

    def transactions_page(self, start: datetime, end: datetime, *, page: int = 1, page_size: int = SEARCH_PAGE_SIZE,
                          **filters: str) -> SearchPage:
        """One page of GET /v1/reporting/transactions for [start, end], all fields, balance-affecting rows only."""
        if end - start > SEARCH_MAX_RANGE:
            raise ValueError(f"Transaction Search takes at most 31 days; asked {start} – {end}")
        params = {
            "start_date": paypal_datetime(start), "end_date": paypal_datetime(end), "fields": "all",
            "balance_affecting_records_only": "Y", "page_size": page_size, "page": page, **filters,
        }
        document = self.get_json("/v1/reporting/transactions", params=params) or {}
        return SearchPage(
            transactions=list(document.get("transaction_details") or []),
            page=int(document.get("page") or page),
            total_pages=int(document.get("total_pages") or 0),
            last_refreshed=paypal_time(document.get("last_refreshed_datetime")),
        )

    def transactions(self, start: datetime, end: datetime, *, page_size: int = SEARCH_PAGE_SIZE,
                     horizon: SearchHorizon | None = None, **filters: str) -> Iterator[dict]:
        """Every transaction in [start, end] PayPal has published, page by page, in windows of at most 31 days.

        A window PayPal finds too large (RESULTSET_TOO_LARGE) is split in two and each half read; nothing is
        silently truncated: a window that cannot be split further raises. How far PayPal had published
        (last_refreshed_datetime) is noted in `horizon`; a window starting after that is not asked for.
        """
        horizon = horizon if horizon is not None else SearchHorizon()
        windows = [(start, end)]
        while windows:
            window_start, window_end = windows.pop(0)
            if horizon.until is not None and window_start > horizon.until:
                continue  # PayPal has published nothing there yet
            if window_end - window_start > SEARCH_MAX_RANGE:
                middle = window_start + SEARCH_MAX_RANGE
                windows[:0] = [(window_start, middle), (middle, window_end)]
                continue
            try:
                yield from self._window_pages(window_start, window_end, horizon, page_size=page_size, **filters)
            except ResultSetTooLarge:
                if window_end - window_start <= SEARCH_SMALLEST_SPLIT:
                    raise
                middle = window_start + (window_end - window_start) / 2
                middle = middle.replace(microsecond=0)
                windows[:0] = [(window_start, middle), (middle, window_end)]

    def _window_pages(self, start: datetime, end: datetime, horizon: SearchHorizon, *, page_size: int,
                      **filters: str) -> Iterator[dict]:
        # PayPal answers RESULTSET_TOO_LARGE on the first page, before any row of the window is served.
        page = 1
        while True:
            try:
                result = self.transactions_page(start, end, page=page, page_size=page_size, **filters)
            except PayPalPermanentError as refused:
                if page == 1 and refused.name == "INVALID_REQUEST" and start > timezone.now() - SEARCH_HISTORY \
                        and START_NOT_AVAILABLE in refused.system_message.lower():
                    horizon.published_to(start)
                    return
                raise
            horizon.saw(result.last_refreshed, end)
            yield from result.transactions
            if page >= result.total_pages or not result.transactions:
                return
            page += 1

    # -- Invoicing v2 ----------------------------------------------------------------------------------------

    def invoice_get(self, invoice_id: str) -> dict | None:
        return self.get_one(f"/v2/invoicing/invoices/{quote(invoice_id, safe='')}")

    def invoices_created(self, start: datetime, end: datetime, *, page_size: int = INVOICE_PAGE_SIZE) -> Iterator[dict]:
        """Invoices created in [start, end] (POST /v2/invoicing/search-invoices), page by page, with their items
        (a search row carries `items`, `payments` and `refunds` only when `fields` names them: invoicing_v2.json
        `search_data.fields`)."""
        criteria = {"creation_date_range": {"start": paypal_datetime(start), "end": paypal_datetime(end)},
                    "fields": list(INVOICE_SEARCH_FIELDS)}
        page = 1
        while True:
            document = self.post_json(
                "/v2/invoicing/search-invoices", criteria,
                params={"page": page, "page_size": page_size, "total_required": "true"}, replay_safe=True,
            ) or {}
            items = list(document.get("items") or [])
            yield from items
            if not items or page >= int(document.get("total_pages") or 0):
                return
            page += 1


INVOICE_SEARCH_FIELDS = ("items",)


def paypal_client_for(integration) -> PayPalClient:
    """The client for an integration's PayPal connection."""
    return PayPalClient(integration.partner_connection)


def paypal_ping(connection: Connection) -> str:
    """Check the credentials end to end: a token, then one Transaction Search page of the last day."""
    client = PayPalClient(connection)
    try:
        client.token()
        now = timezone.now().replace(microsecond=0)
        page = client.transactions_page(now - timedelta(days=1), now, page_size=1)
    finally:
        client.close()
    refreshed = f", data complete to {page.last_refreshed:%Y-%m-%d %H:%M} UTC" if page.last_refreshed else ""
    return f"token OK, Transaction Search OK{refreshed} ({client.base_url})"
