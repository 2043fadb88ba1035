"""The operator's screens: write-only credentials, integrations saved through their service, events processed again."""
import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_q.models import Schedule

from audit.models import AuditEntry, SyncRecord
from connectors.models import Connection, InboundEvent, Integration
from tests.admin.factories import InboundEventFactory
from tests.factories import ConnectionFactory, IntegrationFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db

SECRET = "visma-secret-s3cr3t"
NEW_SECRET = "n3w-visma-secret-Zq9"
TOKEN = "eyJ-cached-access-token-XYZ"


def text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


def connection_post_data(connection, **changes):
    return {
        "tenant": connection.tenant_id, "system": connection.system, "base_url": connection.base_url,
        "token_url": connection.token_url, "hourly_call_budget": "", "credentials_json": "", **changes,
    }


@pytest.fixture
def visma_connection(db):
    connection = ConnectionFactory(tenant=TenantFactory(slug="nordlys"), system="visma")
    Connection.objects.filter(pk=connection.pk).update(access_token=TOKEN)
    return Connection.objects.get(pk=connection.pk)


def test_stored_secrets_never_appear_in_the_connection_pages(client, operator, visma_connection):
    # given
    client.force_login(operator)
    changelist_url = reverse("admin:connectors_connection_changelist")
    change_url = reverse("admin:connectors_connection_change", args=[visma_connection.pk])
    before_change = [client.get(changelist_url), client.get(change_url)]
    client.post(change_url,
                connection_post_data(visma_connection, credentials_json=f'{{"client_secret": "{NEW_SECRET}"}}'))

    # when
    pages = {
        "changelist before": before_change[0],
        "change page before": before_change[1],
        "changelist": client.get(changelist_url),
        "change page": client.get(change_url),
        "history": client.get(reverse("admin:connectors_connection_history", args=[visma_connection.pk])),
        "audit entries": client.get(reverse("admin:audit_auditentry_changelist")),
    }

    # then
    visma_connection.refresh_from_db()
    assert visma_connection.credentials["client_secret"] == NEW_SECRET
    for name, response in pages.items():
        content = response.content.decode()
        assert response.status_code == 200, name
        assert SECRET not in content, name
        assert NEW_SECRET not in content, name
        assert TOKEN not in content, name
    assert "client_id, client_secret, company_id, tenant_id" in text(pages["changelist"])
    assert "client_id, client_secret, company_id, tenant_id" in text(pages["change page"])
    assert "Changed Credentials." in text(pages["history"])
    assert 'name="credentials_json"' in pages["change page"].content.decode()


def test_changing_credentials_writes_one_configuration_entry_with_key_names_and_drops_the_cached_token(
    client, operator, visma_connection
):
    # given
    client.force_login(operator)
    entries_before = AuditEntry.objects.count()

    # when
    client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                connection_post_data(visma_connection,
                                     credentials_json=f'{{"client_secret": "{NEW_SECRET}", "webhook_secret": "wh-1"}}'))

    # then
    assert AuditEntry.objects.count() == entries_before + 1
    entry = AuditEntry.objects.get(action="configuration")
    assert (entry.actor, entry.user, entry.tenant) == ("olga.operator", operator, visma_connection.tenant)
    assert entry.reason == "credentials of nordlys · Visma.net ERP changed: set client_secret, webhook_secret"
    assert entry.details == {"connection": visma_connection.pk, "keys_set": ["client_secret", "webhook_secret"],
                             "keys_removed": []}
    visma_connection.refresh_from_db()
    assert (visma_connection.access_token, visma_connection.token_expires_at) == (None, None)


def test_saving_a_connection_without_touching_credentials_keeps_the_token_and_writes_no_entry(
    client, operator, visma_connection
):
    # given
    client.force_login(operator)
    entries_before = AuditEntry.objects.count()

    # when
    client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                connection_post_data(visma_connection, hourly_call_budget="1000"))

    # then
    visma_connection.refresh_from_db()
    assert (visma_connection.hourly_call_budget, visma_connection.access_token) == (1000, TOKEN)
    assert AuditEntry.objects.count() == entries_before


def test_a_credential_key_the_system_does_not_know_is_refused(client, operator, visma_connection):
    # given
    client.force_login(operator)
    before = dict(visma_connection.credentials)

    # when
    response = client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                           connection_post_data(visma_connection, credentials_json='{"clientsecret": "typo"}'))

    # then
    assert "Visma.net ERP has no credential clientsecret; known: client_id, client_secret, tenant_id, company_id, " \
           "webhook_id, webhook_secret, webhook_secrets, webhook_signature_key." in text(response)
    visma_connection.refresh_from_db()
    assert visma_connection.credentials == before


