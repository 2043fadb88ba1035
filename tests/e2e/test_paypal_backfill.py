"""Backfilling PayPal over real HTTP: a 90-day range is read in windows of at most 31 days, Transaction Search is
never asked for more, and a window PayPal finds too large is split rather than cut."""
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO
from urllib.parse import parse_qs, urlsplit

import time_machine
from django.core.management import call_command
from django.utils import timezone

from connectors.models import HttpExchange, SyncRun
from sandbox.paypal import paypal_capture_create, paypal_refund_create, paypal_sandbox_configure
from tests.paypal.world import ANNA, MIKKO, world  # noqa: F401


def _searches() -> list[tuple[int, datetime, datetime]]:
    """(status, start, end) of every Transaction Search call the connector made."""
    found = []
    for exchange in HttpExchange.objects.filter(url__contains="/v1/reporting/transactions").order_by("id"):
        query = parse_qs(urlsplit(exchange.url).query)
        found.append((exchange.status_code, datetime.fromisoformat(query["start_date"][0].replace("Z", "+00:00")),
                      datetime.fromisoformat(query["end_date"][0].replace("Z", "+00:00"))))
    return found


def test_a_90_day_backfill_never_asks_transaction_search_for_more_than_31_days(world):
    # given: payments spread over three months
    now = timezone.now().replace(microsecond=0)
    captures = [paypal_capture_create(amount=Decimal(amount), currency="EUR", payer=MIKKO,
                                      at=now - timedelta(days=days), notify=False)
                for days, amount in ((85, "10.00"), (61, "20.00"), (33, "30.00"), (4, "40.00"))]
    refund = paypal_refund_create(captures[0].object_id, amount=Decimal("5.00"), at=now - timedelta(days=84),
                                  notify=False)
    first, last = (now - timedelta(days=90)).date(), (now - timedelta(days=1)).date()
    stdout, stderr = StringIO(), StringIO()

    # when
    call_command("paypal_backfill", "nordlys", "--from", first.isoformat(), "--to", last.isoformat(),
                 stdout=stdout, stderr=stderr)

    # then
    searches = _searches()
    assert len(searches) == 9  # captures, refunds, reversals: three windows each
    assert {status for status, _start, _end in searches} == {200}
    assert max(end - start for _status, start, end in searches) == timedelta(days=31)
    windows = sorted({(start, end) for _status, start, end in searches})
    assert windows[0][0].date() == first and windows[-1][1].date() == last + timedelta(days=1)
    assert all(previous[1] == following[0] for previous, following in zip(windows, windows[1:]))
    assert {world.record("captures", capture.object_id).status for capture in captures} == {"posted"}
    assert world.record("refunds", refund.object_id).status == "posted"
    assert SyncRun.objects.filter(trigger="backfill", stream="captures").count() == 3
    assert "captures: 3 window(s), fetched 4, posted 4, flagged 0, skipped 0, waiting 0, retrying 0, failed 0" in stdout.getvalue()
    assert "3/3" in stderr.getvalue() and "[##############################]" in stderr.getvalue()


def test_a_backfill_run_twice_posts_nothing_twice(world):
    # given
    now = timezone.now().replace(microsecond=0)
    capture = paypal_capture_create(amount=Decimal("12.00"), currency="EUR", payer=ANNA, at=now - timedelta(days=3),
                                    notify=False)
    arguments = ["paypal_backfill", "nordlys", "--from", (now - timedelta(days=10)).date().isoformat(),
                 "--to", now.date().isoformat(), "--stream", "captures"]
    call_command(*arguments, stdout=StringIO(), stderr=StringIO())
    stdout = StringIO()

    # when
    call_command(*arguments, stdout=stdout, stderr=StringIO())

    # then
    assert "captures: 1 window(s), fetched 1, posted 0, flagged 0, skipped 1, waiting 0, retrying 0, failed 0" in stdout.getvalue()
    assert len(world.journal_with(capture.object_id)) == 1


