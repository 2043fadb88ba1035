"""Real races on PostgreSQL: workers delivering one source object at once meet on one row and post it once."""
import threading
from collections.abc import Callable

import pytest
from django.db import connection

from audit.models import AuditEntry, SyncRecord
from audit.services import record_upsert
from connectors.models import InboundEvent
from connectors.pipeline import inbound_event_process, record_advance, record_ingest, stream_poll
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def race(*workers: Callable[[], object]) -> list[tuple[str, object]]:
    """Run each worker in its own thread with its own connection, released at the same instant."""
    barrier = threading.Barrier(len(workers))
    outcomes: list[tuple[str, object]] = [("not run", None)] * len(workers)

    def run(index: int, work: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = ("ok", work())
        except BaseException as exc:  # noqa: BLE001 — the test asserts on whatever a worker raised
            outcomes[index] = ("raised", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index, work)) for index, work in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return outcomes


def books():
    integration = IntegrationFactory()
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures")
    return integration


def test_two_workers_delivering_the_same_payment_at_once_post_it_once(payments_stream):
    # given
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    payments_stream.LEDGER.write_delay = 0.5

    def deliver():
        source = payments_stream.PaymentsStream(integration).read_one("P-1")
        record, created = record_ingest(integration, "payments", source)
        return created, record_advance(record).status

    # when
    outcomes = race(deliver, deliver)

    # then
    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    assert sorted(created for _, (created, _status) in outcomes) == [False, True]
    record = SyncRecord.objects.get()
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert payments_stream.LEDGER.writes == 1
    # the loser's attempt left no trace: one arrival, one path to posted
    assert list(
        AuditEntry.objects.filter(sync_record=record).order_by("id").values_list("from_status", "to_status")
    ) == [("", "received"), ("received", "ready"), ("ready", "posting"), ("posting", "posted")]


def test_a_webhook_and_a_poller_racing_on_one_payment_post_it_once(payments_stream):
    # given
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    payments_stream.LEDGER.write_delay = 0.5
    event = InboundEvent.objects.create(
        integration=integration, event_id="WH-1", event_type="PAYMENT.CAPTURE.COMPLETED",
        body='{"id": "WH-1", "type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": "P-1"}',
    )

    # when
    outcomes = race(
        lambda: inbound_event_process(event).status,
        lambda: stream_poll(integration, "payments"),
    )

    # then
    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    assert outcomes[0][1] == "processed"
    run = outcomes[1][1]
    assert (run.status, run.fetched) == ("completed", 1)
    # the poller posted it, or found it settled or being posted: never flagged, failed or counted twice
    assert (run.flagged, run.failed) == (0, 0)
    assert run.posted + run.skipped <= 1
    record = SyncRecord.objects.get()
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert payments_stream.LEDGER.writes == 1


def test_ten_workers_delivering_the_same_payment_post_it_once(payments_stream):
    # given
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    payments_stream.LEDGER.write_delay = 0.3

    def deliver():
        source = payments_stream.PaymentsStream(integration).read_one("P-1")
        record, _ = record_ingest(integration, "payments", source)
        return record_advance(record).status

    # when
    outcomes = race(*[deliver] * 10)

    # then
    assert [kind for kind, _ in outcomes] == ["ok"] * 10
    assert SyncRecord.objects.get().status == "posted"
    assert payments_stream.LEDGER.writes == 1
    assert AuditEntry.objects.filter(to_status="posted").count() == 1


def test_concurrent_upserts_of_a_new_source_object_make_one_row(payments_stream):
    # given
    integration = books()

    def upsert():
        record, created = record_upsert(
            integration=integration, stream="payments", source_id="P-1", payload={"amount": "10.00"},
            source_updated_at=None, amount=None, currency="EUR",
        )
        return record.pk, created

    # when
    outcomes = race(*[upsert] * 6)

    # then no IntegrityError leaked, every worker got the same row, and only one created it
    assert [kind for kind, _ in outcomes] == ["ok"] * 6
    assert len({pk for _, (pk, _created) in outcomes}) == 1
    assert sorted(created for _, (_pk, created) in outcomes) == [False] * 5 + [True]
    assert SyncRecord.objects.count() == 1
    assert AuditEntry.objects.filter(to_status="received").count() == 1
