"""Writes for tenants, connections and integrations: webhook intake, schedules, settings, credentials."""
from __future__ import annotations

import json
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F, Q
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule

from mappings.money import currency_is_iso

from . import registry
from .models import Connection, InboundEvent, Integration
from .refusals import webhook_refusal_count
from .webhooks import Refusal, Verdict

log = logging.getLogger(__name__)

# Not in a header as HTTP delivers it; NUL would also be refused by PostgreSQL's jsonb.
_NOT_IN_HEADERS = re.compile("[\r\n\x00]|[^\x00-\xff]")

# Headers never stored with an inbound event (they can carry credentials).
_UNSTORED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


@dataclass(frozen=True)
class WebhookOutcome:
    status_code: int
    body: dict


# A webhook's integration, its tenant and both connections, kept per process and reused while their rows are
# unchanged: each delivery reads a fingerprint of the rows (SQL the ORM wrote once) instead of building a three-join
# ORM query and decrypting two sets of credentials. The fingerprint is each row's updated_at (any save() moves it)
# and, for a QuerySet.update() that leaves updated_at alone, every column a verifier reads.
_FINGERPRINT = [
    "updated_at", "kind", "enabled", "settings", "tenant_id", "partner_connection_id", "visma_connection_id",
    "tenant__updated_at", "tenant__is_active",
    *(f"{connection}__{column}" for connection in ("partner_connection", "visma_connection")
      for column in ("updated_at", "system", "base_url", "token_url", "credentials")),
]
_FINGERPRINT_SQL: dict[str, str] = {}
_integrations_seen: dict = {}
_INTEGRATIONS_KEPT = 1000


def _integration_rows(integration_id) -> tuple | None:
    database = connections[router.db_for_read(Integration)]
    sql = _FINGERPRINT_SQL.get(database.alias)
    if sql is None:
        query = Integration.objects.using(database.alias).filter(pk=uuid.UUID(int=0)).order_by()
        sql = _FINGERPRINT_SQL[database.alias] = query.values_list(*_FINGERPRINT).query.sql_with_params()[0]
    with database.cursor() as cursor:
        cursor.execute(sql, [Integration._meta.pk.get_db_prep_value(integration_id, database)])
        return cursor.fetchone()


def _integration_for_webhook(kind: str, integration_id) -> Integration | None:
    rows = _integration_rows(integration_id)
    if rows is None:
        return None
    seen = _integrations_seen.get(integration_id)
    if seen is not None and seen[0] == rows:
        integration = seen[1]
    else:
        try:
            integration = Integration.objects.select_related("tenant", "partner_connection", "visma_connection").get(
                pk=integration_id
            )
        except Integration.DoesNotExist:
            return None
        if len(_integrations_seen) >= _INTEGRATIONS_KEPT:
            _integrations_seen.clear()
        _integrations_seen[integration_id] = (rows, integration)
    # Visma's own notifications come to any of the tenant's integrations: /webhooks/visma/<integration-id>/.
    return integration if kind in (integration.kind, "visma") else None


