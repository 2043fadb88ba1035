"""Writes for tenants, connections and integrations: webhook intake, schedules, settings, credentials."""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django_q.models import Schedule
from django_q.tasks import async_task

from audit.services import webhook_rejection_audit

from . import registry
from .models import Connection, InboundEvent, Integration

log = logging.getLogger(__name__)

# Headers never stored with an inbound event (they can carry credentials).
_UNSTORED_HEADERS = {"authorization", "cookie", "proxy-authorization"}


@dataclass(frozen=True)
class WebhookOutcome:
    status_code: int
    body: dict


def webhook_receive(*, kind: str, integration_id, headers: dict[str, str], body: bytes, url: str,
                    remote_addr: str = "") -> WebhookOutcome:
    """Verify a delivery, store each event once, and schedule processing after commit; never process here."""
    integration = Integration.objects.select_related("tenant", "partner_connection", "visma_connection").filter(
        pk=integration_id
    ).first()
    # Visma's own notifications come to any of the tenant's integrations: /webhooks/visma/<integration-id>/.
    if integration is None or kind not in (integration.kind, "visma"):
        return WebhookOutcome(404, {"detail": "No such integration."})
    spec = registry.KINDS.get(kind)
    verifier = spec.verifier if spec else None
    if verifier is None:
        return _refuse(integration, f"no webhook verifier for {kind}", headers, remote_addr)
    verdict = verifier.verify(integration=integration, headers=headers, body=body, url=url)
    if not verdict.ok:
        return _refuse(integration, verdict.reason, headers, remote_addr)
    try:
        events = verifier.parse(headers=headers, body=body)
    except ValueError as exc:
        return WebhookOutcome(400, {"detail": f"Malformed {kind} webhook: {exc}"})
    kept_headers = {name: value for name, value in headers.items() if name.lower() not in _UNSTORED_HEADERS}
    # A disabled integration keeps what it is sent, and processes it only once it is enabled again (inbox sweep).
    processes = integration.enabled and integration.tenant.is_active
    stored, duplicates = [], 0
    for event in events:
        try:
            with transaction.atomic():
                inbound = InboundEvent.objects.create(
                    integration=integration, kind=kind, event_id=event.event_id, event_type=event.event_type,
                    headers=kept_headers, body=event.body,
                )
                if processes:
                    transaction.on_commit(lambda pk=inbound.pk: inbound_event_enqueue(pk))
            stored.append(inbound.pk)
        except IntegrityError:
            duplicates += 1
    if not processes:
        log.info("webhook for disabled integration %s stored, not processed", integration.pk)
    return WebhookOutcome(200, {"received": len(stored), "duplicates": duplicates})


def _refuse(integration: Integration, reason: str, headers: dict[str, str], remote_addr: str) -> WebhookOutcome:
    names = sorted(name for name in headers if name.lower() not in _UNSTORED_HEADERS)
    webhook_rejection_audit(
        integration=integration, reason=reason, details={"remote_addr": remote_addr, "headers": names}
    )
    log.warning("webhook for %s refused: %s", integration.pk, reason)
    return WebhookOutcome(401, {"detail": "Signature verification failed."})


def inbound_event_enqueue(event_id: int) -> None:
    """Hand a stored event to the workers; if the queue is down the inbox sweep finds it later."""
    try:
        async_task("connectors.tasks.inbound_event_process", event_id, task_name=f"inbound-event-{event_id}")
    except Exception:  # the event is stored; the sweep (and process_inbox) will pick it up
        log.exception("could not enqueue inbound event %s", event_id)


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
        if value is not None and not isinstance(value, kind_type):
            raise ValidationError({"settings": f"{key} must be {kind_type.__name__}, got {json.dumps(value)}"})
        if allowed and value not in allowed[0]:
            raise ValidationError(
                {"settings": f"{key} must be one of {', '.join(map(str, allowed[0]))}, got {json.dumps(value)}"}
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


def inbox_process(*, tenant_slug: str | None = None, older_than_seconds: int = 0) -> int:
    """Process stored events not yet processed (and failed ones with attempts left); returns how many were run."""
    from datetime import timedelta

    from django.utils import timezone

    from .pipeline import inbound_event_process

    events = InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.PENDING, InboundEvent.Status.FAILED],
        attempts__lt=INBOX_MAX_ATTEMPTS,
        integration__enabled=True,
        integration__tenant__is_active=True,
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
