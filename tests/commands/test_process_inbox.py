import json

import pytest
from django.core.management.base import CommandError

from audit.models import SyncRecord
from connectors.models import InboundEvent
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory, TenantFactory

from .helpers import run

pytestmark = pytest.mark.django_db


def _event(integration, event_id: str, body: str) -> InboundEvent:
    return InboundEvent.objects.create(integration=integration, event_id=event_id, event_type="PAYMENT.CAPTURE.COMPLETED",
                                       body=body)


def test_stored_events_are_processed_and_their_statuses_printed(payments_stream):
    # given
    tenant = TenantFactory(slug="nordlys-friluft")
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=tenant, number=number)
    GLMappingRuleFactory(tenant=tenant)
    integration = IntegrationFactory(tenant=tenant)
    other = IntegrationFactory(tenant=TenantFactory(slug="other"))
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "NOK"}
    _event(integration, "WH-1", json.dumps({"id": "WH-1", "type": "payment", "resource_id": "P-1"}))
    _event(integration, "WH-2", json.dumps({"id": "WH-2", "type": "payment", "resource_id": "P-gone"}))
    _event(integration, "WH-3", "not json")
    _event(other, "WH-4", json.dumps({"id": "WH-4", "type": "payment", "resource_id": "P-1"}))

    # when
    stdout, _ = run("process_inbox", "nordlys-friluft")

    # then
    assert stdout == (
        "Processed 3 inbound event(s): failed 1, processed 2\n"
        "  failed: nordlys-friluft paypal event WH-3 (PAYMENT.CAPTURE.COMPLETED), attempt 1: "
        "JSONDecodeError: Expecting value: line 1 column 1 (char 0)\n"
        "No records were due.\n"
    )
    assert dict(InboundEvent.objects.values_list("event_id", "status")) == {
        "WH-1": "processed", "WH-2": "processed", "WH-3": "failed", "WH-4": "pending",
    }
    assert list(SyncRecord.objects.values_list("integration", "source_id", "status")) == [
        (integration.pk, "P-1", "posted"),
    ]


def test_an_empty_inbox_says_so(payments_stream):
    # given
    TenantFactory(slug="nordlys-friluft")

    # when
    stdout, _ = run("process_inbox")

    # then
    assert stdout == "Processed 0 inbound event(s).\nNo records were due.\n"


def test_an_unknown_tenant_is_refused(payments_stream):
    # given
    integration = IntegrationFactory()
    _event(integration, "WH-1", json.dumps({"id": "WH-1", "type": "payment", "resource_id": "P-1"}))

    # when
    with pytest.raises(CommandError) as raised:
        run("process_inbox", "nobody")

    # then
    assert str(raised.value) == "No tenant with slug 'nobody'."
    assert InboundEvent.objects.get().status == "pending"
