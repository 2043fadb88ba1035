import base64
import hashlib
import hmac
import json

import pytest
import responses

from connectors import registry
from audit.models import AuditEntry
from connectors.models import InboundEvent
from connectors.services import inbox_process
from connectors.visma.webhooks import (
    SIGNATURE_HEADER, VismaWebhookVerifier, reference_kind_for_event, visma_notification_apply,
)
from mappings.models import Customer
from tests.factories import ConnectionFactory, IntegrationFactory, TenantFactory
from tests.visma.conftest import API, PAYLOADS, payload, token_reply

pytestmark = pytest.mark.django_db

BODY = (PAYLOADS / "webhook_notifications.json").read_bytes()


def visma_signature(secret: str, body: bytes) -> str:
    """As Visma documents it: HMAC-SHA256 of the UTF-8 body with the subscription's key, base64-encoded."""
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def _integration(**credentials):
    tenant = TenantFactory()
    visma = ConnectionFactory(tenant=tenant, system="visma")
    visma.credentials = {**visma.credentials, **credentials}
    visma.save()
    return IntegrationFactory(tenant=tenant, visma_connection=visma)


def _verify(integration, headers, body=BODY):
    return VismaWebhookVerifier().verify(
        integration=integration, headers=headers, body=body, url=f"https://connector.example{integration.webhook_path}"
    )


def test_the_verifier_is_registered_on_the_visma_kind():
    # then
    assert isinstance(registry.KINDS["visma"].verifier, VismaWebhookVerifier)


def test_a_delivery_signed_with_the_subscription_key_is_genuine():
    # given
    integration = _integration(webhook_secrets=["vwd-key-1"])

    # when
    verdict = _verify(integration, {"X-Vwd-Signature-V1": visma_signature("vwd-key-1", BODY)})

    # then
    assert verdict.ok is True


def test_a_body_changed_after_signing_is_refused():
    # given
    integration = _integration(webhook_secrets=["vwd-key-1"])
    signature = visma_signature("vwd-key-1", BODY)

    # when
    verdict = _verify(integration, {SIGNATURE_HEADER: signature}, body=BODY.replace(b"10001", b"10009"))

    # then
    assert verdict.ok is False
    assert verdict.reason == "x-vwd-signature-v1 matches none of the 1 configured secret(s)"


def test_during_a_key_rotation_the_old_and_the_new_key_are_both_accepted():
    # given
    integration = _integration(webhook_secrets=["vwd-key-new", "vwd-key-old"])

    # when
    old = _verify(integration, {SIGNATURE_HEADER: visma_signature("vwd-key-old", BODY)})
    new = _verify(integration, {SIGNATURE_HEADER: visma_signature("vwd-key-new", BODY)})
    retired = _verify(integration, {SIGNATURE_HEADER: visma_signature("vwd-key-retired", BODY)})

    # then
    assert (old.ok, new.ok, retired.ok) == (True, True, False)


def test_a_single_webhook_secret_key_is_accepted_too():
    # given
    integration = _integration(webhook_secret="vwd-key-1")

    # when
    verdict = _verify(integration, {SIGNATURE_HEADER: visma_signature("vwd-key-1", BODY)})

    # then
    assert verdict.ok is True


def test_without_a_configured_secret_every_delivery_is_refused():
    # given
    integration = _integration()

    # when
    verdict = _verify(integration, {SIGNATURE_HEADER: visma_signature("", BODY)})

    # then
    assert verdict.ok is False
    assert verdict.reason == "no webhook secret on the Visma connection (credentials webhook_secrets)"


def test_a_delivery_without_the_signature_header_is_refused():
    # given
    integration = _integration(webhook_secrets=["vwd-key-1"])

    # when
    verdict = _verify(integration, {"Content-Type": "application/json"})

    # then
    assert verdict.ok is False
    assert verdict.reason == "no x-vwd-signature-v1 header"


def test_an_array_of_notifications_becomes_one_event_each():
    # when
    events = VismaWebhookVerifier().parse(headers={}, body=BODY)

    # then
    assert [(event.event_id, event.event_type) for event in events] == [
        ("8f0c4a3e-2b1d-4c5e-9f6a-7b8c9d0e1f2a", "customer_changed"),
        ("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d", "supplier_changed"),
    ]
    assert json.loads(events[0].body)["resourceUri"] == "https://api.finance.visma.net/v1/customer/10001"


def test_a_notification_without_an_id_is_malformed():
    # given
    body = json.dumps([{"event": "customer_changed"}]).encode()

    # when
    with pytest.raises(ValueError) as raised:
        VismaWebhookVerifier().parse(headers={}, body=body)

    # then
    assert str(raised.value) == "notification 0 has no notificationId"