def webhook_headers_problem(headers: dict[str, str]) -> str | None:
    """Why these headers cannot be what HTTP carried: octets (a WSGI server hands them over as latin-1), and no CR,
    LF or NUL (RFC 9110 §5.5)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str) or _NOT_IN_HEADERS.search(name + value):
            return f"header {ascii(str(name)[:40])} holds a character HTTP does not allow"
    return None


def webhook_receive(*, kind: str, integration_id, headers: dict[str, str], body: bytes, url: str,
                    remote_addr: str = "") -> WebhookOutcome:
    """Verify a delivery and store each event once, durably, before answering; a worker takes it from the inbox.

    Never raises on what a sender can choose: anything refused gets a 4xx with the reason and stores no event, and
    is counted per integration, reason and window (connectors.refusals), never one row per request.
    """
    integration = _integration_for_webhook(kind, integration_id)
    if integration is None:
        return WebhookOutcome(404, {"detail": "No such integration."})
    problem = webhook_headers_problem(headers)
    if problem:
        return _refuse(integration, Refusal.MALFORMED, problem, headers, remote_addr, status_code=400)
    spec = registry.KINDS.get(kind)
    verifier = spec.verifier if spec else None
    if verifier is None:
        return _refuse(integration, Refusal.NO_VERIFIER, f"no webhook verifier for {kind}", headers, remote_addr)
    try:
        verdict = verifier.verify(integration=integration, headers=headers, body=body, url=url)
    except Exception as exc:  # a verifier must not raise; if one does, the delivery is still refused, not a 500
        log.exception("webhook verifier for %s raised", kind)
        verdict = Verdict.refused(f"verification failed: {type(exc).__name__}")
    if not verdict.ok:
        return _refuse(integration, verdict.refusal, verdict.reason, headers, remote_addr)
    try:
        events = verifier.parse(headers=headers, body=body)
    except ValueError as exc:
        return _refuse(integration, Refusal.MALFORMED, f"Malformed {kind} webhook: {exc}", headers, remote_addr,
                       status_code=400)
    except Exception as exc:  # as above: a parser bug must not turn a sender's body into a 500
        log.exception("webhook parser for %s raised", kind)
        return _refuse(integration, Refusal.MALFORMED, f"Malformed {kind} webhook: {type(exc).__name__}", headers,
                       remote_addr, status_code=400)
    kept_headers = {name: value for name, value in headers.items() if name.lower() not in _UNSTORED_HEADERS}
    stored, duplicates = _inbound_events_store(integration, kind, events, kept_headers)
    # Committed: the row is durable and is itself the queue (connectors.broker); nothing else to write.
    return WebhookOutcome(200, {"received": stored, "duplicates": duplicates})


def _inbound_events_store(integration: Integration, kind: str, events, headers: dict) -> tuple[int, int]:
    """Insert each event once, in one transaction (one commit, one sync to disk); (stored, duplicates)."""
    rows = [InboundEvent(integration=integration, kind=kind, event_id=event.event_id, event_type=event.event_type,
                         headers=headers, body=event.body) for event in events]
    if len(rows) == 1 and not transaction.get_connection(router.db_for_write(InboundEvent)).in_atomic_block:
        # One statement in autocommit: its own transaction, committed (and synced) before save() returns.
        try:
            rows[0].save(force_insert=True)
        except IntegrityError:
            return 0, 1
        return 1, 0
    stored = 0
    with transaction.atomic():
        for row in rows:
            try:
                # A duplicate rolls back only itself.
                with transaction.atomic():
                    row.save(force_insert=True)
            except IntegrityError:
                continue
            stored += 1
    return stored, len(rows) - stored


def _refuse(integration: Integration, refusal: str, reason: str, headers: dict[str, str], remote_addr: str, *,
            status_code: int = 401) -> WebhookOutcome:
    names = sorted(str(name)[:100] for name in headers if str(name).lower() not in _UNSTORED_HEADERS)[:50]
    webhook_refusal_count(integration=integration, reason=refusal, detail=reason, remote_addr=remote_addr,
                          audit_details={"remote_addr": remote_addr, "headers": names})
    if status_code == 401:
        return WebhookOutcome(401, {"detail": "Signature verification failed."})
    return WebhookOutcome(status_code, {"detail": reason})


def webhook_oversize_refuse(*, kind: str, integration_id, limit: int, remote_addr: str = "") -> WebhookOutcome:
    """A body over the limit: refused before it is read, and counted for the integration it was sent to."""
    detail = f"Body larger than {limit} bytes."
    integration = _integration_for_webhook(kind, integration_id)
    if integration is not None:
        webhook_refusal_count(integration=integration, reason=Refusal.TOO_LARGE, detail=detail,
                              remote_addr=remote_addr, audit_details={"remote_addr": remote_addr})
    return WebhookOutcome(413, {"detail": detail})


# --- integrations --------------------------------------------------------------------------------------------


def connection_save(connection: Connection) -> Connection:
    """Save a connection; a token fetched with other credentials, or from another server, is dropped."""
    if connection.pk:
        stored = Connection.objects.filter(pk=connection.pk).values("credentials", "base_url", "token_url").first()
        if stored and (stored["credentials"], stored["base_url"], stored["token_url"]) != (
            connection.credentials, connection.base_url, connection.token_url
        ):
            connection.access_token, connection.token_expires_at = None, None
    connection.save()
    return connection


def connection_credentials(connection: Connection) -> dict[str, Any]:
    """The one accessor for a connection's secrets: refuses when a required key is missing."""
    credentials = connection.credentials or {}
    missing = [key for key in registry.kind_spec(connection.system).required_credentials if not credentials.get(key)]
    if missing:
        raise ValidationError(
            f"{connection}: credentials lack {', '.join(missing)}", code="missing_credentials"
        )
    return credentials


SETTING_NUMBER_MAX = 1_000_000
SETTING_TEXT_MAX_CHARS = 500
SETTING_LIST_MAX_ITEMS = 100


def _shown(value: Any) -> str:
    shown = json.dumps(value, default=str)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _host_port_problem(entry: str) -> str | None:
    try:
        parts = urlsplit(f"//{entry}")
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return "is not a host or host:port"
    if not parts.hostname or parts.netloc != entry or parts.username or parts.path:
        return "is not a host or host:port"
    return None


