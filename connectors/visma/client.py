"""Visma.net ERP over HTTP: the client-credentials token, paging, delta reads, DTO writes, ETag updates, errors."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import requests
from django.utils import timezone
from oauthlib.oauth2 import BackendApplicationClient, OAuth2Error

from connectors.errors import (
    AuthenticationError,
    ConflictError,
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

SERVICE_SCOPES = (
    "vismanet_erp_service_api:read vismanet_erp_service_api:create "
    "vismanet_erp_service_api:update vismanet_erp_service_api:delete"
)
CANONICAL_BASE_URL = "https://api.finance.visma.net"
DEFAULT_TOKEN_URL = "https://connect.visma.com/connect/token"
DEPRECATED_HOST = "integration.visma.net"
# No refresh token for client credentials: a new token is fetched this long before the old one expires.
# Used when the token response has no expires_in (Visma's documented sample says 3600).
DEFAULT_TOKEN_LIFETIME = timedelta(hours=1)
# Visma silently caps a larger pageSize at the endpoint's metadata.maxPageSize.
DEFAULT_PAGE_SIZE = 500
UPDATE_ATTEMPTS = 3
# The timezone of lastModifiedDateTime is not documented: the overlap also covers a server clock up to UTC+3.
DELTA_OVERLAP = timedelta(hours=3)
# Write-DTO fields Visma takes bare, not as {"value": ...} (spec 2025-04: line operation, timeStamp, two flags).
BARE_FIELDS = frozenset({"operation", "timeStamp", "overrideWithClassValues", "changeDatesOnLines"})


# --- errors ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VismaFault:
    """Visma's own account of a refusal, from either body shape it uses."""

    message: str
    exception_type: str = ""
    fault_code: str = ""
    message_id: str = ""
    details: str = ""

    def __str__(self) -> str:
        code = " ".join(part for part in (self.exception_type, self.fault_code) if part)
        return f"{self.message} ({code})" if code else self.message


def visma_fault(response: requests.Response) -> VismaFault:
    """Parse {"ExceptionType", "ExceptionMessage", "ExceptionFaultCode", ...} or {"message"} / {"Message"}."""
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        body = None
    if isinstance(body, dict):
        if body.get("ExceptionMessage") or body.get("ExceptionType"):
            return VismaFault(
                message=str(body.get("ExceptionMessage") or body.get("ExceptionType")),
                exception_type=str(body.get("ExceptionType") or ""),
                fault_code=str(body.get("ExceptionFaultCode") or ""),
                message_id=str(body.get("ExceptionMessageID") or ""),
                details=str(body.get("ExceptionDetails") or ""),
            )
        for key in ("message", "Message", "error_description", "error"):
            if isinstance(body.get(key), str) and body[key].strip():
                return VismaFault(message=body[key].strip())
    text = (response.text or "").strip()[:500]
    return VismaFault(message=text or response.reason or f"HTTP {response.status_code}")


class VismaError(ConnectorError):
    """Visma refused or failed a call; `fault` keeps Visma's message, code and id for the review screen."""

    def __init__(self, message: str, *, status_code: int | None = None, system_message: str = "",
                 fault: VismaFault | None = None):
        super().__init__(message, status_code=status_code, system_message=system_message)
        self.fault = fault


class VismaTransientError(VismaError, TransientError):
    """Visma failed (5xx, 429, timeout) and kept failing through the retries."""


class VismaPermanentError(VismaError, PermanentError):
    """Visma refused the request as it stands (4xx)."""


class VismaAuthenticationError(VismaError, AuthenticationError):
    """Visma Connect refused the credentials, or the API refused a freshly fetched token."""


class VismaConflictError(VismaError, ConflictError):
    """Visma answered 412 on every attempt: the resource keeps changing under us."""


_VISMA_CLASS: dict[type[ConnectorError], type[VismaError]] = {
    TransientError: VismaTransientError,
    PermanentError: VismaPermanentError,
    AuthenticationError: VismaAuthenticationError,
}


