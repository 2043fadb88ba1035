"""The production broker: a real django-q2 cluster on Redis takes stored webhook events from the inbox and posts them."""
import json
import signal
import time

import pytest
from django.conf import settings
from django.db import connections

from audit.models import SyncRecord
from connectors.models import InboundEvent
from tests.factories import ConnectionFactory, GLAccountFactory, GLMappingRuleFactory, IntegrationFactory

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


def _wait_for(condition, *, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def redis_broker():
    from django_q.brokers import get_broker

    broker = get_broker()
    assert type(broker.inner).__name__ == "Redis"
    assert broker.ping() is True
    broker.purge_queue()
    yield broker
    broker.purge_queue()


def test_settings_switch_django_q_to_redis_when_redis_url_is_set():
    # given REDIS_URL in the environment (this module runs only then)
    # then
    assert settings.Q_CLUSTER["redis"] == settings.REDIS_URL
    assert "orm" not in settings.Q_CLUSTER


def test_a_webhook_stored_in_the_inbox_is_posted_once_by_a_real_cluster_on_redis(client, payments_stream, redis_broker):
    # given a verified webhook for a payment, and its mapping and reference data
    integration = IntegrationFactory(
        partner_connection=ConnectionFactory(system="paypal", credentials={"client_id": "c", "client_secret": "s",
                                                                           "webhook_secret": "wh-secret"})
    )
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant)
    payments_stream.SOURCE["PAY-R1"] = {"amount": "250.00", "fee": "7.55", "currency": "EUR"}
    body = json.dumps({"id": "EVT-R1", "type": "payment.completed", "resource_id": "PAY-R1"}).encode()

    # when it is delivered twice
    for _ in range(2):
        response = client.post(
            integration.webhook_path, data=body, content_type="application/json",
            HTTP_X_TEST_SIGNATURE=payments_stream.sign("wh-secret", body),
        )
        assert response.status_code == 200

    # then one event waits in the inbox, nothing on the Redis queue, nothing processed yet
    assert (InboundEvent.objects.get().status, redis_broker.queue_size()) == ("pending", 0)
    assert SyncRecord.objects.count() == 0

    # when a real cluster runs (forked workers inherit the test stream registration)
    from django_q.cluster import Cluster

    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    connections.close_all()
    cluster = Cluster(redis_broker)
    cluster.start()
    try:
        processed = _wait_for(
            lambda: InboundEvent.objects.filter(status=InboundEvent.Status.PROCESSED).exists(), seconds=60
        )
    finally:
        cluster.stop()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])

    # then the event is processed and the payment posted exactly once
    assert processed
    record = SyncRecord.objects.get()
    assert (record.source_id, record.status) == ("PAY-R1", "posted")
    assert redis_broker.queue_size() == 0
