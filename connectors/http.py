"""The one way out to every system: timeouts, retries with backoff, the shared hourly call budget, the exchange log."""
from __future__ import annotations

import json
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from django.conf import settings
from django.db.models import Exists, F, Max, Q
from django.utils import timezone
from urllib3.exceptions import ConnectTimeoutError, InvalidHeader, NewConnectionError
from urllib3.util.retry import Retry

from .errors import (
    AuthenticationError,
    ConnectorError,
    PermanentError,
    RetryLater,
    TransientError,
)
from .logging import redact
from .models import CallBudgetWindow, Connection, HttpExchange

if TYPE_CHECKING:
    from audit.models import SyncRecord

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
# Embedded defaults for the settings below that config/settings.py may not define.
DEFAULT_BUDGET_MAX_WAIT_SECONDS = 10.0
DEFAULT_LOG_BODY_MAX_CHARS = 20_000
# A body key containing one of these words is masked in the exchange log.
SECRET_KEY_WORDS = ("secret", "password", "token", "authorization", "api_key", "apikey", "credential", "signature")
NOT_SECRET_KEYS = frozenset({"token_type"})
MASK = "***"


# --- which record an exchange serves --------------------------------------------------------------------------

_serving: ContextVar[SyncRecord | None] = ContextVar("http_serving_record", default=None)


@contextmanager
def exchanges_for(sync_record: SyncRecord | None) -> Iterator[None]:
    """Link every exchange made inside the block to the record it serves."""
    token = _serving.set(sync_record)
    try:
        yield
    finally:
        _serving.reset(token)


# --- errors ---------------------------------------------------------------------------------------------------

ErrorFor = Callable[[type[ConnectorError], str, "requests.Response | None"], ConnectorError]


def vendor_message(response: requests.Response) -> str:
    """The system's own words from an error response: the usual JSON shapes, else the start of the text."""
    try:
        body = response.json(parse_float=Decimal)
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "Message", "error_description", "detail", "title", "error"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                return value["message"]
    text = redact((response.text or "").strip())[:500]
    return text or response.reason or f"HTTP {response.status_code}"


def connector_error(base: type[ConnectorError], context: str, response: requests.Response | None) -> ConnectorError:
    """The default error for a failed exchange: `base` with the system's message kept for the review screen."""
    if response is None:
        return base(context)
    message = vendor_message(response)
    return base(f"{context}: {message}", status_code=response.status_code, system_message=message)


# --- the call budget shared by all workers --------------------------------------------------------------------