# Settings whose items are of a known kind: the item's problem, or None.
SETTING_ITEM_CHECKS = {
    "collect_currencies": lambda code: None if currency_is_iso(code) else "is not an ISO 4217 currency code",
    "cert_hosts": _host_port_problem,
}


def _setting_value_problem(key: str, value: Any) -> str | None:
    """Bounds every setting holds to, whatever its kind: numbers, text and lists of short text."""
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= SETTING_NUMBER_MAX:
        return f"must be a whole number from 0 to {SETTING_NUMBER_MAX}, got {_shown(value)}"
    if isinstance(value, str) and (len(value) > SETTING_TEXT_MAX_CHARS or not value.isprintable()):
        return f"must be printable text of at most {SETTING_TEXT_MAX_CHARS} characters"
    if isinstance(value, list):
        if len(value) > SETTING_LIST_MAX_ITEMS:
            return f"must have at most {SETTING_LIST_MAX_ITEMS} items"
        for position, item in enumerate(value):
            if not isinstance(item, str) or not item or len(item) > SETTING_TEXT_MAX_CHARS or not item.isprintable():
                return f"item {position} must be printable text of 1 to {SETTING_TEXT_MAX_CHARS} characters"
            check = SETTING_ITEM_CHECKS.get(key)
            problem = check(item) if check else None
            if problem:
                return f"item {position} ({_shown(item)}) {problem}"
    return None


def integration_settings_clean(kind: str, raw: dict | None) -> dict:
    """Validate an integration's settings against its kind's schema; the error names the key and the problem."""
    schema = registry.kind_spec(kind).settings_schema
    raw = dict(raw or {})
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        raise ValidationError(
            {"settings": f"unknown {kind} setting(s): {', '.join(unknown)}; known: {', '.join(sorted(schema)) or 'none'}"}
        )
    cleaned = {}
    for key, (kind_type, default, *allowed) in schema.items():
        value = raw.get(key, default)
        # true is an int to Python, never a number of seconds or days here.
        if value is not None and (not isinstance(value, kind_type) or kind_type is int and isinstance(value, bool)):
            raise ValidationError({"settings": f"{key} must be {kind_type.__name__}, got {_shown(value)}"})
        problem = value is not None and _setting_value_problem(key, value)
        if problem:
            raise ValidationError({"settings": f"{key} {problem}"})
        if allowed and value not in allowed[0]:
            raise ValidationError(
                {"settings": f"{key} must be one of {', '.join(map(str, allowed[0]))}, got {_shown(value)}"}
            )
        cleaned[key] = value
    return cleaned


# The longest poll cadence: a week (django-q2 keeps minutes in a small integer, and windows overlap the cursor).
POLL_MINUTES_MAX = 7 * 24 * 60


def integration_poll_minutes_clean(kind: str, raw: dict | None) -> dict[str, int]:
    streams = registry.kind_spec(kind).streams
    cleaned = {}
    for stream, minutes in (raw or {}).items():
        if stream not in streams:
            raise ValidationError(
                {"poll_minutes": f"{kind} has no stream {stream!r}; its streams: {', '.join(sorted(streams)) or 'none yet'}"}
            )
        if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= POLL_MINUTES_MAX:
            raise ValidationError({
                "poll_minutes": f"{stream}: minutes must be a whole number from 1 to {POLL_MINUTES_MAX}, "
                f"got {minutes!r}"
            })
        cleaned[stream] = minutes
    return cleaned


def schedule_name(integration: Integration, stream: str) -> str:
    return f"poll {integration.pk} {stream}"


def integration_schedules_sync(integration: Integration) -> list[Schedule]:
    """One django-q2 schedule per stream of an enabled integration, updated in place; none when disabled.

    Idempotent: saving an integration any number of times leaves exactly one schedule per stream.
    """
    prefix = f"poll {integration.pk} "
    wanted: dict[str, int] = {}
    if integration.enabled and integration.tenant.is_active:
        streams = registry.kind_spec(integration.kind).streams
        for stream, stream_class in streams.items():
            wanted[stream] = integration.poll_minutes.get(stream, stream_class.default_poll_minutes)
    Schedule.objects.filter(name__startswith=prefix).exclude(
        name__in=[schedule_name(integration, stream) for stream in wanted]
    ).delete()
    schedules = []
    for stream, minutes in wanted.items():
        schedule, _ = Schedule.objects.update_or_create(
            name=schedule_name(integration, stream),
            defaults=dict(
                func="connectors.tasks.stream_poll",
                args=repr((str(integration.pk), stream)),
                schedule_type=Schedule.MINUTES,
                minutes=minutes,
                repeats=-1,
            ),
        )
        schedules.append(schedule)
    return schedules


