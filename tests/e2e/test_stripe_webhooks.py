"""Stripe emulator → our webhook endpoint over real HTTP: deliveries signed as Stripe signs are stored once; a
delivery signed with another secret is refused and stored nowhere."""
import pytest
import requests

import connectors.stripe  # noqa: F401  (registers the verifier until connectors/apps.py imports it)
from connectors.models import InboundEvent
from sandbox.models import StripeObject
from sandbox.stripe_webhooks import stripe_events_deliver
from tests.factories import IntegrationFactory
from tests.stripe.conftest import SECRET_KEY, WEBHOOK_SECRET, sandbox_stripe, stripe_account  # noqa: F401, F811


@pytest.fixture
def integration(db):
    integration = IntegrationFactory(kind="stripe", settings={}, enabled=False)
    connection = integration.partner_connection
    connection.credentials = {"secret_key": SECRET_KEY, "webhook_secrets": ["whsec_newer", WEBHOOK_SECRET]}
    connection.save()
    return integration


def test_events_the_emulator_sends_are_verified_and_stored_once(live_server, stripe_account, sandbox_stripe,
                                                                integration):
    # given
    stripe_account.webhook_url = f"{live_server.url}/webhooks/stripe/{integration.pk}/"
    stripe_account.webhook_secret = WEBHOOK_SECRET
    stripe_account.save()
    charge = sandbox_stripe.v1.charges.create({"amount": 10000, "currency": "nok", "source": "tok_visa"})

    # when
    delivered = stripe_events_deliver(stripe_account)
    again = stripe_events_deliver(stripe_account)

    # then
    assert (delivered, again) == (1, 0)
    [event] = InboundEvent.objects.filter(integration=integration)
    assert (event.kind, event.event_type) == ("stripe", "charge.succeeded")
    assert connectors.stripe.spec.verifier.objects_touched(event) == [("charges", charge.id)]


def test_events_signed_with_another_secret_are_refused_and_not_stored(live_server, stripe_account, sandbox_stripe,
                                                                      integration):
    # given
    stripe_account.webhook_url = f"{live_server.url}/webhooks/stripe/{integration.pk}/"
    stripe_account.webhook_secret = "whsec_not_ours"
    stripe_account.save()
    sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})

    # when
    delivered = stripe_events_deliver(stripe_account)

    # then
    assert delivered == 0
    assert InboundEvent.objects.count() == 0
    assert StripeObject.objects.get(object_type="event").delivered_at is None


def test_the_control_endpoint_sends_pending_events_for_the_calling_account(live_server, stripe_account,
                                                                           sandbox_stripe, integration):
    # given
    stripe_account.webhook_url = f"{live_server.url}/webhooks/stripe/{integration.pk}/"
    stripe_account.webhook_secret = WEBHOOK_SECRET
    stripe_account.save()
    sandbox_stripe.v1.customers.create({"name": "Fjordkraft AS"})

    # when
    refused = requests.post(f"{live_server.url}/sandbox/stripe/_control/deliver_events",
                            headers={"Authorization": "Bearer sk_test_other"}, timeout=10)
    sent = requests.post(f"{live_server.url}/sandbox/stripe/_control/deliver_events",
                         headers={"Authorization": f"Bearer {SECRET_KEY}"}, timeout=10)

    # then
    assert refused.status_code == 401
    assert (sent.status_code, sent.json()) == (200, {"delivered": 1})
    assert list(InboundEvent.objects.values_list("event_type", flat=True)) == ["customer.created"]
