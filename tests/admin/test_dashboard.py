"""The admin's front page: records by status with the flagged count first, failed webhooks, each stream's last run."""
import html
import re

import pytest
from django.urls import reverse

from audit.selectors import dashboard_for, sync_runs_last_per_stream
from audit.services import record_upsert
from connectors.models import InboundEvent, SyncRun
from tests.admin.factories import InboundEventFactory, SyncRunFactory, flagged_record_create

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def activity(integration):
    """Two flagged records, one received; one failed and one processed webhook; three runs of two streams."""
    flagged_record_create(integration, "F-1")
    flagged_record_create(integration, "F-2")
    record_upsert(integration=integration, stream="payments", source_id="R-1", payload={}, source_updated_at=None,
                  amount=None, currency="")
    InboundEventFactory(integration=integration, status=InboundEvent.Status.FAILED, error="PayPal said 503")
    InboundEventFactory(integration=integration, status=InboundEvent.Status.PROCESSED)
    SyncRunFactory(integration=integration, stream="payments", fetched=7)
    SyncRunFactory(integration=integration, stream="payments", fetched=3, status=SyncRun.Status.FAILED,
                   error="TransientError: timeout")
    SyncRunFactory(integration=integration, stream="refunds", fetched=1)
    return integration


def test_the_last_run_of_each_stream_is_the_newest_one(activity):
    # when
    runs = sync_runs_last_per_stream()

    # then
    assert sorted((run.stream, run.fetched, run.status) for run in runs) == [
        ("payments", 3, "failed"), ("refunds", 1, "completed"),
    ]


def test_the_dashboard_counts_every_status_and_shows_only_what_the_user_may_see(activity, finance, operator):
    # when
    for_finance = dashboard_for(finance)
    for_operator = dashboard_for(operator)

    # then
    assert [(row.status, row.count) for row in for_finance.record_counts] == [
        ("received", 1), ("ready", 0), ("posting", 0), ("posted", 0), ("flagged", 2), ("approved", 0),
        ("rejected", 0), ("retrying", 0), ("waiting", 0), ("failed", 0),
    ]
    assert for_finance.flagged == 2
    assert (for_finance.failed_inbound_events, for_finance.last_sync_runs) == (None, None)
    assert for_operator.failed_inbound_events == 1
    assert [event.error for event in for_operator.latest_failed_events] == ["PayPal said 503"]
    assert len(for_operator.last_sync_runs) == 2


def test_finance_sees_the_flagged_count_linking_to_the_review_queue(client, finance, activity):
    # given
    client.force_login(finance)

    # when
    response = client.get(reverse("admin:index"))

    # then
    page = text(response)
    assert "2 records flagged for review Open the review queue" in page
    assert f'href="{reverse("admin:audit_syncrecord_changelist")}?status=flagged"' in response.content.decode()
    assert "Webhooks that failed" not in page and "Last run of each stream" not in page


def test_the_operator_sees_failed_webhooks_and_the_last_runs(client, operator, activity):
    # given
    client.force_login(operator)

    # when
    page = text(client.get(reverse("admin:index")))

    # then
    assert "Webhooks that failed to process: 1" in page
    assert "PayPal said 503" in page
    assert "payments Failed: TransientError: timeout 3 0 0 0" in page
    assert "refunds Completed 1 0 0 0" in page