def test_a_window_paypal_finds_too_large_is_split_and_read_whole(world):
    # given: PayPal serves at most 2 transactions per search; the day holds 5
    paypal_sandbox_configure(search_result_limit=2)
    now = timezone.now().replace(microsecond=0)
    day = (now - timedelta(days=2)).replace(hour=8, minute=0, second=0)
    captures = [paypal_capture_create(amount=Decimal("10.00"), currency="EUR", payer=ANNA,
                                      at=day + timedelta(hours=hour), notify=False) for hour in range(5)]

    # when
    call_command("paypal_backfill", "nordlys", "--from", day.date().isoformat(), "--to", day.date().isoformat(),
                 "--stream", "captures", stdout=StringIO(), stderr=StringIO())

    # then
    assert {world.record("captures", capture.object_id).status for capture in captures} == {"posted"}
    statuses = [status for status, _start, _end in _searches()]
    assert statuses.count(400) >= 1 and statuses[-1] == 200
    assert world.records("captures").count() == 5


def test_a_backfill_reaching_past_what_paypal_has_published_reads_to_there_and_succeeds(world):
    # given: PayPal publishes four hours late; the range runs to the end of today
    now = timezone.now().replace(microsecond=0)
    paypal_sandbox_configure(publication_delay=timedelta(hours=4))
    with time_machine.travel(now, tick=False):
        published = paypal_capture_create(amount=Decimal("15.00"), currency="EUR", payer=ANNA,
                                          at=now - timedelta(hours=6), notify=False)
        late = paypal_capture_create(amount=Decimal("16.00"), currency="EUR", payer=ANNA,
                                     at=now - timedelta(hours=1), notify=False)
        stdout, stderr = StringIO(), StringIO()

        # when
        call_command("paypal_backfill", "nordlys", "--from", (now - timedelta(days=40)).date().isoformat(),
                     "--to", now.date().isoformat(), "--stream", "captures", stdout=stdout, stderr=stderr)

    # then
    horizon = now - timedelta(hours=4)
    assert stdout.getvalue() == (
        "captures: 2 window(s), fetched 1, posted 1, flagged 0, skipped 0, waiting 0, retrying 0, failed 0; "
        f"read up to {horizon:%Y-%m-%d %H:%M:%S} UTC, what PayPal has published\n"
    )
    assert stderr.getvalue().endswith(f"read up to {horizon:%Y-%m-%d %H:%M:%S} UTC, what PayPal has published\n")
    runs = list(SyncRun.objects.filter(trigger="backfill", stream="captures").order_by("window_start"))
    assert [(run.status, run.published_until) for run in runs] == [("completed", None), ("completed", horizon)]
    assert world.record("captures", published.object_id).status == "posted"
    assert not world.records("captures").filter(source_id=late.object_id).exists()
    assert {status for status, _start, _end in _searches()} == {200}


def test_a_backfill_of_a_day_paypal_has_published_nothing_of_yet_reads_nothing_and_succeeds(world):
    # given: today is not published at all yet (PayPal answers "Data for the given start date is not available.")
    now = timezone.now().replace(microsecond=0)
    midnight = now.replace(hour=0, minute=0, second=0)
    paypal_sandbox_configure(publication_delay=now - midnight + timedelta(hours=1))
    with time_machine.travel(now, tick=False):
        paypal_capture_create(amount=Decimal("17.00"), currency="EUR", payer=ANNA, at=now, notify=False)
        stdout = StringIO()

        # when
        call_command("paypal_backfill", "nordlys", "--from", now.date().isoformat(), "--to", now.date().isoformat(),
                     "--stream", "captures", stdout=stdout, stderr=StringIO())

    # then
    assert stdout.getvalue() == (
        "captures: 1 window(s), fetched 0, posted 0, flagged 0, skipped 0, waiting 0, retrying 0, failed 0; "
        f"read up to {midnight:%Y-%m-%d %H:%M:%S} UTC, what PayPal has published\n"
    )
    assert [status for status, _start, _end in _searches()] == [400]
    assert world.records("captures").count() == 0
