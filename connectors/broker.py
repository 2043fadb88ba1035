"""The inbox is the queue: a django-q2 broker that hands stored webhook events to the workers straight from their rows.

A webhook's one write is its InboundEvent row. The cluster's pusher asks its broker for work in a loop; this broker is
django-q2's own (the ORM broker, or Redis in production) and, whenever that queue is empty, it claims pending inbound
events (connectors.services.inbox_claim: a lease on the row) and hands each over as a task for
connectors.tasks.inbound_event_process. An idle pusher waits in the inner broker (Q_CLUSTER "poll" seconds on the ORM,
a one-second BLPOP on Redis), so an event is picked up within about a second, and a claim whose worker died is taken
again when its lease (Q_CLUSTER "retry") runs out. Configured with Q_CLUSTER["broker_class"].
"""
from __future__ import annotations

from django_q.brokers import Broker
from django_q.conf import Conf
from django_q.tasks import async_task

INBOX_ACK_PREFIX = "inbox:"
TASK = "connectors.tasks.inbound_event_process"


def _configured_broker(list_key: str | None) -> Broker:
    """The broker django-q2 would use without broker_class: the ORM when Q_CLUSTER names one, else Redis."""
    if Conf.ORM:
        from django_q.brokers.orm import ORM

        return ORM(list_key=list_key)
    from django_q.brokers.redis_broker import Redis

    return Redis(list_key=list_key)


class _Packager:
    """Takes the package async_task signs, instead of sending it anywhere: the task format stays django-q2's own."""

    list_key = "inbox"

    def __init__(self):
        self.package = None

    def enqueue(self, package):
        self.package = package
        return None


def inbound_event_task_package(event_id: int) -> str:
    packager = _Packager()
    async_task(TASK, event_id, task_name=f"inbound-event-{event_id}", broker=packager, sync=False)
    return packager.package


class InboxBroker(Broker):
    """django-q2's configured broker, and the pending inbound events when its queue is empty."""

    def __init__(self, list_key: str | None = None):
        self.name = list_key
        self.inner = _configured_broker(list_key)
        self.list_key, self.connection, self.cache, self._info = (
            self.inner.list_key, self.inner.connection, self.inner.cache, None)

    def __getstate__(self):
        return self.name

    def __setstate__(self, state):
        self.__init__(state)

    def dequeue(self):
        from .services import inbox_claim

        if self.inner.queue_size():
            return self.inner.dequeue()
        claimed = inbox_claim(limit=max(int(Conf.WORKERS or 1), int(Conf.BULK or 1)))
        if claimed:
            return [(f"{INBOX_ACK_PREFIX}{event_id}", inbound_event_task_package(event_id)) for event_id in claimed]
        # Nothing anywhere: wait in the inner broker (it sleeps or blocks about a second) for a task to arrive.
        return self.inner.dequeue()

    def enqueue(self, task):
        return self.inner.enqueue(task)

    @staticmethod
    def _is_inbox(task_id) -> bool:
        return isinstance(task_id, str) and task_id.startswith(INBOX_ACK_PREFIX)

    def acknowledge(self, task_id):
        # An inbox task is done when its event leaves `pending` (processed, ignored, failed): nothing to remove.
        if not self._is_inbox(task_id):
            return self.inner.acknowledge(task_id)

    def fail(self, task_id):
        if not self._is_inbox(task_id):
            return self.inner.fail(task_id)

    def delete(self, task_id):
        if not self._is_inbox(task_id):
            return self.inner.delete(task_id)

    def queue_size(self):
        return self.inner.queue_size()

    def lock_size(self):
        return self.inner.lock_size()

    def delete_queue(self):
        return self.inner.delete_queue()

    def purge_queue(self):
        return self.inner.purge_queue()

    def ping(self) -> bool:
        return self.inner.ping()

    def info(self) -> str:
        return f"{self.inner.info()} + inbox"

    def set_stat(self, key: str, value: str, timeout: int):
        return self.inner.set_stat(key, value, timeout)

    def get_stat(self, key: str):
        return self.inner.get_stat(key)

    def get_stats(self, pattern: str):
        return self.inner.get_stats(pattern)
