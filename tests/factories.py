"""factory_boy factories for the platform's models."""
from datetime import date
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from audit.models import SyncRecord
from connectors.models import Connection, Integration, Tenant
from mappings.documents import posting_marker
from mappings.models import DimensionValue, FinancialPeriod, GLAccount, GLMappingRule


class TenantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tenant
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"tenant-{n}")
    name = factory.LazyAttribute(lambda o: f"{o.slug.title()} AS")

    @factory.post_generation
    def financial_periods(self, create, extracted, **kwargs):
        # A tenant whose mirror was refreshed from a calendar-year company (as the sandbox seeds it); pass
        # financial_periods=False for one whose Visma periods were never read.
        if create and extracted is not False:
            financial_periods_mirror(self)


def financial_periods_mirror(tenant, *, years=range(2024, 2029), first_month: int = 1, periods: int = 12,
                             closed=(), year_named_by: str = "end") -> list[FinancialPeriod]:
    """The tenant's mirror of a Visma financial calendar, built as the sandbox builds one (sandbox.visma_periods)."""
    from sandbox.visma_periods import CalendarShape, financial_periods_build

    bodies = financial_periods_build(CalendarShape(first_month=first_month, periods=periods,
                                                   year_named_by=year_named_by), years, closed=frozenset(closed))
    rows = []
    for body in bodies:
        rows.append(FinancialPeriod(
            tenant=tenant, period_id=body["period"], year=body["year"],
            start_date=date.fromisoformat(body["startDate"][:10]), end_date=date.fromisoformat(body["endDate"][:10]),
            description=body["description"], active=body["active"],
            closed_in_general_ledger=body["closedInGeneralLedger"],
            closed_in_customer_ledger=body["closedInCustomerLedger"],
            closed_in_supplier_ledger=body["closedInSupplierLedger"],
            closed_in_cash_management=body["closedInCashManagement"],
        ))
    FinancialPeriod.objects.filter(tenant=tenant).delete()
    return FinancialPeriod.objects.bulk_create(rows)


class ConnectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Connection

    tenant = factory.SubFactory(TenantFactory)
    system = "visma"
    base_url = "https://api.finance.visma.net"
    token_url = factory.LazyAttribute(
        lambda o: "https://connect.visma.com/connect/token" if o.system == "visma" else ""
    )
    credentials = factory.LazyAttribute(
        lambda o: {
            "visma": {"client_id": "visma-client", "client_secret": "visma-secret-s3cr3t", "tenant_id": "t-1",
                      "company_id": "1234567"},
            "paypal": {"client_id": "pp-client", "client_secret": "pp-secret-s3cr3t", "webhook_id": "WH-1"},
            "stripe": {"secret_key": "sk_test_s3cr3t", "webhook_secrets": ["whsec_s3cr3t"]},
        }.get(o.system, {"api_key": "k", "access_token": "t"})
    )


class IntegrationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Integration

    tenant = factory.SubFactory(TenantFactory)
    kind = "paypal"
    visma_connection = factory.LazyAttribute(
        lambda o: Connection.objects.filter(tenant=o.tenant, system="visma").first()
        or ConnectionFactory(tenant=o.tenant, system="visma")
    )
    partner_connection = factory.LazyAttribute(
        lambda o: Connection.objects.filter(tenant=o.tenant, system=o.kind).first()
        or ConnectionFactory(tenant=o.tenant, system=o.kind, base_url="https://api-m.paypal.com")
    )


class GLAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GLAccount
        django_get_or_create = ("tenant", "number")

    tenant = factory.SubFactory(TenantFactory)
    number = factory.Sequence(lambda n: str(3000 + n))
    description = factory.LazyAttribute(lambda o: f"Account {o.number}")
    account_type = "Income"
    active = True


class DimensionValueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = DimensionValue
        django_get_or_create = ("tenant", "dimension", "segment_id", "value")

    tenant = factory.SubFactory(TenantFactory)
    dimension = "SUBACCOUNT"
    segment_id = 1
    segment_name = "Department"
    value = factory.Sequence(lambda n: str(100 + n))
    active = True


class GLMappingRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GLMappingRule

    tenant = factory.SubFactory(TenantFactory)
    system = "paypal"
    name = factory.Sequence(lambda n: f"Rule {n}")
    priority = 100
    transaction_type = "capture"
    gl_account = "3000"
    fee_account = "7770"
    clearing_account = "1920"


class SyncRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRecord

    integration = factory.SubFactory(IntegrationFactory)
    stream = "payments"
    source_id = factory.Sequence(lambda n: f"SRC-{n}")
    amount = Decimal("100.00")
    currency = "EUR"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests-1")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        for name in extracted or []:
            self.groups.add(Group.objects.get(name=name))
        if extracted:
            self.save()


def hand_marker(source_id: str, *, tenant_id: int = 1, system: str = "paypal", stream: str = "test") -> str:
    """A marker as a stream makes it (Stream.marker), for postings built by hand in tests."""
    return posting_marker(tenant_id=tenant_id, system=system, stream=stream, source_id=source_id)


def stream_marker(integration, stream: str, source_id: str) -> str:
    """The marker the pipeline gives this integration's stream's source object."""
    return posting_marker(tenant_id=integration.tenant_id, system=integration.kind, stream=stream,
                          source_id=source_id)
