"""Visma reference data on demand (refresh_reference) and on schedule (the nightly/hourly task), over real HTTP."""
import pytest
from django_q.models import Schedule

from connectors.tasks import reference_data_refresh_all
from mappings.models import Customer, GLAccount, GLMappingRule
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID, VISMA_SANDBOX_CLIENT_SECRET, VISMA_SANDBOX_COMPANY_ID, VISMA_SANDBOX_TENANT_ID,
    visma_fault_fail, visma_sandbox_seed,
)
from sandbox.visma_seed import VISMA_SANDBOX_CUSTOMER_COUNT
from tests.factories import ConnectionFactory, GLMappingRuleFactory, TenantFactory

from .helpers import run, run_refused


@pytest.fixture
def sandbox_tenant(transactional_db, live_server):
    visma_sandbox_seed()
    base = f"{live_server.url}/sandbox/visma"
    tenant = TenantFactory(slug="nordlys")
    ConnectionFactory(
        tenant=tenant, system="visma", base_url=base, token_url=f"{base}/connect/token", hourly_call_budget=None,
        credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                     "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID},
    )
    return tenant


def test_refresh_reference_mirrors_visma_and_marks_a_rule_on_an_inactive_account_invalid(sandbox_tenant):
    # given a rule that posts to the sandbox's inactive account 3099
    rule = GLMappingRuleFactory(tenant=sandbox_tenant, gl_account="3099", fee_account="7770",
                                clearing_account="1580")

    # when
    stdout, _ = run("refresh_reference", "nordlys", "--full")

    # then
    assert GLAccount.objects.filter(tenant=sandbox_tenant, number="3099", active=False).exists()
    assert Customer.objects.filter(tenant=sandbox_tenant).count() == VISMA_SANDBOX_CUSTOMER_COUNT
    rule.refresh_from_db()
    assert rule.validation_state == GLMappingRule.ValidationState.INVALID
    assert rule.validation_problems == ["GL account 3099 is inactive in Visma"]
    assert stdout.startswith("nordlys: read ")
    assert stdout.rstrip().endswith("1 mapping rule(s) invalid")


def test_refresh_reference_says_plainly_when_visma_cannot_be_read(sandbox_tenant):
    # given Visma answering 500 to everything for a while
    visma_fault_fail(50, status_code=500)

    # when
    error, _, _ = run_refused("refresh_reference", "nordlys")

    # then
    assert str(error).startswith("nordlys: Visma could not be read:")
    assert GLAccount.objects.filter(tenant=sandbox_tenant).count() == 0


def test_the_scheduled_refresh_covers_every_active_tenant_and_survives_one_failing(sandbox_tenant):
    # given a second active tenant whose Visma connection is refused
    broken = TenantFactory(slug="broken")
    ConnectionFactory(tenant=broken, system="visma", base_url=sandbox_tenant.connections.get().base_url,
                      token_url=sandbox_tenant.connections.get().token_url, credentials={
                          "client_id": "nobody", "client_secret": "wrong", "tenant_id": "t", "company_id": "1"})

    # when
    outcome = reference_data_refresh_all()

    # then
    assert outcome == "refreshed 1, failed 1: broken"
    assert GLAccount.objects.filter(tenant=sandbox_tenant).exists()
    assert not GLAccount.objects.filter(tenant=broken).exists()


@pytest.mark.django_db
def test_the_reference_refresh_schedules_exist_after_migrate():
    # then
    assert sorted(Schedule.objects.filter(func="connectors.tasks.reference_data_refresh_all").values_list(
        "name", "schedule_type", "minutes")) == [
        ("reference data: delta refresh of every tenant", "I", 60),
        ("reference data: full refresh of every tenant", "D", None),
    ]
