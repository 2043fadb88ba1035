"""Refused deliveries are counted per integration, reason and ten-minute window: a flood writes a bounded number of
rows and one audit entry per window, and a person still reads how many were refused and why."""
import time
from datetime import UTC, datetime
from unittest import mock

import pytest
import time_machine
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from audit.models import AuditEntry
from connectors import refusals
from connectors.models import InboundEvent, WebhookRefusal
from tests.connectors.deliveries import stripe_vendor
from tests.wsgi_client import wsgi_request



def forged(vendor, *, timestamp: int | None = None):
    body = vendor.envelope()
    header = f"t={int(time.time()) if timestamp is None else timestamp},v1={'0' * 64}"
    return wsgi_request(vendor.path, body, headers={"Stripe-Signature": header})


def _refusal_writes(queries) -> int:
    return sum(1 for query in queries if "connectors_webhookrefusal" in query["sql"]
               and query["sql"].lstrip().upper().startswith(("INSERT", "UPDATE")))


@pytest.mark.django_db
def test_a_flood_of_forged_deliveries_writes_one_row_and_one_audit_entry_counting_them_all(settings):
    # given refusals written at most every minute, as in production (every five seconds)
    settings.WEBHOOK_REFUSAL_FLUSH_SECONDS = 60
    vendor = stripe_vendor()
    refusals.webhook_refusals_flush()

    # when a thousand forged deliveries arrive
    with CaptureQueriesContext(connection) as queries:
        statuses = {forged(vendor).status_code for _ in range(1000)}

    # then each was refused; the first was written at once (an UPDATE that found no row, an INSERT), the rest wait
    assert statuses == {401}
    assert _refusal_writes(queries) == 2
    assert list(WebhookRefusal.objects.values_list("reason", "deliveries")) == [("bad_signature", 1)]
    assert AuditEntry.objects.count() == 1

    # when the counts are written (by the next refusal after a minute, the timer, or the process's exit)
    refusals.webhook_refusals_flush()

    # then one row counts them all, and the trail has one entry for the window
    refusal = WebhookRefusal.objects.get()
    assert (refusal.reason, refusal.deliveries, refusal.last_remote_addr) == ("bad_signature", 1000, "127.0.0.1")
    assert refusal.last_detail == "Stripe-Signature matches none of the 1 configured secret(s)"
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.integration_id, entry.reason) == (
        "webhook_rejected", vendor.integration.pk, "Stripe-Signature matches none of the 1 configured secret(s)")
    assert entry.details["refusal"] == "bad_signature"
    assert InboundEvent.objects.count() == 0


@pytest.mark.django_db
def test_a_reason_the_sender_varies_is_still_one_kind_of_refusal():
    # given
    vendor = stripe_vendor()

    # when each delivery carries another stale timestamp (and so another reason text)
    for offset in range(50):
        forged(vendor, timestamp=1_000_000 + offset)

    # then
    assert list(WebhookRefusal.objects.values_list("reason", "deliveries")) == [("stale", 50)]
    assert WebhookRefusal.objects.get().last_detail.startswith("timestamp 1000049 is outside")
    assert AuditEntry.objects.count() == 1


@pytest.mark.django_db
def test_each_window_and_each_kind_of_refusal_has_its_own_count_that_reads_as_a_sentence():
    # given
    vendor = stripe_vendor()

    # when
    with time_machine.travel(datetime(2026, 3, 2, 10, 1, tzinfo=UTC), tick=False):
        for _ in range(3):
            forged(vendor)
        wsgi_request(vendor.path, vendor.envelope())  # no signature at all
    with time_machine.travel(datetime(2026, 3, 2, 10, 12, tzinfo=UTC), tick=False):
        forged(vendor)

    # then
    assert [str(refusal) for refusal in WebhookRefusal.objects.order_by("window_start", "reason")] == [
        "3 deliveries refused 2026-03-02 10:00–10:10 UTC: bad signature",
        "1 deliveries refused 2026-03-02 10:00–10:10 UTC: signature missing",
        "1 deliveries refused 2026-03-02 10:10–10:20 UTC: bad signature",
    ]
    assert AuditEntry.objects.filter(action="webhook_rejected").count() == 3


@pytest.mark.django_db(transaction=True)
def test_counts_left_when_the_flood_stops_are_written_by_the_timer(settings):
    # given
    settings.WEBHOOK_REFUSAL_FLUSH_SECONDS = 0.2
    vendor = stripe_vendor()
    refusals.webhook_refusals_flush()

    # when five forged deliveries arrive and then nothing more
    for _ in range(5):
        forged(vendor)

    # then the timer writes the four that waited
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and WebhookRefusal.objects.get().deliveries < 5:
        time.sleep(0.05)
    assert WebhookRefusal.objects.get().deliveries == 5


@pytest.mark.django_db
def test_a_refusal_that_cannot_be_written_is_still_refused_not_an_error(caplog):
    # given a database that refuses the write
    vendor = stripe_vendor()

    # when
    with mock.patch.object(refusals, "_refusal_write", side_effect=OperationalError("database is locked")):
        response = forged(vendor)

    # then
    assert response.status_code == 401
    assert "could not count 1 refused webhook deliveries" in caplog.text
    assert (WebhookRefusal.objects.count(), InboundEvent.objects.count()) == (0, 0)
