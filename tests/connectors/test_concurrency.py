"""Real races on PostgreSQL: workers delivering one source object at once meet on one row and post it once."""
import random
import threading
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from audit.models import AuditEntry, SyncRecord
from audit.services import record_upsert
from connectors.models import InboundEvent
from connectors.pipeline import (
    inbound_event_process,
    record_advance,
    record_ingest,
    records_advance_due,
    records_claim_due,
    stream_poll,
)
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory
from tests.ledger_stream import Crash

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


def test_two_overlapping_sweeps_never_claim_the_same_record(payments_stream, settings):
    # given 60 records received and idle (due for a sweep)
    integration = books()
    SyncRecord.objects.bulk_create([
        SyncRecord(integration=integration, stream="payments", source_id=f"P-{number}") for number in range(60)
    ])
    SyncRecord.objects.update(updated_at=timezone.now() - timedelta(minutes=5))

    # when two sweeps claim batches of 25 at the same instant, three times over
    claimed = []
    for _ in range(3):
        outcomes = race(lambda: records_claim_due(limit=25), lambda: records_claim_due(limit=25))
        assert [kind for kind, _ in outcomes] == ["ok", "ok"]
        claimed.extend(ids for _, ids in outcomes)

    # then no record was claimed twice, and every record was claimed once
    every = [pk for ids in claimed for pk in ids]
    assert len(every) == len(set(every)) == 60


def test_workers_racing_on_many_records_with_lost_answers_and_dead_workers_post_each_exactly_once(
        payments_stream, settings):
    # given 40 payments; writes lose their answer (20 %) or kill their worker after the write (10 %); claims of dead
    # workers run out after 3 s (far longer than a write takes here, as the lease is in production)
    settings.SYNC_POSTING_LEASE_SECONDS, settings.SYNC_WRITE_SETTLE_SECONDS = 3, 0
    settings.SYNC_RETRY_BASE_SECONDS, settings.SYNC_MAX_ATTEMPTS = 0, 50
    integration = books()
    ledger = payments_stream.LEDGER
    ledger.lose_answer_rate, ledger.crash_rate, ledger.write_delay = 0.2, 0.1, 0.01
    ids = []
    for number in range(40):
        payments_stream.SOURCE[f"P-{number:02d}"] = {"amount": f"{number + 1}.00", "currency": "EUR"}
        source = payments_stream.PaymentsStream(integration).read_one(f"P-{number:02d}")
        ids.append(record_ingest(integration, "payments", source)[0].pk)
    SyncRecord.objects.update(updated_at=timezone.now() - timedelta(minutes=5))
    deadline = time.monotonic() + 90

    def worker(seed: int):
        chooser = random.Random(seed)
        while time.monotonic() < deadline:
            if not SyncRecord.objects.exclude(status="posted").exists():
                return "done"
            try:
                if chooser.random() < 0.5:
                    records_advance_due(limit=5)
                else:
                    record_advance(SyncRecord(pk=chooser.choice(ids)))
            except Crash:
                pass  # the worker died mid-write; a new one takes its place
            time.sleep(0.05)
        return "out of time"

    # when four workers sweep and advance records at random
    outcomes = race(*[lambda seed=seed: worker(seed) for seed in range(4)])

    # then every record is posted, each marker is in the ledger exactly once, and no duplicate was written
    assert [outcome for outcome in outcomes] == [("ok", "done")] * 4
    records = list(SyncRecord.objects.all())
    assert {record.status for record in records} == {"posted"}
    markers = ledger.markers()
    assert sorted(markers) == sorted(record.posting_marker for record in records)
    assert [record.duplicate_targets for record in records] == [[]] * 40
    assert AuditEntry.objects.filter(action="possible_duplicate").count() == 0
    # the faults did happen
    assert ledger.writes == 40 and ledger.lookups > 0
