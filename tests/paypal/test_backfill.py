"""The backfill's windows and the command's refusals (the 90-day run over HTTP is in tests/e2e)."""
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from connectors.models import SyncRun
from connectors.paypal.backfill import backfill_windows
from tests.factories import IntegrationFactory, TenantFactory

JANUARY = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_90_day_range_is_cut_into_windows_of_at_most_31_days():
    # when
    windows = list(backfill_windows(JANUARY, JANUARY + timedelta(days=90), timedelta(days=31)))

    # then
    assert [(start.date().isoformat(), end.date().isoformat()) for start, end in windows] == [
        ("2026-01-01", "2026-02-01"), ("2026-02-01", "2026-03-04"), ("2026-03-04", "2026-04-01"),
    ]


def test_an_empty_range_has_no_window():
    # then
    assert list(backfill_windows(JANUARY, JANUARY, timedelta(days=31))) == []


@pytest.mark.parametrize("arguments, message", [
    (["nordlys", "--from", "2026-02-01", "--to", "2026-01-01"], "--to 2026-01-01 is before --from 2026-02-01"),
    (["nordlys", "--from", "1 Jan", "--to", "2026-01-01"], "'1 Jan' is not a date (YYYY-MM-DD)"),
    (["nobody", "--from", "2026-01-01", "--to", "2026-01-31"], "Tenant 'nobody' has no PayPal integration."),
])
def test_the_command_refuses_what_it_cannot_do_and_reads_nothing(db, arguments, message):
    # given
    IntegrationFactory(tenant=TenantFactory(slug="nordlys"))

    # when
    with pytest.raises(CommandError) as raised:
        call_command("paypal_backfill", *arguments, stdout=StringIO(), stderr=StringIO())

    # then
    assert str(raised.value) == message
    assert SyncRun.objects.count() == 0


def test_a_disabled_integration_is_not_backfilled(db):
    # given
    IntegrationFactory(tenant=TenantFactory(slug="nordlys"), enabled=False)

    # when
    with pytest.raises(CommandError) as raised:
        call_command("paypal_backfill", "nordlys", "--from", "2026-01-01", "--to", "2026-01-31",
                     stdout=StringIO(), stderr=StringIO())

    # then
    assert str(raised.value) == "The PayPal integration of nordlys is disabled or its tenant inactive: nothing read."
    assert SyncRun.objects.count() == 0
