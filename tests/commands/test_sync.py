from datetime import UTC, datetime

import pytest
from django.core.management.base import CommandError

from audit.models import SyncRecord
from connectors import registry
from connectors.models import SyncCursor, SyncRun
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory, TenantFactory

from .helpers import run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def only_the_test_stream(monkeypatch):
    """PayPal polls only the tests' payments stream here (added by `payments_stream`), never a real vendor."""
    monkeypatch.setattr(registry.kind_spec("paypal"), "streams", {})


@pytest.fixture
def integration(payments_stream):
    """Nordlys' PayPal integration with a capture rule whose accounts Visma has; refunds have no rule."""
    tenant = TenantFactory(slug="nordlys-friluft")
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=tenant, number=number)
    GLMappingRuleFactory(tenant=tenant, name="PayPal captures", transaction_type="capture")
    payments_stream.SOURCE.update({
        "P-1": {"amount": "100.00", "fee": "3.40", "currency": "NOK"},
        "P-2": {"amount": "250.00", "fee": "8.15", "currency": "NOK"},
        "P-3": {"amount": "40.00", "currency": "NOK", "type": "refund"},
    })
    return IntegrationFactory(tenant=tenant, kind="paypal")


def test_sync_runs_the_pollers_once_and_prints_the_counts(integration, payments_stream):
    # when
    stdout, stderr = run("sync", "nordlys-friluft", "paypal")

    # then
    assert stdout == (
        "payments: fetched 3, posted 2, flagged 1, skipped 0, waiting 0, retrying 0, failed 0\n"
        "total: fetched 3, posted 2, flagged 1, skipped 0, waiting 0, retrying 0, failed 0\n"
    )
    assert stderr.startswith("nordlys-friluft paypal payments: polling…\nnordlys-friluft paypal payments: done in ")
    assert dict(SyncRecord.objects.values_list("source_id", "status")) == {
        "P-1": "posted", "P-2": "posted", "P-3": "flagged",
    }
    assert sorted(payments_stream.LEDGER.documents) == ["JT-00001", "JT-00002"]
    run_row = SyncRun.objects.get()
    assert (run_row.trigger, run_row.status, run_row.fetched, run_row.flagged) == ("manual", "completed", 3, 1)
    assert SyncCursor.objects.get().position == run_row.window_end


def test_a_sync_reaching_past_what_the_vendor_has_published_succeeds_and_says_how_far_it_read(
        integration, payments_stream, time_machine):
    # given: PayPal has published up to 10:41:07
    time_machine.move_to(datetime(2026, 12, 6, 12, 0, 30, tzinfo=UTC), tick=False)
    payments_stream.SOURCE.published_until = datetime(2026, 12, 6, 10, 41, 7, tzinfo=UTC)

    # when
    stdout, _ = run("sync", "nordlys-friluft", "paypal")

    # then
    assert stdout == (
        "payments: fetched 3, posted 2, flagged 1, skipped 0, waiting 0, retrying 0, failed 0; "
        "read up to 2026-12-06 10:41:07 UTC, what PayPal has published\n"
        "total: fetched 3, posted 2, flagged 1, skipped 0, waiting 0, retrying 0, failed 0\n"
    )
    run_row = SyncRun.objects.get()
    assert (run_row.status, run_row.published_until) == ("completed", datetime(2026, 12, 6, 10, 41, 7, tzinfo=UTC))
    assert SyncCursor.objects.get().position == datetime(2026, 12, 6, 10, 41, 7, tzinfo=UTC)


def test_a_second_sync_skips_what_is_settled(integration, payments_stream):
    # given
    run("sync", "nordlys-friluft", "paypal", "--stream", "payments")

    # when
    stdout, _ = run("sync", "nordlys-friluft", "paypal", "--stream", "payments")

    # then
    assert stdout == (
        "payments: fetched 3, posted 0, flagged 0, skipped 3, waiting 0, retrying 0, failed 0\n"
        "total: fetched 3, posted 0, flagged 0, skipped 3, waiting 0, retrying 0, failed 0\n"
    )
    assert payments_stream.LEDGER.writes == 2


def test_an_unknown_stream_is_refused_before_anything_runs(integration):
    # when
    with pytest.raises(CommandError) as raised:
        run("sync", "nordlys-friluft", "paypal", "--stream", "captures")

    # then
    assert str(raised.value) == "paypal has no stream 'captures'; its streams: payments"
    assert SyncRun.objects.count() == 0
    assert SyncRecord.objects.count() == 0


@pytest.mark.parametrize(("slug", "kind", "message"), [
    ("nobody", "paypal", "Tenant 'nobody' has no paypal integration."),
    ("nordlys-friluft", "stripe", "Tenant 'nordlys-friluft' has no stripe integration."),
])
def test_an_unknown_tenant_or_kind_is_refused(integration, slug, kind, message):
    # when
    with pytest.raises(CommandError) as raised:
        run("sync", slug, kind)

    # then
    assert str(raised.value) == message
    assert SyncRun.objects.count() == 0


def test_a_disabled_integration_is_not_polled(integration):
    # given
    integration.enabled = False
    integration.save()

    # when
    with pytest.raises(CommandError) as raised:
        run("sync", "nordlys-friluft", "paypal")

    # then
    assert str(raised.value) == "The paypal integration of nordlys-friluft is disabled: nothing was polled."
    assert SyncRun.objects.count() == 0


def test_a_stream_that_raises_fails_the_command_and_the_run(integration, payments_stream):
    # given: a payment the source serves without an amount breaks the read
    payments_stream.SOURCE["P-0"] = {"currency": "NOK"}

    # when
    with pytest.raises(CommandError) as raised:
        run("sync", "nordlys-friluft", "paypal")

    # then
    assert str(raised.value) == "Could not complete: payments: KeyError: 'amount'"
    run_row = SyncRun.objects.get()
    assert (run_row.status, run_row.error) == ("failed", "KeyError: 'amount'")
    assert SyncCursor.objects.get().position is None


def test_an_inactive_tenant_is_not_polled(integration):
    # given
    integration.tenant.is_active = False
    integration.tenant.save()

    # when
    with pytest.raises(CommandError) as raised:
        run("sync", "nordlys-friluft", "paypal")

    # then
    assert str(raised.value) == "Tenant nordlys-friluft is inactive: nothing was polled."
    assert SyncRun.objects.count() == 0