def visma_error_for(base: type[ConnectorError], context: str, response: requests.Response | None) -> VismaError:
    error_class = _VISMA_CLASS.get(base, VismaPermanentError)
    if response is None:
        return error_class(context)
    fault = visma_fault(response)
    return error_class(f"{context}: {fault}", status_code=response.status_code, system_message=str(fault), fault=fault)


def _token_error_for(base: type[ConnectorError], context: str, response: requests.Response | None) -> VismaError:
    # Visma Connect answers bad credentials, tenant or scope with 400/401: all mean the credentials are refused.
    return visma_error_for(AuthenticationError if base is PermanentError else base, context, response)


# --- write DTOs -----------------------------------------------------------------------------------------------


def visma_segments(dimensions: Mapping[str, Any] | list[Mapping[str, Any]]) -> list[dict]:
    """Subaccount segments as Visma takes them: [{"segmentId": 1, "segmentValue": "100"}, ...]."""
    if isinstance(dimensions, Mapping):
        pairs = sorted(((int(segment), value) for segment, value in dimensions.items()), key=lambda pair: pair[0])
        return [{"segmentId": segment, "segmentValue": str(value)} for segment, value in pairs]
    return [{"segmentId": int(item["segmentId"]), "segmentValue": str(item["segmentValue"])} for item in dimensions]


def visma_dto(fields: Mapping[str, Any], *, bare: frozenset[str] | set[str] = frozenset()) -> dict:
    """A plain dict in Visma's write shape: each value as {"value": x}; lines (lists of dicts) wrapped per field
    with their "operation" bare; subaccounts as segment lists; nested objects (addresses) as {"value": {...}}."""
    keep_bare = BARE_FIELDS | set(bare)
    return {name: _wrap(name, value, keep_bare) for name, value in fields.items()}


def _wrap(name: str, value: Any, keep_bare: frozenset[str] | set[str]) -> Any:
    if name in keep_bare:
        return value
    if name.lower().endswith("subaccount") or name == "sub":
        return visma_segments(value)
    if isinstance(value, list):
        return [visma_dto(item, bare=keep_bare) if isinstance(item, Mapping) else item for item in value]
    if isinstance(value, Mapping):
        return {"value": visma_dto(value, bare=keep_bare)}
    return {"value": value}


def visma_datetime(moment: datetime) -> str:
    """A time as Visma's lastModifiedDateTime filter takes it (yyyy-MM-ddTHH:mm:ss), in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _page(document: Any) -> tuple[list[dict], int | None, int | None]:
    """Rows, totalCount and maxPageSize of a list response: a plain array with metadata on each row, or the
    BasePaginationDto envelope some endpoints use."""
    if isinstance(document, dict) and "records" in document:
        return list(document.get("records") or []), document.get("totalCount"), None
    rows = list(document or [])
    metadata = (rows[0].get("metadata") or {}) if rows and isinstance(rows[0], dict) else {}
    return rows, metadata.get("totalCount"), metadata.get("maxPageSize")


# --- the client -----------------------------------------------------------------------------------------------


class _Bearer(requests.auth.AuthBase):
    """Puts the connection's current token on each attempt, so a retry after re-authentication uses the new one."""

    def __init__(self, client: VismaClient):
        self.client = client

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.client.token()}"
        return request