@pytest.mark.parametrize(
    ("event_name", "kind"),
    [("customer_changed", "customers"), ("Account Changed", "accounts"), ("Account Identity Changed", "accounts"),
     ("Supplier Created", "suppliers"), ("Segment Value Changed", "dimension_values"),
     ("Dimension Changed", "dimension_values"), ("AR Invoice Status Changed", None), ("inventoryitem_changed", None)],
)
def test_notifications_about_reference_data_name_the_kind_to_refresh(event_name, kind):
    # then
    assert reference_kind_for_event(event_name) == kind


def test_a_customer_notification_pulls_the_changed_customers_into_the_mirror(visma_connection, mocked):
    # given
    integration = IntegrationFactory(tenant=visma_connection.tenant)
    notification = payload("webhook_notifications.json")[0]
    event = InboundEvent.objects.create(
        integration=integration, event_id=notification["notificationId"], event_type=notification["event"],
        body=json.dumps(notification),
    )
    changed = payload("customers_page2.json")
    changed[0]["metadata"]["totalCount"] = 1
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/customer", json=changed)

    # when
    refresh = visma_notification_apply(event)

    # then
    assert (refresh.customers, refresh.accounts, refresh.suppliers) == (1, 0, 0)
    assert list(Customer.objects.filter(tenant=integration.tenant).values_list("number", "name")) == [
        ("10003", "Bergen Bakeri"),
    ]
    assert [call.request.url.split("?")[0] for call in mocked.calls[1:]] == [f"{API}/v1/customer"]


def test_a_notification_about_something_else_pulls_nothing(visma_connection, mocked):
    # given
    integration = IntegrationFactory(tenant=visma_connection.tenant)
    event = InboundEvent.objects.create(
        integration=integration, event_id="n-1", event_type="arinvoice_changed",
        body=json.dumps({"notificationId": "n-1", "event": "arinvoice_changed"}),
    )

    # when
    refresh = visma_notification_apply(event)

    # then
    assert refresh is None
    assert len(mocked.calls) == 0


def test_objects_touched_names_no_records_while_no_visma_stream_exists(visma_connection):
    # given
    event = InboundEvent(integration=IntegrationFactory(tenant=visma_connection.tenant), event_id="n-1",
                         body=json.dumps({"notificationId": "n-1", "event": "customer_changed"}))

    # then
    assert VismaWebhookVerifier().objects_touched(event) == []


def test_a_signed_delivery_to_the_webhook_url_is_stored_as_visma_events_and_refreshes_the_mirror(
    client, visma_connection, mocked
):
    # given a tenant with one integration and a Visma webhook secret
    visma_connection.credentials = {**visma_connection.credentials, "webhook_secrets": ["vwd-key-2", "vwd-key-1"]}
    visma_connection.save()
    integration = IntegrationFactory(tenant=visma_connection.tenant, visma_connection=visma_connection)
    notifications = payload("webhook_notifications.json")[:1]
    body = json.dumps(notifications).encode()
    signature = base64.b64encode(hmac.new(b"vwd-key-1", body, hashlib.sha256).digest()).decode()
    changed = payload("customers_page2.json")
    changed[0]["metadata"]["totalCount"] = 1
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/customer", json=changed)

    # when Visma delivers it to /webhooks/visma/<integration-id>/, then the inbox is processed
    response = client.post(f"/webhooks/visma/{integration.pk}/", data=body, content_type="application/json",
                           HTTP_X_VWD_SIGNATURE_V1=signature)
    processed = inbox_process()

    # then
    assert response.status_code == 200
    event = InboundEvent.objects.get()
    assert (event.kind, event.event_id, event.status) == ("visma", notifications[0]["notificationId"], "processed")
    assert processed == 1
    assert list(Customer.objects.filter(tenant=integration.tenant).values_list("number", flat=True)) == ["10003"]


def test_a_visma_delivery_with_a_bad_signature_is_refused_and_audited(client, visma_connection):
    # given
    visma_connection.credentials = {**visma_connection.credentials, "webhook_secret": "vwd-key-1"}
    visma_connection.save()
    integration = IntegrationFactory(tenant=visma_connection.tenant, visma_connection=visma_connection)
    body = json.dumps(payload("webhook_notifications.json")).encode()

    # when
    response = client.post(f"/webhooks/visma/{integration.pk}/", data=body, content_type="application/json",
                           HTTP_X_VWD_SIGNATURE_V1="Zm9yZ2VkIHNpZ25hdHVyZQ==")

    # then
    assert response.status_code == 401
    assert InboundEvent.objects.count() == 0
    assert AuditEntry.objects.filter(action="webhook_rejected", integration=integration).count() == 1
