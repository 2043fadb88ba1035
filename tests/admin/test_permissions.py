"""Who sees which admin screen: Accountant, Finance, Operator, and what nobody may do, not even a superuser."""
import pytest
from django.urls import reverse

from audit.models import AuditEntry, SyncRecord
from tests.admin.factories import HttpExchangeFactory, InboundEventFactory, SyncRunFactory
from tests.factories import GLMappingRuleFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def screens(integration, flagged):
    """Admin URLs by a short name, with real objects behind the change pages."""
    tenant = integration.tenant
    rule = GLMappingRuleFactory(tenant=tenant)
    run = SyncRunFactory(integration=integration)
    event = InboundEventFactory(integration=integration)
    exchange = HttpExchangeFactory(connection=integration.visma_connection, sync_record=flagged)
    entry = AuditEntry.objects.filter(sync_record=flagged).first()
    return {
        "dashboard": reverse("admin:index"),
        "rules": reverse("admin:mappings_glmappingrule_changelist"),
        "rule add": reverse("admin:mappings_glmappingrule_add"),
        "rule history": reverse("admin:mappings_glmappingrule_history", args=[rule.pk]),
        "accounts": reverse("admin:mappings_glaccount_changelist"),
        "account add": reverse("admin:mappings_glaccount_add"),
        "customers": reverse("admin:mappings_customer_changelist"),
        "external refs add": reverse("admin:mappings_externalreference_add"),
        "review queue": reverse("admin:audit_syncrecord_changelist"),
        "review page": reverse("admin:audit_syncrecord_change", args=[flagged.pk]),
        "approve": reverse("admin:audit_syncrecord_approve") + f"?ids={flagged.pk}",
        "reject": reverse("admin:audit_syncrecord_reject") + f"?ids={flagged.pk}",
        "replay": reverse("admin:audit_syncrecord_replay") + f"?ids={flagged.pk}",
        "record add": reverse("admin:audit_syncrecord_add"),
        "record delete": reverse("admin:audit_syncrecord_delete", args=[flagged.pk]),
        "audit entries": reverse("admin:audit_auditentry_changelist"),
        "audit entry add": reverse("admin:audit_auditentry_add"),
        "audit entry delete": reverse("admin:audit_auditentry_delete", args=[entry.pk]),
        "connections": reverse("admin:connectors_connection_changelist"),
        "connection": reverse("admin:connectors_connection_change", args=[integration.visma_connection.pk]),
        "integrations": reverse("admin:connectors_integration_changelist"),
        "tenants": reverse("admin:connectors_tenant_changelist"),
        "sync runs": reverse("admin:connectors_syncrun_changelist"),
        "sync run": reverse("admin:connectors_syncrun_change", args=[run.pk]),
        "inbound events": reverse("admin:connectors_inboundevent_changelist"),
        "inbound event": reverse("admin:connectors_inboundevent_change", args=[event.pk]),
        "exchanges": reverse("admin:connectors_httpexchange_changelist"),
        "exchange": reverse("admin:connectors_httpexchange_change", args=[exchange.pk]),
    }


EXPECTED = {
    # screen:             Accountant, Finance, Operator, superuser
    "dashboard":          (200, 200, 200, 200),
    "rules":              (200, 200, 403, 200),
    "rule add":           (200, 403, 403, 200),
    "rule history":       (200, 200, 403, 200),
    "accounts":           (200, 200, 403, 200),
    "account add":        (403, 403, 403, 403),
    "customers":          (200, 200, 403, 200),
    "external refs add":  (200, 403, 403, 200),
    "review queue":       (200, 200, 200, 200),
    "review page":        (200, 200, 200, 200),
    "approve":            (403, 200, 403, 200),
    "reject":             (403, 200, 403, 200),
    "replay":             (403, 200, 200, 200),
    "record add":         (403, 403, 403, 403),
    "record delete":      (403, 403, 403, 403),
    "audit entries":      (200, 200, 200, 200),
    "audit entry add":    (403, 403, 403, 403),
    "audit entry delete": (403, 403, 403, 403),
    "connections":        (403, 403, 200, 200),
    "connection":         (403, 403, 200, 200),
    "integrations":       (403, 403, 200, 200),
    "tenants":            (403, 403, 200, 200),
    "sync runs":          (403, 403, 200, 200),
    "sync run":           (403, 403, 200, 200),
    "inbound events":     (403, 403, 200, 200),
    "inbound event":      (403, 403, 200, 200),
    "exchanges":          (403, 403, 200, 200),
    "exchange":           (403, 403, 200, 200),
}
WHO = ("Accountant", "Finance", "Operator", "superuser")


