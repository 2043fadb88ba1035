"""The Stripe emulator's seed: an account, three demo customers and their demo invoices; a second run changes nothing."""
from io import StringIO

from django.core.management import call_command

from sandbox.models import StripeAccount, StripeObject
from sandbox.stripe_seed import STRIPE_SANDBOX_SECRET_KEY, STRIPE_SANDBOX_WEBHOOK_SECRET


def test_seeding_twice_makes_one_account_and_three_customers(db):
    # when
    first, second = StringIO(), StringIO()
    call_command("stripe_sandbox_seed", "--webhook-url", "http://127.0.0.1:8000/webhooks/stripe/x/", stdout=first)
    call_command("stripe_sandbox_seed", "--webhook-url", "http://127.0.0.1:8000/webhooks/stripe/x/", stdout=second)

    # then
    account = StripeAccount.objects.get()
    assert (account.secret_key, account.webhook_secret) == (STRIPE_SANDBOX_SECRET_KEY, STRIPE_SANDBOX_WEBHOOK_SECRET)
    customers = sorted((row.body["name"], row.body["metadata"]["visma_customer"])
                       for row in StripeObject.objects.filter(object_type="customer"))
    assert customers == [("Fjordline Sport AS", "10002"), ("Helsinki Trail Oy", "10004"), ("Nordic Outdoor AB", "10001")]
    assert "3 demo customer(s) created" in first.getvalue()
    assert "0 demo customer(s) created" in second.getvalue()


def test_seeding_for_a_tenant_takes_its_stripe_key_and_sends_events_to_its_integration(db):
    # given a tenant whose Stripe connection points at the sandbox
    from tests.factories import ConnectionFactory, IntegrationFactory

    partner = ConnectionFactory(system="stripe", base_url="http://127.0.0.1:8000/sandbox/stripe",
                                credentials={"secret_key": "sk_test_tenant_key_9876",
                                             "webhook_secrets": ["whsec_tenant_new", "whsec_tenant_old"]})
    integration = IntegrationFactory(tenant=partner.tenant, kind="stripe", partner_connection=partner)
    out = StringIO()

    # when
    call_command("stripe_sandbox_seed", "--tenant", partner.tenant.slug, "--base-url", "http://127.0.0.1:8000",
                 stdout=out)

    # then
    account = StripeAccount.objects.get()
    assert (account.secret_key, account.webhook_secret, account.webhook_url) == (
        "sk_test_tenant_key_9876", "whsec_tenant_new", f"http://127.0.0.1:8000/webhooks/stripe/{integration.pk}/"
    )
    assert "sk_test_tenant_key_9876" not in out.getvalue()
    assert "…9876" in out.getvalue()


def test_the_demo_invoices_are_paid_failed_disputed_and_refunded_for_the_visma_sandbox_invoices(db):
    # given: the Visma sandbox holds its demo invoices
    from sandbox.services import visma_sandbox_seed

    visma_sandbox_seed()

    # when
    call_command("stripe_sandbox_seed", stdout=StringIO())

    # then
    invoices = {row.body["metadata"]["visma_invoice"]: row.body
                for row in StripeObject.objects.filter(object_type="invoice")}
    assert sorted((number, invoice["status"]) for number, invoice in invoices.items()) == [
        ("100001", "paid"), ("100003", "paid"), ("100005", "paid")]
    charges = sorted((row.body["status"], row.body["disputed"], row.body["amount_refunded"] > 0)
                     for row in StripeObject.objects.filter(object_type="charge"))
    assert charges == [("failed", False, False), ("succeeded", False, False), ("succeeded", False, True),
                       ("succeeded", True, False)]
    assert all("invoice" not in row.body for row in StripeObject.objects.filter(object_type="charge"))
