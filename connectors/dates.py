"""The day a transaction is booked on: its moment in the tenant's time zone (Tenant.time_zone)."""
from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from django.utils import timezone


def tenant_date(tenant, moment: datetime | None) -> date:
    """The date of `moment` where the tenant keeps its books (a Nordic company books 00:30 local on the 1st in the
    new month, though it is still the last day of the old one in UTC); now when the vendor gave no moment. A moment
    without an offset is taken as UTC."""
    moment = moment or timezone.now()
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(tenant.time_zone)).date()
