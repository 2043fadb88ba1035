"""Thin django-q2 entry points: load by id, call the service. Safe to run twice."""
import logging

from django.db import transaction

from audit.models import SyncRecord

from . import pipeline
from .models import InboundEvent, Integration, SyncRun

log = logging.getLogger(__name__)


def stream_poll(integration_id: str, stream: str) -> str:
    integration = Integration.objects.select_related("tenant").get(pk=integration_id)
    if not (integration.enabled and integration.tenant.is_active):
        return "integration disabled"
    run = pipeline.stream_poll(integration, stream, trigger=SyncRun.Trigger.SCHEDULE)
    return f"fetched {run.fetched}, posted {run.posted}, flagged {run.flagged}, failed {run.failed}"


def inbound_event_process(event_id: int) -> str:
    return pipeline.inbound_event_process(InboundEvent(pk=event_id)).status


def record_advance(record_id: int) -> str:
    return pipeline.record_advance(SyncRecord.objects.get(pk=record_id)).status


def records_advance_due() -> int:
    return pipeline.records_advance_due()


def inbox_sweep() -> int:
    """Events stored but never handed to a worker, or whose worker died, and failed ones to retry: process them now."""
    from .services import inbox_sweep

    return inbox_sweep()


def record_advance_later(record: SyncRecord) -> None:
    """After a review action: advance the record in a worker once the change is committed."""
    transaction.on_commit(lambda pk=record.pk: _record_advance_enqueue(pk))


def _record_advance_enqueue(record_id: int) -> None:
    from django_q.tasks import async_task

    try:
        async_task("connectors.tasks.record_advance", record_id, task_name=f"record-advance-{record_id}")
    except Exception:  # the review is committed; the sweep advances the record within minutes
        log.exception("could not enqueue record %s", record_id)


def reference_data_refresh_all(full: bool = False) -> str:
    """The mirror of every active tenant's Visma reference data, by delta (hourly) or in full (nightly)."""
    from mappings.reference import reference_data_refresh

    from .models import Tenant

    refreshed, failed = [], []
    for tenant in Tenant.objects.filter(is_active=True, connections__system="visma").distinct():
        try:
            reference_data_refresh(tenant, full=full)
            refreshed.append(tenant.slug)
        except Exception:  # one tenant's outage must not keep the others stale
            log.exception("reference data refresh of %s failed", tenant.slug)
            failed.append(tenant.slug)
    return f"refreshed {len(refreshed)}, failed {len(failed)}" + (f": {', '.join(failed)}" if failed else "")


def visma_duplicates_check_all() -> str:
    """Every active tenant's Visma checked for documents that share a marker (shown to finance as possible
    duplicates)."""
    from .models import Tenant
    from .visma.duplicates import visma_duplicates_check

    shown, failed = 0, []
    for tenant in Tenant.objects.filter(is_active=True, connections__system="visma").distinct():
        try:
            shown += len(visma_duplicates_check(tenant))
        except Exception:  # one tenant's outage must not hide the others' duplicates
            log.exception("duplicate check of %s failed", tenant.slug)
            failed.append(tenant.slug)
    return f"{shown} possible duplicate(s) shown" + (f"; failed: {', '.join(failed)}" if failed else "")
