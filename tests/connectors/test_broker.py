"""The inbox is the queue: the cluster's broker hands stored webhook events to workers straight from their rows."""
import json
import signal
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.db import connections
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.models import OrmQ
from django_q.signing import SignedPackage
from django_q.tasks import async_task

from audit.models import SyncRecord
from connectors import tasks
from connectors.broker import InboxBroker
from connectors.models import InboundEvent
from connectors.services import inbox_claim
from tests.connectors.test_concurrency import race
from tests.factories import ConnectionFactory, GLAccountFactory, GLMappingRuleFactory, IntegrationFactory
from tests.ledger_stream import sign

SECRET = "wh-secret"


def books(**fields):
    integration = IntegrationFactory(
        partner_connection=ConnectionFactory(system="paypal", credentials={"client_id": "c", "client_secret": "s",
                                                                           "webhook_secret": SECRET}), **fields,
    )
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant)
    return integration


def deliver(client, integration, event_id: str, payment_id: str) -> int:
    body = json.dumps({"id": event_id, "type": "payment.completed", "resource_id": payment_id}).encode()
    return client.post(integration.webhook_path, data=body, content_type="application/json",
                       HTTP_X_TEST_SIGNATURE=sign(SECRET, body)).status_code


def run(task_set, broker) -> list[str]:
    """What a worker does with each task the pusher got: unpack it, call its function, acknowledge it."""
    results = []
    for ack_id, package in task_set:
        task = SignedPackage.loads(package)
        module, function = task["func"].rsplit(".", 1)
        results.append(getattr(__import__(module, fromlist=[function]), function)(*task["args"], **task["kwargs"]))
        broker.acknowledge(ack_id)
    return results


@pytest.mark.django_db
def test_the_cluster_uses_the_inbox_broker_over_django_q2s_own(settings):
    # when
    broker = get_broker()

    # then
    assert isinstance(broker, InboxBroker)
    assert type(broker.inner).__name__ == ("Redis" if settings.REDIS_URL else "ORM")


@pytest.mark.django_db
def test_a_stored_event_is_handed_to_a_worker_once_and_processed(client, payments_stream):
    # given
    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    assert deliver(client, integration, "EVT-1", "P-1") == 200
    event = InboundEvent.objects.get()
    broker = InboxBroker()

    # when the pusher asks for work twice before the worker runs
    first = broker.dequeue()
    with mock.patch.object(broker.inner, "dequeue", return_value=None) as inner_dequeue:
        second = broker.dequeue()

    # then the event was handed out once, as django-q2's task for inbound_event_process, and leased
    [(ack_id, package)] = first
    task = SignedPackage.loads(package)
    assert (ack_id, task["func"], task["args"], task["name"]) == (
        f"inbox:{event.pk}", "connectors.tasks.inbound_event_process", (event.pk,), f"inbound-event-{event.pk}")
    assert (second, inner_dequeue.call_count) == (None, 1)
    event.refresh_from_db()
    assert (event.status, event.dispatched_at is not None) == ("pending", True)

    # when the worker runs it
    assert run(first, broker) == ["processed"]

    # then posted once, and nothing was ever written to the ORM queue
    record = SyncRecord.objects.get()
    assert (record.status, record.target_id) == ("posted", "JT-00001")
    assert payments_stream.LEDGER.writes == 1
    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_tasks_already_on_the_queue_go_before_the_inbox(client, payments_stream):
    # given a task on django-q2's own queue and an event in the inbox
    integration = books()
    deliver(client, integration, "EVT-1", "P-1")
    async_task("connectors.tasks.records_advance_due")
    broker = InboxBroker()

    # when
    first, second = broker.dequeue(), broker.dequeue()

    # then
    assert SignedPackage.loads(first[0][1])["func"] == "connectors.tasks.records_advance_due"
    assert SignedPackage.loads(second[0][1])["func"] == "connectors.tasks.inbound_event_process"
    # when the queued task is acknowledged, it leaves the queue
    broker.acknowledge(first[0][0])
    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_when_the_queue_is_down_no_event_is_claimed_so_none_waits_out_a_lease(client, payments_stream):
    # given an event in the inbox and a broker whose queue cannot be reached
    integration = books()
    deliver(client, integration, "EVT-1", "P-1")
    broker = InboxBroker()

    # when the pusher asks for work
    with mock.patch.object(broker.inner, "queue_size", side_effect=ConnectionError("queue down")), \
            pytest.raises(ConnectionError):
        broker.dequeue()

    # then (django-q2 restarts its pusher) the event is still free for the next one
    assert InboundEvent.objects.get().dispatched_at is None
    assert inbox_claim(limit=1) == [InboundEvent.objects.get().pk]


