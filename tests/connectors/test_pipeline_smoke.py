from decimal import Decimal

import pytest

from audit.models import AuditEntry
from connectors.pipeline import record_advance, record_ingest
from tests.factories import GLAccountFactory, GLMappingRuleFactory, IntegrationFactory

pytestmark = pytest.mark.django_db


def test_a_payment_is_posted_once_as_a_balanced_journal(payments_stream):
    # given
    integration = IntegrationFactory()
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant)
    payments_stream.SOURCE["P-1"] = {"amount": "100.00", "fee": "3.40", "currency": "EUR"}
    source = payments_stream.PaymentsStream(integration).read_one("P-1")

    # when
    record, created = record_ingest(integration, "payments", source)
    record = record_advance(record)

    # then
    assert created is True
    assert record.status == "posted"
    assert record.target_id == "JT-00001"
    doc = payments_stream.LEDGER.documents["JT-00001"]
    assert [(line["role"], line["account"], line["debit"], line["credit"]) for line in doc["lines"]] == [
        ("clearing", "1920", "96.60", "0"), ("fee", "7770", "3.40", "0"), ("account", "3000", "0", "100.00"),
    ]
    assert list(AuditEntry.objects.filter(sync_record=record).order_by("id").values_list("from_status", "to_status")) == [
        ("", "received"), ("received", "ready"), ("ready", "posting"), ("posting", "posted"),
    ]
    assert record.amount == Decimal("100.0000")