def _window_start(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


# What this process knows without asking the database, per connection, for the current clock hour: that it has no
# budget at all (none configured, none reported), or that its system's report is already stored. Each saves a query
# per call; a report this process sees itself always goes to the database.
_unbudgeted_hour: dict[int, datetime] = {}
_reported_hour: dict[int, datetime] = {}
# A reported X-RateLimit-Remaining at or under this (or a tenth of the limit) is always stored: calls are running out.
LOW_REMAINING = 25


def call_budget_memo_clear() -> None:
    """Forget what this process knows of budgets (a test's database is not the next one's)."""
    _unbudgeted_hour.clear()
    _reported_hour.clear()


def call_budget_take(connection: Connection, *, now: datetime | None = None) -> datetime | None:
    """Count one call against the connection's budget for this clock hour; None when counted, else when to try again.

    One conditional UPDATE (calls < limit, and the system has not said none remain) does the counting, so the
    sum over every worker and machine never passes the limit. When the system said none remain until its own reset
    (X-RateLimit-Reset), that reset is waited for, in whichever of our clock hours it falls, and no longer.
    A connection with no budget configured and none reported costs no query once this process knows it.
    """
    now = now or timezone.now()
    start = _window_start(now)
    if connection.hourly_call_budget is None and _unbudgeted_hour.get(connection.pk) == start:
        return None
    mine = CallBudgetWindow.objects.filter(connection_id=connection.pk)
    windows = mine.filter(window_start=start)
    spent_by_system = mine.filter(remaining_reported__lte=0, remaining_resets_at__gt=now)
    counted = windows.filter(
        (Q(limit__isnull=True) | Q(calls__lt=F("limit")))
        & (Q(remaining_reported__isnull=True) | Q(remaining_reported__gt=0) | Q(remaining_resets_at__lte=now))
        & ~Exists(spent_by_system)
    )
    if counted.update(calls=F("calls") + 1, remaining_reported=F("remaining_reported") - 1):
        return None
    # Not counted: no window yet this hour, or something holds the calls back.
    system_reset = spent_by_system.aggregate(until=Max("remaining_resets_at"))["until"]
    window = windows.values("calls", "limit", "remaining_reported", "remaining_resets_at").first()
    if window is None:
        if connection.hourly_call_budget is None:
            if system_reset is None:
                _unbudgeted_hour[connection.pk] = start
            # No budget configured and none reported this hour; an earlier hour's report may still hold.
            return system_reset
        CallBudgetWindow.objects.get_or_create(
            connection_id=connection.pk, window_start=start, defaults={"limit": connection.hourly_call_budget}
        )
        if system_reset is None and counted.update(calls=F("calls") + 1,
                                                   remaining_reported=F("remaining_reported") - 1):
            return None
        window = windows.values("calls", "limit", "remaining_reported", "remaining_resets_at").first() or {}
    waits = [system_reset] if system_reset is not None else []
    over_limit = window.get("limit") is not None and window["calls"] >= window["limit"]
    spent_without_reset = (window.get("remaining_reported") is not None and window["remaining_reported"] <= 0
                           and window["remaining_resets_at"] is None)
    if over_limit or spent_without_reset:
        # Our own hourly budget, or a system that said none remain without saying until when: the hour's end.
        waits.append(start + timedelta(hours=1))
    # Nothing holds any more (a reset passed meanwhile): try again at once.
    return max(waits) if waits else now


def call_budget_observe(connection: Connection, headers: Mapping[str, str], *, now: datetime | None = None) -> None:
    """Adopt what the system says of its own limit (X-RateLimit-Limit) for this hour, and how many calls remain
    (X-RateLimit-Remaining) until its own window turns over (X-RateLimit-Reset).

    Stored once per hour per process, and whenever calls are running out: between, the conditional UPDATE of each
    call counts the remaining calls down itself, so a plain answer costs no write.
    """
    reported_limit = _int_header(headers, "X-RateLimit-Limit")
    remaining = _int_header(headers, "X-RateLimit-Remaining")
    if reported_limit is None and remaining is None:
        return
    now = now or timezone.now()
    start = _window_start(now)
    running_out = remaining is not None and remaining <= max(LOW_REMAINING, (reported_limit or 0) // 10)
    if _reported_hour.get(connection.pk) == start and not running_out:
        return
    limits = [value for value in (connection.hourly_call_budget, reported_limit) if value is not None]
    changes: dict[str, Any] = {}
    if limits:
        changes["limit"] = min(limits)
    if remaining is not None:
        changes["remaining_reported"] = max(remaining, 0)
        # A Retry-After beside it says best when calls are taken again; else the window's reset.
        reset = _retry_after_seconds(headers)
        if reset is None:
            reset = _reset_seconds(headers, now=now.timestamp())
        changes["remaining_resets_at"] = now + timedelta(seconds=reset) if reset is not None else None
    if not CallBudgetWindow.objects.filter(connection_id=connection.pk, window_start=start).update(**changes):
        CallBudgetWindow.objects.get_or_create(
            connection_id=connection.pk, window_start=start, defaults={"limit": changes.get("limit")}
        )
        CallBudgetWindow.objects.filter(connection_id=connection.pk, window_start=start).update(**changes)
    # While calls run out, every report is stored (the next one may say the window turned over).
    if running_out:
        _reported_hour.pop(connection.pk, None)
    else:
        _reported_hour[connection.pk] = start
    _unbudgeted_hour.pop(connection.pk, None)


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    try:
        return int(float(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _reset_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds until the system's rate-limit window turns over (X-RateLimit-Reset), if it says."""
    reset = _int_header(headers, "X-RateLimit-Reset")
    if reset is None:
        return None
    # Visma's gateway sends seconds until the reset; older gateways sent an epoch timestamp.
    if reset > 1_000_000_000:
        return max(reset - (now if now is not None else time.time()), 0.0)
    return float(max(reset, 0))


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds (it may be a number of seconds or an HTTP-date), if the answer has a valid one."""
    retry_after = headers.get("Retry-After")
    if not retry_after:
        return None
    try:
        return Retry().parse_retry_after(retry_after)
    except InvalidHeader:
        return None


def server_wait_seconds(response: requests.Response, *, now: float | None = None) -> float | None:
    """How long the system asked us to wait: Retry-After (seconds or HTTP-date); else, on a 429 that says no calls
    remain (X-RateLimit-Remaining 0), until X-RateLimit-Reset. None: it named no wait, a short backoff is ours.

    A 429 while calls remain (a burst or same-request throttle) is not the budget running out: its window reset is
    no wait the answer asked for.
    """
    retry_after = _retry_after_seconds(response.headers)
    if retry_after is not None:
        return retry_after
    if response.status_code != 429 or _int_header(response.headers, "X-RateLimit-Remaining") != 0:
        return None
    return _reset_seconds(response.headers, now=now)


# --- the exchange log -----------------------------------------------------------------------------------------


def _is_secret_key(key: str) -> bool:
    lowered = key.lower().replace("-", "_")
    return lowered not in NOT_SECRET_KEYS and any(word in lowered for word in SECRET_KEY_WORDS)


def _mask(document: Any) -> Any:
    if isinstance(document, dict):
        return {key: MASK if _is_secret_key(str(key)) else _mask(value) for key, value in document.items()}
    if isinstance(document, list):
        return [_mask(item) for item in document]
    return document


def body_for_log(body: Any, *, limit: int | None = None) -> str:
    """A body as kept in the exchange log: JSON pretty-printed and form fields with secret keys masked, capped."""
    if body is None or body in (b"", ""):
        return ""
    if isinstance(body, Mapping):
        body = urlencode(list(body.items()), doseq=True)
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            return f"<{len(body)} bytes>"
    text = str(body)
    try:
        text = json.dumps(_mask(json.loads(text)), indent=2, ensure_ascii=False)
    except ValueError:
        if "=" in text and not any(char.isspace() for char in text.strip()):
            try:
                pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True)
                text = urlencode([(key, MASK if _is_secret_key(key) else value) for key, value in pairs], safe="*")
            except ValueError:
                pass
    text = redact(text)
    limit = limit or getattr(settings, "HTTP_LOG_BODY_MAX_CHARS", DEFAULT_LOG_BODY_MAX_CHARS)
    if len(text) > limit:
        text = f"{text[:limit]}\n… ({len(text) - limit} more characters not kept)"
    return text


def url_for_log(url: str) -> str:
    """The URL without credentials: no user:password@, secret-looking query values masked."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(key, MASK if _is_secret_key(key) else value) for key, value in pairs], safe="*<>=:")
    return urlunsplit((parts.scheme, host, parts.path, query, ""))[:1000]


def _response_body(response: requests.Response) -> str:
    content_type = response.headers.get("Content-Type", "")
    if response.content and not any(kind in content_type for kind in ("json", "text", "xml", "form")) and content_type:
        return f"<{len(response.content)} bytes {content_type}>"
    return body_for_log(response.content)


# --- the session ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Timeouts and backoff as configured now (read per request, so settings overrides apply at once)."""

    connect_timeout: float
    read_timeout: float
    max_retries: int
    backoff_base: float
    backoff_max: float

    @classmethod
    def from_settings(cls, *, max_retries: int | None = None) -> RetryPolicy:
        return cls(
            connect_timeout=settings.HTTP_CONNECT_TIMEOUT,
            read_timeout=settings.HTTP_READ_TIMEOUT,
            max_retries=settings.HTTP_MAX_RETRIES if max_retries is None else max_retries,
            backoff_base=settings.HTTP_BACKOFF_BASE_SECONDS,
            backoff_max=settings.HTTP_BACKOFF_MAX_SECONDS,
        )

    def backoff_ceiling(self, retry: int) -> float:
        """Exponential: base · 2^retry, never above the cap."""
        return min(self.backoff_max, self.backoff_base * (2**retry))


def _full_jitter(ceiling: float) -> float:
    return random.uniform(0, ceiling)


def _never_reached(failure: requests.RequestException) -> bool:
    """True when the request cannot have reached the system (no connection was made), so repeating it is safe."""
    if isinstance(failure, requests.ConnectTimeout):
        return True
    if not isinstance(failure, requests.ConnectionError) or not failure.args:
        return False
    # requests wraps urllib3's MaxRetryError, whose reason is the connect failure itself.
    cause = getattr(failure.args[0], "reason", failure.args[0])
    return isinstance(cause, (NewConnectionError, ConnectTimeoutError))


def json_dumps(document: Any) -> str:
    """JSON for a request body: each Decimal a number with exactly its own digits (96.60 goes out as 96.60, never
    through a float), dates in ISO 8601."""
    marker = secrets.token_hex(8)
    numbers: list[str] = []

    def default(value):
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"{value} is not an amount")
            numbers.append(format(value, "f"))
            return f"{marker}:{len(numbers) - 1}"
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    text = json.dumps(document, default=default, ensure_ascii=False)
    # The stand-ins are strings json.dumps quoted; each number goes in without the quotes.
    return re.sub(rf'"{marker}:(\d+)"', lambda found: numbers[int(found[1])], text)


class ApiSession:
    """One connection's way out: every call through `request` gets timeouts, retries, the budget and the log.

    Hand-rolled around requests.Session rather than urllib3's Retry because each attempt must count against the
    shared budget and be logged, 401 must re-authenticate, and POST is retried on 429 (urllib3 never does).
    """

    def __init__(self, connection: Connection, *, auth: requests.auth.AuthBase | None = None,
                 reauthenticate: Callable[[], None] | None = None, error_for: ErrorFor = connector_error,
                 idempotency_header: str | None = None, budget: bool = True,
                 sleep: Callable[[float], None] = time.sleep, jitter: Callable[[float], float] = _full_jitter,
                 budget_max_wait_seconds: float | None = None, max_retries: int | None = None):
        self.connection = connection
        self.session = requests.Session()
        self.session.auth = auth
        self.reauthenticate = reauthenticate
        self.error_for = error_for
        self.idempotency_header = idempotency_header
        self.budget = budget
        self.sleep = sleep
        self.jitter = jitter
        self.budget_max_wait_seconds = budget_max_wait_seconds
        self.max_retries = max_retries

    def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
                data: Any = None, headers: Mapping[str, str] | None = None, idempotency_key: str | None = None,
                replay_safe: bool | None = None, sync_record: SyncRecord | None = None) -> requests.Response:
        """Send one request, retrying what is safe to retry; return a 1xx-3xx response or raise a ConnectorError."""
        method = method.upper()
        headers = dict(headers or {})
        body = data
        if json is not None:
            body = json_dumps(json).encode("utf-8")
            headers.setdefault("Content-Type", "application/json")
        if idempotency_key and self.idempotency_header:
            headers[self.idempotency_header] = idempotency_key
        # A POST whose answer timed out may have landed: repeat it only if it never got there or a key makes it safe.
        replayable = replay_safe if replay_safe is not None else (method in IDEMPOTENT_METHODS or bool(idempotency_key))
        record = sync_record if sync_record is not None else _serving.get()
        policy = RetryPolicy.from_settings(max_retries=self.max_retries)
        shown = url_for_log(url)
        retries, reauthenticated = 0, False
        while True:
            self._budget_take(method, shown)
            started = time.monotonic()
            response, failure = None, None
            try:
                response = self.session.request(
                    method, url, params=params, data=body, headers=headers,
                    timeout=(policy.connect_timeout, policy.read_timeout),
                )
            except requests.RequestException as exc:
                failure = exc
            self._log(method, url, params, body, response, failure, started, record)
            wait_hint = None
            if failure is not None:
                retryable = replayable or _never_reached(failure)
                reason = f"{type(failure).__name__}: {redact(str(failure))}"
            else:
                if self.budget:
                    call_budget_observe(self.connection, response.headers)
                status = response.status_code
                if status < 400:
                    return response
                if status == 401:
                    if self.reauthenticate is not None and not reauthenticated:
                        self.reauthenticate()
                        reauthenticated = True
                        continue
                    raise self.error_for(AuthenticationError, f"{method} {shown} → 401", response)
                if status != 429 and status < 500:
                    raise self.error_for(PermanentError, f"{method} {shown} → {status}", response)
                wait_hint = server_wait_seconds(response)
                asked_to_wait = status == 429 or (status == 503 and "Retry-After" in response.headers)
                retryable = replayable or asked_to_wait
                reason = f"HTTP {status}"
            if not retryable or retries >= policy.max_retries:
                context = f"{method} {shown} failed after {retries + 1} attempt(s) ({reason})"
                if wait_hint is not None:
                    raise RetryLater(context, retry_at=timezone.now() + timedelta(seconds=wait_hint),
                                     status_code=response.status_code)
                raise self.error_for(TransientError, context, response)
            delay = self.jitter(policy.backoff_ceiling(retries))
            if wait_hint is not None:
                if wait_hint > policy.backoff_max:
                    # Too long to hold a worker: the record's own retry schedule takes over.
                    raise RetryLater(
                        f"{method} {shown}: {reason}, the system asks to wait {wait_hint:.0f} s",
                        retry_at=timezone.now() + timedelta(seconds=wait_hint), status_code=response.status_code,
                    )
                delay = max(delay, wait_hint)
            self.sleep(delay)
            retries += 1

    def close(self) -> None:
        """Close the pooled connections now (a worker keeps its session; a short-lived caller closes it).

        urllib3 2 leaves a cleared pool's sockets to the garbage collector, and a kept traceback keeps them open.
        """
        for adapter in self.session.adapters.values():
            pools = getattr(adapter, "poolmanager", None)
            for key in list(pools.pools.keys()) if pools is not None else []:
                pool = pools.pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()

    def _budget_take(self, method: str, shown: str) -> None:
        if not self.budget:
            return
        resets_at = call_budget_take(self.connection)
        if resets_at is None:
            return
        max_wait = self.budget_max_wait_seconds
        if max_wait is None:
            max_wait = getattr(settings, "HTTP_BUDGET_MAX_WAIT_SECONDS", DEFAULT_BUDGET_MAX_WAIT_SECONDS)
        wait = (resets_at - timezone.now()).total_seconds()
        if wait <= max_wait:
            self.sleep(max(wait, 0.0))
            resets_at = call_budget_take(self.connection)
            if resets_at is None:
                return
        raise RetryLater(
            f"{method} {shown} not sent: the hourly call budget of {self.connection} is spent until "
            f"{resets_at:%Y-%m-%d %H:%M} UTC",
            retry_at=resets_at,
        )

    def _log(self, method: str, url: str, params, body, response: requests.Response | None,
             failure: Exception | None, started: float, record: SyncRecord | None) -> None:
        if not settings.HTTP_LOG_EXCHANGES:
            return
        sent_url = response.request.url if response is not None else _with_params(url, params)
        HttpExchange.objects.create(
            connection_id=self.connection.pk,
            sync_record_id=getattr(record, "pk", None),
            method=method,
            url=url_for_log(sent_url),
            status_code=response.status_code if response is not None else None,
            duration_ms=int((time.monotonic() - started) * 1000),
            request_body=body_for_log(body),
            response_body=_response_body(response) if response is not None else "",
            error=f"{type(failure).__name__}: {redact(str(failure))}"[:2000] if failure is not None else "",
        )


def _with_params(url: str, params: Mapping[str, Any] | None) -> str:
    try:
        return requests.Request("GET", url, params=params).prepare().url or url
    except requests.RequestException:
        return url