@pytest.mark.django_db
def test_a_claim_takes_at_most_its_limit_oldest_first(client, payments_stream):
    # given
    integration = books()
    for n in range(5):
        deliver(client, integration, f"EVT-{n}", f"P-{n}")

    # when
    claimed = inbox_claim(limit=2)

    # then
    assert list(InboundEvent.objects.filter(pk__in=claimed).values_list("event_id", flat=True).order_by(
        "received_at", "pk")) == ["EVT-0", "EVT-1"]
    assert InboundEvent.objects.filter(dispatched_at__isnull=False).count() == 2


@pytest.mark.django_db
def test_an_event_of_a_disabled_integration_waits_until_it_is_enabled(client, payments_stream):
    # given
    integration = books(enabled=False)
    deliver(client, integration, "EVT-1", "P-1")

    # when
    while_disabled = inbox_claim(limit=10)
    integration.enabled = True
    integration.save()
    once_enabled = inbox_claim(limit=10)

    # then
    assert (while_disabled, once_enabled) == ([], [InboundEvent.objects.get().pk])


@pytest.mark.django_db
def test_an_event_whose_worker_died_is_handed_out_again_when_its_lease_runs_out(client, payments_stream):
    # given an event handed to a worker that never finished it
    integration = books()
    deliver(client, integration, "EVT-1", "P-1")
    [event_id] = inbox_claim(limit=10)

    # when
    within_lease = inbox_claim(limit=10)
    InboundEvent.objects.filter(pk=event_id).update(dispatched_at=timezone.now() - timedelta(seconds=361))
    after_lease = inbox_claim(limit=10)

    # then
    assert (within_lease, after_lease) == ([], [event_id])


@pytest.mark.django_db
def test_the_sweep_leaves_an_event_a_worker_holds_and_retries_a_failed_one(client, payments_stream):
    # given two old events: one leased to a worker right now, one that failed once
    integration = books()
    payments_stream.SOURCE["P-2"] = {"amount": "20.00", "currency": "EUR"}
    deliver(client, integration, "EVT-1", "P-1")
    deliver(client, integration, "EVT-2", "P-2")
    old = timezone.now() - timedelta(minutes=5)
    InboundEvent.objects.update(received_at=old)
    InboundEvent.objects.filter(event_id="EVT-1").update(dispatched_at=timezone.now())
    InboundEvent.objects.filter(event_id="EVT-2").update(status="failed", attempts=1, dispatched_at=old,
                                                         processed_at=old + timedelta(seconds=2))

    # when
    swept = tasks.inbox_sweep()

    # then
    assert swept == 1
    assert dict(InboundEvent.objects.values_list("event_id", "status")) == {"EVT-1": "pending", "EVT-2": "processed"}


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_pushers_claiming_at_once_never_take_the_same_event(client, payments_stream):
    # given
    integration = books()
    for n in range(20):
        deliver(client, integration, f"EVT-{n}", f"P-{n}")

    # when
    outcomes = race(lambda: inbox_claim(limit=15), lambda: inbox_claim(limit=15))

    # then
    assert [kind for kind, _ in outcomes] == ["ok", "ok"]
    first, second = (claimed for _, claimed in outcomes)
    assert set(first).isdisjoint(second)
    assert len(first) + len(second) == 20


def _wait_for(condition, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_real_cluster_on_the_orm_broker_posts_a_stored_event_within_seconds(client, payments_stream):
    # given a cluster already waiting for work (forked workers inherit the test stream registration)
    from django_q.cluster import Cluster

    integration = books()
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    broker = get_broker()
    # No connection may be shared with the forked cluster (building the broker opened one).
    connections.close_all()
    cluster = Cluster(broker)
    cluster.start()
    try:
        time.sleep(2)

        # when a webhook is stored
        assert deliver(client, integration, "EVT-1", "P-1") == 200
        # (the sweep takes only events a minute old: whatever is processed sooner, the broker handed over)
        processed = _wait_for(
            lambda: InboundEvent.objects.filter(status=InboundEvent.Status.PROCESSED).exists(), seconds=30)
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])

    # then it is posted once, with nothing written to the ORM queue for it (bench/inbox_latency_bench.py measures
    # how soon)
    assert processed
    assert InboundEvent.objects.get().dispatched_at is not None
    record = SyncRecord.objects.get()
    assert (record.source_id, record.status) == ("P-1", "posted")
    assert OrmQ.objects.count() == 0
