"""The booking date of a vendor timestamp: its date in the tenant's time zone."""
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError

from connectors.dates import tenant_date
from connectors.models import Tenant, time_zone_validate


@pytest.mark.parametrize(("moment", "day"), [
    (datetime(2026, 1, 31, 23, 30, tzinfo=UTC), date(2026, 2, 1)),    # 00:30 in Oslo (CET): the new month
    (datetime(2026, 1, 31, 22, 59, tzinfo=UTC), date(2026, 1, 31)),
    (datetime(2026, 6, 30, 22, 30, tzinfo=UTC), date(2026, 7, 1)),     # 00:30 in Oslo (CEST)
    (datetime(2026, 6, 30, 21, 30, tzinfo=UTC), date(2026, 6, 30)),
    (datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=-5))), date(2026, 3, 1)),
])
def test_a_moment_is_booked_on_its_date_in_oslo(moment, day):
    assert tenant_date(Tenant(time_zone="Europe/Oslo"), moment) == day


def test_a_moment_without_an_offset_is_taken_as_utc():
    assert tenant_date(Tenant(time_zone="America/New_York"), datetime(2026, 3, 1, 3, 0)) == date(2026, 2, 28)


def test_a_time_zone_must_be_an_iana_name():
    time_zone_validate("Europe/Oslo")
    with pytest.raises(ValidationError) as raised:
        time_zone_validate("CET+1")
    assert raised.value.messages == ["'CET+1' is not an IANA time zone name, e.g. Europe/Oslo"]
