"""The review queue in the admin: the review page, approve with corrections, reject with a reason, replay."""
import html
import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from audit.models import AuditEntry, SyncRecord
from audit.services import record_reject, record_upsert
from mappings.models import FinancialPeriod
from tests.admin.factories import (
    UNKNOWN_ACCOUNT_REASON,
    HttpExchangeFactory,
    capture_posting,
    flagged_record_create,
)
from tests.factories import IntegrationFactory

pytestmark = pytest.mark.django_db

APPROVE = reverse("admin:audit_syncrecord_approve")
REJECT = reverse("admin:audit_syncrecord_reject")
REPLAY = reverse("admin:audit_syncrecord_replay")
QUEUE = reverse("admin:audit_syncrecord_changelist")


def text(response) -> str:
    """The page's text with tags and runs of whitespace collapsed, to assert on what a person reads."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def queued_tasks() -> list[tuple[str, tuple]]:
    return [(task["func"], task["args"]) for task in (SignedPackage.loads(row.payload) for row in OrmQ.objects.all())]


def test_the_review_page_shows_reasons_payload_proposed_posting_trail_and_exchanges(client, finance, flagged):
    # given
    HttpExchangeFactory(connection=flagged.integration.visma_connection, sync_record=flagged)
    HttpExchangeFactory(connection=flagged.integration.visma_connection, url="https://api.finance.visma.net/v1/other")
    client.force_login(finance)

    # when
    response = client.get(reverse("admin:audit_syncrecord_change", args=[flagged.pk]))

    # then
    page = text(response)
    source = response.content.decode()
    assert response.status_code == 200
    assert "Why it is flagged" in page
    assert "GL account 9999 on line 3 (account) is unknown in Visma" in page
    assert '  &quot;amount&quot;: {\n    &quot;currency_code&quot;: &quot;EUR&quot;,' in source  # pretty-printed JSON
    assert "Role GL account Dimensions Description Debit Credit" in page
    assert "clearing 1920 1=100 96.60" in page
    assert "fee 7770 1=100 3.40" in page
    assert "account 9999 1=100 100.00" in page
    assert "Totals · balanced 100.00 100.00" in page
    assert "system ∅ → received received from source 5TY05013RG002845M" in page
    assert f"system received → flagged {UNKNOWN_ACCOUNT_REASON}" in page
    assert "POST https://api.finance.visma.net/v1/journaltransaction" in page
    assert "/v1/other" not in page
    assert "Approve…" in page and "Reject…" in page and "Replay…" in page


def test_the_review_queue_opens_on_flagged_records_and_shows_their_columns(client, finance, flagged):
    # given
    record_upsert(integration=flagged.integration, stream="payments", source_id="RECEIVED-ONLY", payload={},
                  source_updated_at=None, amount=None, currency="")
    client.force_login(finance)

    # when
    queue = client.get(QUEUE)
    everything = client.get(QUEUE, {"status": "all"})
    searched = client.get(QUEUE, {"q": "RECEIVED-ONLY"})

    # then
    page = text(queue)
    assert "5TY05013RG002845M" in page and "RECEIVED-ONLY" not in page
    assert "nordlys · PayPal ↔ Visma payments 100.00 EUR Flagged for review GL account 9999 on line 3" in page
    assert everything.context["cl"].result_count == 2
    assert [record.source_id for record in searched.context["cl"].result_list] == ["RECEIVED-ONLY"]


def test_approve_with_corrections_changes_the_status_and_writes_one_audit_entry_naming_the_user(
    client, finance, flagged, django_capture_on_commit_callbacks
):
    # given
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()
    form_page = client.get(APPROVE, {"ids": flagged.pk})

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{APPROVE}?ids={flagged.pk}", {
            "account_account": "3010", "dimension_1": "200", "customer": "10001", "note": "revenue account fixed",
        })

    # then
    assert form_page.status_code == 200
    assert "GL account for the revenue / receivable line" in text(form_page)
    assert "Proposed: 9999" in text(form_page)
    assert response.status_code == 302
    assert response.url == reverse("admin:audit_syncrecord_change", args=[flagged.pk])
    record = SyncRecord.objects.get(pk=flagged.pk)
    assert record.status == "approved"
    assert record.corrected_posting == {"accounts": {"account": "3010"}, "dimensions": {"1": "200"},
                                        "customer": "10001"}
    assert AuditEntry.objects.count() == entries_before + 1
    entry = AuditEntry.objects.get(sync_record=record, to_status="approved")
    assert (entry.actor, entry.user, entry.from_status, entry.reason) == (
        "frank.finance", finance, "flagged", "revenue account fixed")
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "5TY05013RG002845M: approved with corrections; a worker will post it."]
    assert queued_tasks() == [("connectors.tasks.record_advance", (record.pk,))]


def test_the_review_page_shows_the_corrected_posting_after_approval(client, finance, flagged):
    # given
    client.force_login(finance)
    client.post(f"{APPROVE}?ids={flagged.pk}", {"account_account": "3010", "customer": "10001"})

    # when
    response = client.get(reverse("admin:audit_syncrecord_change", args=[flagged.pk]))

    # then
    page = text(response)
    assert "Corrected posting (as it will be written)" in page
    assert "account 3010 1=100 100.00" in page
    assert "customer 10001" in page
    assert "frank.finance flagged → approved approved with corrections" in page
    assert "Approve…" not in page and "Reject…" not in page


def test_approve_with_an_unknown_account_is_refused_by_the_form_and_changes_nothing(client, finance, flagged):
    # given
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()

    # when
    response = client.post(f"{APPROVE}?ids={flagged.pk}", {"account_account": "4242", "dimension_1": "999"})

    # then
    assert response.status_code == 200
    assert "GL account 4242 is unknown in Visma (nordlys)." in text(response)
    assert "Value 999 of segment 1 is unknown in Visma (nordlys)." in text(response)
    assert SyncRecord.objects.get(pk=flagged.pk).status == "flagged"
    assert AuditEntry.objects.count() == entries_before
    assert queued_tasks() == []


def test_approve_as_proposed_on_a_posting_without_account_asks_for_one(client, finance, integration):
    # given
    record = flagged_record_create(integration, "NO-RULE", posting=capture_posting("NO-RULE", account=""))
    client.force_login(finance)

    # when
    response = client.post(f"{APPROVE}?ids={record.pk}", {})

    # then
    assert "NO-RULE has no GL account on its account line: enter one." in text(response)
    assert SyncRecord.objects.get(pk=record.pk).status == "flagged"


def test_reject_with_a_reason_changes_the_status_and_writes_one_audit_entry_naming_the_user(
    client, finance, flagged
):
    # given
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()

    # when
    response = client.post(f"{REJECT}?ids={flagged.pk}", {"reason": "test payment, refunded the same day"})

    # then
    assert response.status_code == 302
    record = SyncRecord.objects.get(pk=flagged.pk)
    assert record.status == "rejected"
    assert AuditEntry.objects.count() == entries_before + 1
    entry = AuditEntry.objects.get(sync_record=record, to_status="rejected")
    assert (entry.actor, entry.user, entry.from_status, entry.reason) == (
        "frank.finance", finance, "flagged", "test payment, refunded the same day")


def test_reject_without_a_reason_is_refused_and_changes_nothing(client, finance, flagged):
    # given
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()

    # when
    response = client.post(f"{REJECT}?ids={flagged.pk}", {"reason": "   "})

    # then
    assert response.status_code == 200
    assert "This field is required." in text(response)
    assert SyncRecord.objects.get(pk=flagged.pk).status == "flagged"
    assert AuditEntry.objects.count() == entries_before


def test_replay_changes_the_status_writes_one_audit_entry_naming_the_user_and_queues_the_record(
    client, finance, flagged, django_capture_on_commit_callbacks
):
    # given
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()

    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"{REPLAY}?ids={flagged.pk}", {"reason": "account 9999 created in Visma"})

    # then
    assert response.status_code == 302
    record = SyncRecord.objects.get(pk=flagged.pk)
    assert record.status == "received"
    assert AuditEntry.objects.count() == entries_before + 1
    entry = AuditEntry.objects.get(sync_record=record, from_status="flagged", to_status="received")
    assert (entry.actor, entry.user, entry.reason) == ("frank.finance", finance, "account 9999 created in Visma")
    assert queued_tasks() == [("connectors.tasks.record_advance", (record.pk,))]


def test_the_changelist_actions_open_the_form_page_for_the_selected_records(client, finance, integration):
    # given
    first = flagged_record_create(integration, "A-1")
    second = flagged_record_create(integration, "A-2")
    client.force_login(finance)

    # when
    response = client.post(QUEUE + "?status=flagged", {
        "action": "reject_records", "_selected_action": [first.pk, second.pk], "index": 0,
    })
    form_page = client.get(response.url)
    rejected = client.post(response.url, {"reason": "duplicates of A-0"})

    # then
    assert response.status_code == 302
    assert response.url.startswith(f"{REJECT}?ids={first.pk}%2C{second.pk}&next=")
    assert "Reject 2 records" in text(form_page)
    assert rejected.url == QUEUE + "?status=flagged"
    assert list(SyncRecord.objects.filter(pk__in=[first.pk, second.pk]).values_list("status", flat=True)) == [
        "rejected", "rejected"]


def test_a_refused_transition_is_reported_per_record_and_writes_nothing(client, finance, flagged, integration):
    # given
    still_flagged = flagged_record_create(integration, "B-1")
    record_reject(flagged, user=finance, reason="duplicate")
    client.force_login(finance)
    entries_before = AuditEntry.objects.count()

    # when
    response = client.post(f"{APPROVE}?ids={flagged.pk},{still_flagged.pk}", {})

    # then
    assert [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)] == [
        ("error", "5TY05013RG002845M: Cannot approve a rejected record (status: rejected)"),
        ("success", "B-1: approved; a worker will post it."),
    ]
    assert SyncRecord.objects.get(pk=flagged.pk).status == "rejected"
    assert AuditEntry.objects.count() == entries_before + 1


def test_records_of_another_tenant_are_checked_against_their_own_books(client, finance, flagged):
    # given
    other = flagged_record_create(IntegrationFactory(tenant__slug="sorlys"), "C-1")
    client.force_login(finance)

    # when
    response = client.post(f"{APPROVE}?ids={flagged.pk},{other.pk}", {"account_account": "3010"})

    # then
    assert "GL account 3010 is unknown in Visma (sorlys)." in text(response)
    assert list(SyncRecord.objects.filter(pk__in=[flagged.pk, other.pk]).values_list("status", flat=True)) == [
        "flagged", "flagged"]


def test_approve_into_the_first_open_period_books_on_its_first_day_and_says_so_on_the_trail(client, finance, integration):
    # given: the posting is dated 2 November 2026, a period Visma has closed
    FinancialPeriod.objects.filter(tenant=integration.tenant, period_id="202611").update(
        closed_in_general_ledger=True)
    flagged = flagged_record_create(integration, posting=capture_posting("CAP-CLOSED", account="3000"),
                                    reasons=["financial period 202611 is closed"])
    client.force_login(finance)

    # when
    response = client.post(f"{APPROVE}?ids={flagged.pk}", {"into_first_open_period": "on"})

    # then
    assert response.status_code == 302
    record = SyncRecord.objects.get(pk=flagged.pk)
    assert (record.status, record.corrected_posting) == ("approved", {"date": "2026-12-01"})
    assert AuditEntry.objects.get(sync_record=record, to_status="approved").reason == (
        "approved into financial period 202612, booked on 2026-12-01")


def test_approve_on_a_chosen_date_in_a_closed_period_is_refused_by_the_form(client, finance, integration):
    # given
    FinancialPeriod.objects.filter(tenant=integration.tenant, period_id="202611").update(
        closed_in_general_ledger=True)
    flagged = flagged_record_create(integration, posting=capture_posting("CAP-CLOSED", account="3000"))
    client.force_login(finance)

    # when
    refused = client.post(f"{APPROVE}?ids={flagged.pk}", {"booking_date": "2026-11-20"})
    approved = client.post(f"{APPROVE}?ids={flagged.pk}", {"booking_date": "2026-12-03"})

    # then
    assert refused.status_code == 200
    assert (f"{flagged.source_id}: financial period 202611 (November) of 2026-11-20 is closed in the general "
            "ledger") in text(refused)
    assert approved.status_code == 302
    assert SyncRecord.objects.get(pk=flagged.pk).corrected_posting == {"date": "2026-12-03"}
