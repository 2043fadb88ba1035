"""What the PayPal kind registers: streams, verifier, ping and settings, and what an integration's save makes of it."""
import pytest
from django.core.exceptions import ValidationError
from django_q.models import Schedule

from connectors import registry
from connectors.paypal.client import paypal_ping
from connectors.paypal.flows import CapturesStream, InvoicesStream, RefundsStream, ReversalsStream
from connectors.paypal.webhooks import PayPalWebhookVerifier
from connectors.services import integration_save
from tests.factories import IntegrationFactory


def test_the_paypal_kind_carries_its_streams_verifier_ping_and_settings():
    # given
    spec = registry.kind_spec("paypal")

    # then
    assert {name: spec.streams[name] for name in ("captures", "refunds", "reversals", "invoices")} == {
        "captures": CapturesStream, "refunds": RefundsStream, "reversals": ReversalsStream, "invoices": InvoicesStream,
    }
    assert isinstance(spec.verifier, PayPalWebhookVerifier)
    assert spec.ping is paypal_ping
    assert sorted(spec.settings_schema) == ["cash_account", "cert_hosts", "payment_method",
                                            "publication_delay_minutes", "webhook_max_age_seconds"]


def test_saving_an_integration_fills_the_default_settings_and_schedules_each_stream(db):
    # given
    integration = IntegrationFactory(kind="paypal", settings={})

    # when
    integration_save(integration)

    # then
    assert integration.settings == {"cert_hosts": None, "webhook_max_age_seconds": 300,
                                    "publication_delay_minutes": 180, "cash_account": None, "payment_method": None}
    schedules = dict(Schedule.objects.filter(name__startswith=f"poll {integration.pk} ").values_list("name", "minutes"))
    assert {name: schedules.get(f"poll {integration.pk} {name}") for name in
            ("captures", "refunds", "reversals", "invoices")} == {name: 15 for name in
                                                                  ("captures", "refunds", "reversals", "invoices")}


@pytest.mark.parametrize("settings, message", [
    ({"cert_hosts": "api.paypal.com"}, 'cert_hosts must be list, got "api.paypal.com"'),
    ({"webhook_max_age_seconds": "300"}, 'webhook_max_age_seconds must be int, got "300"'),
])
def test_a_setting_of_the_wrong_type_is_refused_naming_it(db, settings, message):
    # given
    integration = IntegrationFactory()
    integration.settings = settings

    # when
    with pytest.raises(ValidationError) as raised:
        integration_save(integration)

    # then
    assert raised.value.message_dict["settings"] == [message]
