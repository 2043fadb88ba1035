"""The seed company: what it holds, and that seeding twice changes nothing."""
from collections import Counter
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from sandbox.models import VismaClient, VismaCounter, VismaDocument, VismaGLBalance
from sandbox.services import visma_sandbox_seed
from sandbox.visma_erp import customer_create

pytestmark = pytest.mark.django_db


def _state() -> dict:
    return {
        "documents": sorted(VismaDocument.objects.values_list("collection", "key", "etag", "last_modified")),
        "counters": sorted(VismaCounter.objects.values_list("series", "last_number")),
        "balances": sorted(VismaGLBalance.objects.values_list("account_cd", "debit_total", "credit_total")),
        "clients": list(VismaClient.objects.values_list("client_id", "company_id", "tenant_id")),
    }


def test_the_seed_company_holds_the_reference_data_and_documents():
    # when
    client = visma_sandbox_seed()

    # then
    assert (client.client_id, client.client_secret, client.company_id, client.tenant_id) == (
        "ml-connector-sandbox", "sandbox-client-secret", "1234567", "5c1a4d3e-8f2b-4e6a-9d7c-0b1e2f3a4b5c",
    )
    assert (client.token_lifetime_seconds, client.hourly_call_budget) == (3600, 500)
    assert Counter(VismaDocument.objects.values_list("collection", flat=True)) == {
        "account": 19, "dimension": 1, "subaccount": 14, "customer": 250, "supplier": 4, "vat": 4,
        "customer_invoice": 4, "supplier_invoice": 2, "journal": 1, "financial_period": 60,
    }
    assert VismaDocument.objects.get(collection="customer", key="10001").body["name"] == "Nordic Outdoor AB"
    assert VismaDocument.objects.get(collection="account", key="3099").body["active"] is False
    assert VismaGLBalance.objects.get(account_cd="1920").debit_total == Decimal("50000.00")


def test_seeding_twice_changes_nothing():
    # given
    visma_sandbox_seed()
    first = _state()

    # when
    visma_sandbox_seed()

    # then
    assert _state() == first


def test_a_second_company_can_be_seeded_beside_the_first():
    # given
    visma_sandbox_seed()

    # when
    visma_sandbox_seed(company_id="7654321", client_id="demo-client", client_secret="demo-secret", tenant_id="t-2")

    # then
    assert VismaDocument.objects.filter(company_id="7654321", collection="customer").count() == 250
    assert VismaDocument.objects.filter(company_id="1234567", collection="customer").count() == 250
    assert VismaClient.objects.get(client_id="demo-client").company_id == "7654321"


def test_the_seed_command_seeds_and_resets():
    # given
    visma_sandbox_seed()
    customer_create("1234567", {"name": {"value": "Leftover AB"}})
    output = StringIO()

    # when
    call_command("visma_sandbox_seed", "--reset", stdout=output)

    # then
    assert output.getvalue() == (
        "Visma sandbox: company 1234567, tenant 5c1a4d3e-8f2b-4e6a-9d7c-0b1e2f3a4b5c, client ml-connector-sandbox\n"
    )
    assert VismaDocument.objects.filter(collection="customer").count() == 250
    assert not VismaDocument.objects.filter(collection="customer", body__name="Leftover AB").exists()