class VismaClient:
    """One tenant's Visma.net ERP company, over the shared session factory."""

    def __init__(self, connection: Connection, *, sleep: Callable[[float], None] = time.sleep, **session_options):
        credentials = connection_credentials(connection)
        self.connection = connection
        self.base_url = connection.base_url.rstrip("/")
        self.company_id = str(credentials["company_id"])
        self._credentials = credentials
        self.api = ApiSession(
            connection, auth=_Bearer(self), reauthenticate=self._token_refused, error_for=visma_error_for,
            sleep=sleep, **session_options,
        )
        self.api.session.headers.update({"Accept": "application/json", "ipp-company-id": self.company_id})
        # The token endpoint is Visma Connect, outside the ERP API's hourly budget.
        self.identity = ApiSession(connection, error_for=_token_error_for, budget=False, sleep=sleep, **session_options)

    def close(self) -> None:
        self.api.close()
        self.identity.close()

    # -- token -----------------------------------------------------------------------------------------------

    def token(self) -> str:
        """The connection's access token, fetched anew when it is missing or close to expiry."""
        return connection_token(self.connection, self._token_fetch)

    def _token_refused(self) -> None:
        self.token_renew(refused=self.connection.access_token)

    def token_renew(self, *, refused: str | None = None) -> str:
        return connection_token_renew(self.connection, self._token_fetch, refused=refused)

    def _token_fetch(self) -> tuple[str, datetime]:
        # oauthlib builds the client-credentials body and checks the answer; the POST itself goes through our
        # session (timeouts, retries, redacted log) because OAuth2Session refuses the sandbox's http:// URL.
        oauth = BackendApplicationClient(client_id=self._credentials["client_id"])
        body = oauth.prepare_request_body(
            scope=SERVICE_SCOPES, include_client_id=True,
            client_secret=self._credentials["client_secret"], tenant_id=self._credentials["tenant_id"],
        )
        response = self.identity.request(
            "POST", self.connection.token_url or DEFAULT_TOKEN_URL, data=body, replay_safe=True,
            headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
        )
        try:
            token = oauth.parse_request_body_response(response.text)
        except (OAuth2Error, ValueError, Warning) as exc:
            raise VismaAuthenticationError(
                f"Visma Connect token answer unusable: {exc}", status_code=response.status_code,
                system_message=str(exc),
            ) from exc
        lifetime = timedelta(seconds=int(token["expires_in"])) if token.get("expires_in") else DEFAULT_TOKEN_LIFETIME
        return token["access_token"], timezone.now() + lifetime

    # -- plain calls -----------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def get(self, path: str, *, params: Mapping[str, Any] | None = None,
            sync_record: SyncRecord | None = None) -> requests.Response:
        return self.api.request("GET", self.url(path), params=params, sync_record=sync_record)

    def get_json(self, path: str, *, params: Mapping[str, Any] | None = None,
                 sync_record: SyncRecord | None = None) -> Any:
        # Visma's amounts are JSON numbers: read as Decimal, never float.
        return self.get(path, params=params, sync_record=sync_record).json(parse_float=Decimal)

    def get_one(self, path: str, *, sync_record: SyncRecord | None = None) -> dict | None:
        """One resource, or None when Visma says it does not exist (404)."""
        try:
            return self.get_json(path, sync_record=sync_record)
        except VismaPermanentError as exc:
            if exc.status_code == 404:
                return None
            raise

    # -- lists -----------------------------------------------------------------------------------------------

    def pages(self, path: str, *, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE,
              sync_record: SyncRecord | None = None) -> Iterator[list[dict]]:
        """A list endpoint page by page (pageNumber/pageSize) until metadata.totalCount is read or a page is empty."""
        page_number, read = 1, 0
        while True:
            document = self.get_json(
                path, params={**(params or {}), "pageNumber": page_number, "pageSize": page_size},
                sync_record=sync_record,
            )
            rows, total, max_page_size = _page(document)
            if not rows:
                return
            yield rows
            read += len(rows)
            if (total is not None and read >= total) or (total is None and len(rows) < page_size):
                return
            if max_page_size and max_page_size < page_size:
                page_size = max_page_size  # Visma already served this page at its cap; keep asking for the same size
            page_number += 1

    def items(self, path: str, *, params: Mapping[str, Any] | None = None, page_size: int = DEFAULT_PAGE_SIZE,
              sync_record: SyncRecord | None = None) -> Iterator[dict]:
        for rows in self.pages(path, params=params, page_size=page_size, sync_record=sync_record):
            yield from rows

    def changed(self, path: str, *, since: datetime | None, key: str, overlap: timedelta = DELTA_OVERLAP,
                params: Mapping[str, Any] | None = None, paged: bool = True,
                page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[dict]:
        """Rows changed since `since` less the overlap (all rows when None), each key once within this read."""
        params = dict(params or {})
        if since is not None:
            params["lastModifiedDateTime"] = visma_datetime(since - overlap)
            params["lastModifiedDateTimeCondition"] = ">="
        if paged:
            rows = self.items(path, params=params, page_size=page_size)
        else:
            rows = iter(self.get_json(path, params=params) or [])
        seen: set[str] = set()
        for row in rows:
            row_key = str(row.get(key))
            # A row changed during the read moves between pages and can be served twice.
            if row_key in seen:
                continue
            seen.add(row_key)
            yield row

    # -- writes ----------------------------------------------------------------------------------------------

    def create(self, path: str, fields: Mapping[str, Any], *, sync_record: SyncRecord | None = None) -> str:
        """POST a document (plain fields, wrapped here); return its id, the last segment of the Location header.

        Never retried after a read timeout: Visma has no idempotency key, so a repeat could post twice; the
        pipeline looks the document up by its marker instead.
        """
        response = self.api.request("POST", self.url(path), json=visma_dto(fields), sync_record=sync_record)
        location = response.headers.get("Location", "")
        resource_id = unquote(urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]) if location else ""
        if not resource_id:
            raise VismaTransientError(
                f"POST {path} answered {response.status_code} without a Location header: the document may exist, "
                "look it up by its marker", status_code=response.status_code,
            )
        return resource_id

    def action(self, path: str, fields: Mapping[str, Any] | None = None, *,
               sync_record: SyncRecord | None = None) -> dict:
        """POST a document action (…/action/release) with its DTO (plain fields, wrapped here); Visma's
        {actionId, actionResult, errorInfo} (ReleaseInvoiceActionResultDto and its kin)."""
        body = visma_dto(fields) if fields is not None else None
        response = self.api.request("POST", self.url(path), json=body, sync_record=sync_record)
        try:
            return response.json() if response.content else {}
        except ValueError:
            return {}

    def update(self, path: str, change: Callable[[dict], Mapping[str, Any]], *, attempts: int = UPDATE_ATTEMPTS,
               sync_record: SyncRecord | None = None) -> str | None:
        """Read the resource for its ETag and PUT `change(current)` with If-Match; on 412 (changed meanwhile) read
        and apply again, at most `attempts` times. Returns the new ETag, if Visma sends one."""
        refused: VismaError | None = None
        for _ in range(attempts):
            current = self.get(path, sync_record=sync_record)
            document = current.json(parse_float=Decimal)
            etag = current.headers.get("ETag") or _quoted(document.get("timeStamp"))
            try:
                response = self.api.request(
                    "PUT", self.url(path), json=visma_dto(change(document)),
                    headers={"If-Match": etag} if etag else {}, sync_record=sync_record,
                )
            except VismaPermanentError as exc:
                if exc.status_code != 412:
                    raise
                refused = exc
                continue
            return response.headers.get("ETag")
        reason = refused.system_message if refused else "412 Precondition Failed"
        raise VismaConflictError(
            f"PUT {path}: changed in Visma by someone else on each of {attempts} attempts ({reason})",
            status_code=412, system_message=f"Changed in Visma while we updated it, {attempts} times: {reason}",
            fault=refused.fault if refused else None,
        )


def _quoted(value: Any) -> str | None:
    if not value:
        return None
    text = str(value)
    return text if text.startswith(('"', 'W/"')) else f'"{text}"'


def visma_client_for(tenant) -> VismaClient:
    """The client for a tenant's Visma connection."""
    connection = Connection.objects.filter(tenant=tenant, system="visma").select_related("tenant").first()
    if connection is None:
        raise PermanentError(f"{tenant} has no Visma.net ERP connection")
    return VismaClient(connection)


def visma_ping(connection: Connection) -> str:
    """Check the credentials end to end: a token, then the company's GL accounts. One line, or raises."""
    client = VismaClient(connection)
    try:
        client.token()
        accounts = client.get_json("/v1/account")
    finally:
        client.close()
    message = f"token OK, company {client.company_id}, {len(accounts or [])} GL accounts"
    host = urlsplit(client.base_url).hostname or ""
    if host == DEPRECATED_HOST or host.endswith(f".{DEPRECATED_HOST}"):
        message += (
            f"; warning: {host} is Visma's deprecated base URL (throttled since 2026-02-01, being shut down): "
            f"change it to {CANONICAL_BASE_URL}"
        )
    return message