def test_an_empty_credentials_box_keeps_the_stored_credentials(client, operator, visma_connection):
    # given
    client.force_login(operator)
    before = dict(visma_connection.credentials)

    # when
    response = client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                           connection_post_data(visma_connection, base_url="https://sandbox.finance.visma.net"))

    # then
    assert response.status_code == 302
    visma_connection.refresh_from_db()
    assert visma_connection.base_url == "https://sandbox.finance.visma.net"
    assert visma_connection.credentials == before


def test_entered_keys_are_merged_and_null_removes_a_key(client, operator, visma_connection):
    # given
    client.force_login(operator)
    url = reverse("admin:connectors_connection_change", args=[visma_connection.pk])
    client.post(url, connection_post_data(visma_connection, credentials_json='{"company_id": "7654321", '
                                                                             '"webhook_secret": "wh"}'))
    visma_connection.refresh_from_db()
    merged = dict(visma_connection.credentials)

    # when
    client.post(url, connection_post_data(visma_connection, credentials_json='{"webhook_secret": null}'))

    # then
    visma_connection.refresh_from_db()
    assert merged == {"client_id": "visma-client", "client_secret": SECRET, "company_id": "7654321",
                      "tenant_id": "t-1", "webhook_secret": "wh"}
    assert visma_connection.credentials == {"client_id": "visma-client", "client_secret": SECRET,
                                            "company_id": "7654321", "tenant_id": "t-1"}
    assert list(AuditEntry.objects.filter(action="configuration").order_by("id").values_list("reason", flat=True)) == [
        "credentials of nordlys · Visma.net ERP changed: set company_id, webhook_secret",
        "credentials of nordlys · Visma.net ERP changed: removed webhook_secret",
    ]


def test_replacing_credentials_without_a_required_key_is_refused_and_the_typed_secret_is_not_echoed(
    client, operator, visma_connection
):
    # given
    client.force_login(operator)
    before = dict(visma_connection.credentials)

    # when
    response = client.post(
        reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
        connection_post_data(visma_connection, credentials_json=f'{{"client_secret": "{NEW_SECRET}"}}',
                             replace_credentials="on"),
    )

    # then
    assert response.status_code == 200
    assert "Visma.net ERP needs client_id, tenant_id, company_id: add the missing keys to the JSON." in text(response)
    assert NEW_SECRET not in response.content.decode()
    visma_connection.refresh_from_db()
    assert visma_connection.credentials == before


def test_replacing_credentials_drops_the_keys_left_out(client, operator, visma_connection):
    # given
    client.force_login(operator)
    replacement = '{"client_id": "c2", "client_secret": "s2", "tenant_id": "t2", "company_id": "2"}'

    # when
    response = client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                           connection_post_data(visma_connection, credentials_json=replacement,
                                                replace_credentials="on"))

    # then
    assert response.status_code == 302
    visma_connection.refresh_from_db()
    assert visma_connection.credentials == {"client_id": "c2", "client_secret": "s2", "tenant_id": "t2",
                                            "company_id": "2"}


def test_credentials_that_are_not_json_are_refused_without_repeating_them(client, operator, visma_connection):
    # given
    client.force_login(operator)
    before = dict(visma_connection.credentials)

    # when
    response = client.post(reverse("admin:connectors_connection_change", args=[visma_connection.pk]),
                           connection_post_data(visma_connection, credentials_json=f"client_secret={NEW_SECRET}"))

    # then
    assert "Not valid JSON (line 1, column 1); nothing was changed." in text(response)
    assert NEW_SECRET not in response.content.decode()
    visma_connection.refresh_from_db()
    assert visma_connection.credentials == before


def test_adding_an_integration_goes_through_integration_save_and_creates_its_poll_schedule(
    client, operator, payments_stream
):
    # given
    tenant = TenantFactory(slug="nordlys")
    visma = ConnectionFactory(tenant=tenant, system="visma")
    paypal = ConnectionFactory(tenant=tenant, system="paypal", base_url="https://api-m.paypal.com")
    client.force_login(operator)

    # when
    response = client.post(reverse("admin:connectors_integration_add"), {
        "tenant": tenant.pk, "kind": "paypal", "visma_connection": visma.pk, "partner_connection": paypal.pk,
        "enabled": "on", "settings": "{}", "poll_minutes": '{"payments": 5}',
    })

    # then
    assert response.status_code == 302
    integration = Integration.objects.get(tenant=tenant)
    schedule = Schedule.objects.get(name=f"poll {integration.pk} payments")
    assert (schedule.func, schedule.minutes) == ("connectors.tasks.stream_poll", 5)
    entry = AuditEntry.objects.get(action="configuration", integration=integration)
    assert (entry.actor, entry.reason) == (
        "olga.operator", "integration nordlys · PayPal ↔ Visma created: tenant, kind, visma_connection, "
        "partner_connection, settings, poll_minutes")
    change_page = client.get(reverse("admin:connectors_integration_change", args=[integration.pk]))
    assert f"/webhooks/paypal/{integration.pk}/" in text(change_page)
    assert "payments every 5 min" in text(change_page)