@pytest.mark.parametrize("who", WHO)
def test_each_kind_of_user_sees_its_screens_and_gets_403_on_the_others(client, users, screens, who):
    # given
    client.force_login(users[who])

    # when
    statuses = {name: client.get(url).status_code for name, url in screens.items()}

    # then
    assert statuses == {name: expected[WHO.index(who)] for name, expected in EXPECTED.items()}


def test_an_accountant_cannot_approve_a_posting(client, accountant, flagged):
    # given
    client.force_login(accountant)
    entries_before = AuditEntry.objects.count()
    url = reverse("admin:audit_syncrecord_approve") + f"?ids={flagged.pk}"

    # when
    posted_form = client.post(url, {"account_account": "3010"})
    changelist = reverse("admin:audit_syncrecord_changelist")
    action = client.post(changelist, {"action": "approve_records", "_selected_action": [flagged.pk], "index": 0})
    review_page = client.get(reverse("admin:audit_syncrecord_change", args=[flagged.pk]))

    # then
    assert posted_form.status_code == 403
    assert action.status_code == 200  # no action is offered to an accountant: the list is shown again, unchanged
    assert b'value="approve_records"' not in action.content
    assert b"Approve\xe2\x80\xa6" not in review_page.content
    assert SyncRecord.objects.get(pk=flagged.pk).status == "flagged"
    assert AuditEntry.objects.count() == entries_before


def test_finance_gets_403_on_connections_and_their_pages_never_show_a_connection_link(client, finance, integration):
    # given
    client.force_login(finance)

    # when
    changelist = client.get(reverse("admin:connectors_connection_changelist"))
    change = client.get(reverse("admin:connectors_connection_change", args=[integration.visma_connection.pk]))
    posted = client.post(reverse("admin:connectors_connection_change", args=[integration.visma_connection.pk]),
                         {"base_url": "https://evil.example"})
    dashboard = client.get(reverse("admin:index"))

    # then
    assert (changelist.status_code, change.status_code, posted.status_code) == (403, 403, 403)
    assert reverse("admin:connectors_connection_changelist").encode() not in dashboard.content
    integration.visma_connection.refresh_from_db()
    assert integration.visma_connection.base_url == "https://api.finance.visma.net"


def test_finance_sees_mapping_rules_read_only(client, finance, integration):
    # given
    rule = GLMappingRuleFactory(tenant=integration.tenant, gl_account="3000")
    client.force_login(finance)
    url = reverse("admin:mappings_glmappingrule_change", args=[rule.pk])

    # when
    page = client.get(url)
    posted = client.post(url, {"gl_account": "3010", "change_reason": "try"})

    # then
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert b"Reason for this change" not in page.content
    assert posted.status_code == 403
    rule.refresh_from_db()
    assert rule.gl_account == "3000"


def test_nobody_changes_a_record_or_an_audit_entry_in_the_admin_not_even_a_superuser(client, superuser, flagged):
    # given
    client.force_login(superuser)
    entry = AuditEntry.objects.filter(sync_record=flagged).order_by("id").first()

    # when
    record_post = client.post(reverse("admin:audit_syncrecord_change", args=[flagged.pk]), {"status": "posted"})
    record_delete = client.post(reverse("admin:audit_syncrecord_delete", args=[flagged.pk]), {"post": "yes"})
    entry_post = client.post(reverse("admin:audit_auditentry_change", args=[entry.pk]), {"reason": "edited"})
    entry_delete = client.post(reverse("admin:audit_auditentry_delete", args=[entry.pk]), {"post": "yes"})

    # then
    assert [r.status_code for r in (record_post, record_delete, entry_post, entry_delete)] == [403, 403, 403, 403]
    assert SyncRecord.objects.get(pk=flagged.pk).status == "flagged"
    entry.refresh_from_db()
    assert entry.reason == "received from source"
    assert AuditEntry.objects.filter(sync_record=flagged).count() == 2
