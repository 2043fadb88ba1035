"""The thin django-q2 entry points: load by id, call the service, never lose a committed review."""
from unittest import mock

import pytest
from django_q.models import OrmQ

from audit.services import record_approve
from connectors import tasks
from connectors.pipeline import record_advance, record_ingest
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory, UserFactory

pytestmark = pytest.mark.django_db


def approved_record(payments_stream):
    integration = IntegrationFactory()
    for number in ("3000", "1920", "3010"):
        GLAccountFactory(tenant=integration.tenant, number=number, active=number != "3000")
    GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures")
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}
    record, _ = record_ingest(integration, "payments", payments_stream.PaymentsStream(integration).read_one("P-1"))
    record = record_advance(record)
    return record_approve(record, user=UserFactory(), corrected_posting={"accounts": {"account": "3010"}})


def test_a_review_enqueues_the_record_after_commit_and_the_task_posts_it(
    payments_stream, django_capture_on_commit_callbacks
):
    # given
    record = approved_record(payments_stream)

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.record_advance_later(record)

    # then nothing is queued before the commit
    assert (len(callbacks), OrmQ.objects.count()) == (1, 0)

    # when
    callbacks[0]()
    queued = OrmQ.objects.get()
    status = tasks.record_advance(*queued.args())

    # then
    assert (queued.func(), queued.args()) == ("connectors.tasks.record_advance", (record.pk,))
    assert status == "posted"
    assert payments_stream.LEDGER.writes == 1


def test_a_review_whose_task_cannot_be_queued_is_not_an_error_for_the_reviewer(
    payments_stream, django_capture_on_commit_callbacks, caplog
):
    # given a broker that is down
    record = approved_record(payments_stream)

    # when
    with mock.patch("django_q.tasks.async_task", side_effect=ConnectionError("broker down")), \
            django_capture_on_commit_callbacks(execute=True):
        tasks.record_advance_later(record)

    # then the record waits for the sweep, and the failure is logged
    record.refresh_from_db()
    assert record.status == "approved"
    assert f"could not enqueue record {record.pk}" in caplog.messages


def test_the_poll_task_does_nothing_for_a_disabled_integration(payments_stream):
    # given
    integration = IntegrationFactory(enabled=False)
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "currency": "EUR"}

    # when
    outcome = tasks.stream_poll(str(integration.pk), "payments")

    # then
    assert outcome == "integration disabled"
    assert integration.sync_runs.count() == 0