def integration_clean(integration: Integration) -> Integration:
    """Check an integration's settings, poll cadences and connections; every problem is named by its field."""
    errors: dict[str, list] = {}
    for field, clean in (("settings", integration_settings_clean), ("poll_minutes", integration_poll_minutes_clean)):
        try:
            setattr(integration, field, clean(integration.kind, getattr(integration, field)))
        except ValidationError as exc:
            errors.setdefault(field, []).extend(exc.message_dict.get(field, exc.messages))
    for label, system in (("visma_connection", "visma"), ("partner_connection", integration.kind)):
        connection = getattr(integration, label, None) if getattr(integration, f"{label}_id") else None
        if connection and (connection.system != system or connection.tenant_id != integration.tenant_id):
            errors.setdefault(label, []).append(f"must be the tenant's {system} connection, not {connection}")
    if errors:
        raise ValidationError(errors)
    return integration


def integration_save(integration: Integration) -> Integration:
    """Validate and save an integration, then bring its poll schedules in line (one transaction)."""
    integration_clean(integration)
    with transaction.atomic():
        integration.save()
        integration_schedules_sync(integration)
    return integration


INBOX_MAX_ATTEMPTS = 5


def _inbox_waiting():
    """Events a worker may take: pending, of an enabled integration of an active tenant (a disabled one keeps what
    it is sent and processes it once enabled again)."""
    return InboundEvent.objects.filter(integration__enabled=True, integration__tenant__is_active=True)


def inbox_claim(*, limit: int | None, older_than_seconds: int = 0, failed_too: bool = False) -> list[int]:
    """Lease up to `limit` waiting events to the caller (oldest first) and return their ids.

    An event already leased is left alone until its lease (Q_CLUSTER "retry") runs out, so two pushers, or a pusher
    and the sweep, never take one event together: on PostgreSQL rows another claim holds are skipped (SKIP LOCKED),
    on SQLite the IMMEDIATE transaction has the database to itself.
    """
    now = timezone.now()
    free = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - timedelta(seconds=Conf.RETRY))
    if failed_too:
        # A failed event's lease ended when its processing did.
        free = Q(status=InboundEvent.Status.PENDING) & free | Q(status=InboundEvent.Status.FAILED) & (
            free | Q(dispatched_at__lte=F("processed_at")))
    else:
        free &= Q(status=InboundEvent.Status.PENDING)
    waiting = _inbox_waiting().filter(free, attempts__lt=INBOX_MAX_ATTEMPTS)
    if older_than_seconds:
        waiting = waiting.filter(received_at__lte=now - timedelta(seconds=older_than_seconds))
    # A read first: an idle pusher asks every second, and must not take SQLite's write lock to hear "nothing".
    if not waiting.exists():
        return []
    with transaction.atomic():
        claimed = waiting.select_for_update(skip_locked=True, of=("self",)).order_by("received_at")
        event_ids = list(claimed.values_list("pk", flat=True)[:limit])
        InboundEvent.objects.filter(pk__in=event_ids).update(dispatched_at=now)
    return event_ids


def inbox_sweep() -> int:
    """Events the workers were never handed, or whose worker died, and failed ones with attempts left: process them
    here, each claimed first so a pusher does not take it too. Returns how many were run."""
    from .pipeline import inbound_event_process

    event_ids = inbox_claim(limit=None, older_than_seconds=60, failed_too=True)
    for event in InboundEvent.objects.filter(pk__in=event_ids).order_by("received_at").only("pk"):
        inbound_event_process(event)
    return len(event_ids)


def inbox_process(*, tenant_slug: str | None = None, older_than_seconds: int = 0) -> int:
    """Process stored events not yet processed (and failed ones with attempts left); returns how many were run."""
    from .pipeline import inbound_event_process

    events = _inbox_waiting().filter(
        status__in=[InboundEvent.Status.PENDING, InboundEvent.Status.FAILED],
        attempts__lt=INBOX_MAX_ATTEMPTS,
        received_at__lte=timezone.now() - timedelta(seconds=older_than_seconds),
    ).order_by("received_at")
    if tenant_slug:
        events = events.filter(integration__tenant__slug=tenant_slug)
    # Ids first (processing re-reads each row under lock): no open cursor over rows being written.
    count = 0
    for event in list(events.only("pk")):
        inbound_event_process(event)
        count += 1
    return count
