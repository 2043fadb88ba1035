"""Factories for the admin tests: flagged records made through the audit services, and what the admin shows."""
from datetime import date
from decimal import Decimal

import factory

from audit.services import record_flag, record_upsert
from connectors.models import HttpExchange, InboundEvent, SyncRun
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.models import Customer
from tests.factories import (
    ConnectionFactory,
    DimensionValueFactory,
    GLAccountFactory,
    IntegrationFactory,
    TenantFactory,
)
from tests.factories import hand_marker

UNKNOWN_ACCOUNT_REASON = (
    "GL account 9999 on line 3 (account) is unknown in Visma (chosen by mapping rule 'PayPal captures'): "
    "create it in Visma or correct the account on the rule."
)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer
        django_get_or_create = ("tenant", "number")

    tenant = factory.SubFactory(TenantFactory)
    number = factory.Sequence(lambda n: str(10001 + n))
    name = factory.LazyAttribute(lambda o: f"Customer {o.number}")
    active = True


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun

    integration = factory.SubFactory(IntegrationFactory)
    stream = "payments"
    trigger = SyncRun.Trigger.SCHEDULE
    status = SyncRun.Status.COMPLETED


class InboundEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InboundEvent

    integration = factory.SubFactory(IntegrationFactory)
    event_id = factory.Sequence(lambda n: f"WH-EVT-{n}")
    event_type = "PAYMENT.CAPTURE.COMPLETED"
    body = factory.LazyAttribute(lambda o: f'{{"id": "{o.event_id}", "type": "{o.event_type}", "resource_id": "P-1"}}')


class HttpExchangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = HttpExchange

    connection = factory.SubFactory(ConnectionFactory)
    method = "POST"
    url = "https://api.finance.visma.net/v1/journaltransaction"
    status_code = 400
    duration_ms = 120
    request_body = '{"journalTransactionLines": [{"accountNumber": "9999"}]}'
    response_body = '{"message": "Account 9999 not found"}'


def books_create(tenant):
    """The tenant's Visma mirror the tests post against: accounts, two department values, one customer."""
    for number in ("3000", "3010", "7770", "1920"):
        GLAccountFactory(tenant=tenant, number=number)
    GLAccountFactory(tenant=tenant, number="3999", active=False)
    for value in ("100", "200"):
        DimensionValueFactory(tenant=tenant, segment_id=1, segment_name="Department", value=value)
    CustomerFactory(tenant=tenant, number="10001", name="Nordlys AS")


def capture_posting(source_id: str, *, account: str = "9999") -> Posting:
    """A PayPal capture of 100.00 EUR with a 3.40 fee, as the pipeline would propose it."""
    return Posting(
        document="journal", marker=hand_marker(source_id), currency="EUR", date=date(2026, 11, 2),
        description=f"PayPal capture {source_id}", rule="PayPal captures",
        facts=MatchFacts(transaction_type="capture", amount=Decimal("100.00"), currency="EUR"),
        lines=[
            PostingLine(role="clearing", debit=Decimal("96.60"), account="1920", dimensions={"1": "100"}),
            PostingLine(role="fee", debit=Decimal("3.40"), account="7770", dimensions={"1": "100"}),
            PostingLine(role="account", credit=Decimal("100.00"), account=account, dimensions={"1": "100"}),
        ],
    )


def flagged_record_create(integration, source_id: str = "5TY05013RG002845M", *, reasons=None, posting=None):
    """A record as the pipeline leaves it when it needs a person: upserted, then flagged, both audited."""
    record, _ = record_upsert(
        integration=integration, stream="payments", source_id=source_id,
        payload={"id": source_id, "status": "COMPLETED", "amount": {"currency_code": "EUR", "value": "100.00"},
                 "seller_receivable_breakdown": {"paypal_fee": {"currency_code": "EUR", "value": "3.40"}}},
        source_updated_at=None, amount=Decimal("100.00"), currency="EUR",
    )
    posting = posting or capture_posting(source_id)
    return record_flag(record, reasons=reasons or [UNKNOWN_ACCOUNT_REASON], proposed_posting=posting.to_json(),
                       posting_marker=posting.marker)