def test_an_integration_with_unknown_settings_or_the_wrong_connection_is_refused_beside_the_field(
    client, operator, payments_stream
):
    # given
    tenant = TenantFactory(slug="nordlys")
    visma = ConnectionFactory(tenant=tenant, system="visma")
    ConnectionFactory(tenant=tenant, system="paypal", base_url="https://api-m.paypal.com")
    client.force_login(operator)

    # when
    response = client.post(reverse("admin:connectors_integration_add"), {
        "tenant": tenant.pk, "kind": "paypal", "visma_connection": visma.pk, "partner_connection": visma.pk,
        "enabled": "on", "settings": '{"colour": "blue"}', "poll_minutes": '{"payments": 0}',
    })

    # then
    page = text(response)
    assert response.status_code == 200
    assert sorted(response.context["adminform"].form.errors) == ["partner_connection", "poll_minutes", "settings"]
    assert "unknown paypal setting(s): colour; known: " in page
    assert "payments: minutes must be a whole number" in page
    assert "must be the tenant's paypal connection, not nordlys · Visma.net ERP" in page
    assert Integration.objects.count() == 0
    assert Schedule.objects.filter(name__startswith="poll ").count() == 0


def test_process_again_runs_a_failed_inbound_event_through_the_pipeline(client, operator, payments_stream):
    # given
    integration = IntegrationFactory(tenant__slug="nordlys")
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    event = InboundEventFactory(integration=integration, status=InboundEvent.Status.FAILED, error="timeout")
    client.force_login(operator)

    # when
    response = client.post(reverse("admin:connectors_inboundevent_changelist"),
                           {"action": "process_again", "_selected_action": [event.pk], "index": 0}, follow=True)

    # then
    event.refresh_from_db()
    assert (event.status, event.error, event.attempts) == ("processed", "", 1)
    assert SyncRecord.objects.filter(integration=integration, stream="payments", source_id="P-1").count() == 1
    assert f"{event}: processed." in text(response)


def test_process_again_is_not_offered_to_someone_without_the_replay_permission(client, integration):
    # given
    viewer = UserFactory(username="viewer")
    viewer.user_permissions.add(Permission.objects.get(codename="view_inboundevent"))
    event = InboundEventFactory(integration=integration, status=InboundEvent.Status.FAILED)
    client.force_login(viewer)

    # when
    response = client.post(reverse("admin:connectors_inboundevent_changelist"),
                           {"action": "process_again", "_selected_action": [event.pk], "index": 0})

    # then
    assert b'value="process_again"' not in response.content
    event.refresh_from_db()
    assert (event.status, event.attempts) == ("failed", 0)


def test_a_tenant_s_own_numbers_are_edited_in_the_admin_and_an_unknown_kind_is_refused(client, operator):
    # given
    tenant = TenantFactory(slug="fjellheim")
    client.force_login(operator)
    url = reverse("admin:connectors_tenant_change", args=[tenant.pk])
    form = {"slug": tenant.slug, "name": tenant.name, "is_active": "on", "time_zone": "Europe/Oslo",
            "visma_release": "on"}

    # when
    refused = client.post(url, {**form, "visma_own_numbers": '["journal", "debit_note"]'})
    saved = client.post(url, {**form, "visma_own_numbers": '["journal", "supplier_invoice"]'})

    # then
    assert refused.status_code == 200
    assert "unknown document kind(s) debit_note" in text(refused)
    assert saved.status_code == 302
    tenant.refresh_from_db()
    assert tenant.visma_own_numbers == ["journal", "supplier_invoice"]


def test_a_tenant_s_time_zone_must_be_an_iana_name_and_release_can_be_turned_off(client, operator):
    # given
    tenant = TenantFactory(slug="fjellheim-zone")
    client.force_login(operator)
    url = reverse("admin:connectors_tenant_change", args=[tenant.pk])
    form = {"slug": tenant.slug, "name": tenant.name, "is_active": "on", "visma_own_numbers": '["journal"]'}

    # when
    refused = client.post(url, {**form, "time_zone": "Oslo/Norway", "visma_release": "on"})
    saved = client.post(url, {**form, "time_zone": "America/New_York"})

    # then
    assert refused.status_code == 200
    assert "'Oslo/Norway' is not an IANA time zone name" in text(refused)
    assert saved.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.time_zone, tenant.visma_release) == ("America/New_York", False)
