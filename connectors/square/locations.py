"""The mirror of a tenant's Square locations (stores, the web shop): refreshed from ListLocations on a schedule and
whenever a payment names a location not mirrored yet."""
from __future__ import annotations

import logging

from django.db import transaction

from mappings.models import SquareLocation

log = logging.getLogger(__name__)


def _status(value: object) -> str:
    # LocationStatus (api.json): ACTIVE | INACTIVE. Anything else is taken as inactive: nothing is posted on a guess.
    return SquareLocation.Status.ACTIVE if str(value or "").upper() == "ACTIVE" else SquareLocation.Status.INACTIVE


def square_locations_refresh(tenant, api) -> list[SquareLocation]:
    """Store every location `api.locations()` lists (ListLocations lists inactive ones too and has no pagination,
    docs/square.md §5) and return all of the tenant's mirrored locations. A location Square no longer lists is
    kept and marked inactive: its past payments still name it. ListLocations does not say which location is the
    main one; RetrieveLocation with the id "main" does (spec RetrieveLocation.location_id)."""
    rows = [row for row in api.locations() if row.get("id")]
    main = (api.get_one("/v2/locations/main", "location") or {}).get("id")
    listed = set()
    with transaction.atomic():
        for row in rows:
            listed.add(row["id"])
            SquareLocation.objects.update_or_create(
                tenant=tenant, location_id=row["id"],
                defaults={"name": str(row.get("name") or "")[:255], "status": _status(row.get("status")),
                          "currency": str(row.get("currency") or "").upper()[:3],
                          "timezone": str(row.get("timezone") or "")[:64], "is_main": row["id"] == main},
            )
        SquareLocation.objects.filter(tenant=tenant).exclude(location_id__in=listed).update(
            status=SquareLocation.Status.INACTIVE, is_main=False)
    return list(SquareLocation.objects.filter(tenant=tenant))


def square_locations_refresh_all() -> str:
    """The scheduled refresh: every enabled Square integration's locations (django-q2 calls it hourly)."""
    from connectors.models import Integration

    from .client import SquareApi

    refreshed, failed = 0, []
    for integration in Integration.objects.filter(kind="square", enabled=True, tenant__is_active=True).select_related(
            "tenant", "partner_connection"):
        api = SquareApi(integration.partner_connection, settings=integration.settings)
        try:
            square_locations_refresh(integration.tenant, api)
            refreshed += 1
        except Exception:  # one seller's outage must not keep the others stale
            log.exception("Square locations of %s could not be refreshed", integration.tenant.slug)
            failed.append(integration.tenant.slug)
        finally:
            api.close()
    return f"refreshed {refreshed}, failed {len(failed)}" + (f": {', '.join(failed)}" if failed else "")
