"""The Stripe emulator's seed: an account and two demo customers; a second run changes nothing."""
from io import StringIO

from django.core.management import call_command

from sandbox.models import StripeAccount, StripeObject
from sandbox.stripe_seed import STRIPE_SANDBOX_SECRET_KEY, STRIPE_SANDBOX_WEBHOOK_SECRET


def test_seeding_twice_makes_one_account_and_two_customers(db):
    # when
    first, second = StringIO(), StringIO()
    call_command("stripe_sandbox_seed", "--webhook-url", "http://127.0.0.1:8000/webhooks/stripe/x/", stdout=first)
    call_command("stripe_sandbox_seed", "--webhook-url", "http://127.0.0.1:8000/webhooks/stripe/x/", stdout=second)

    # then
    account = StripeAccount.objects.get()
    assert (account.secret_key, account.webhook_secret) == (STRIPE_SANDBOX_SECRET_KEY, STRIPE_SANDBOX_WEBHOOK_SECRET)
    customers = sorted((row.body["name"], row.body["metadata"]["visma_customer"])
                       for row in StripeObject.objects.filter(object_type="customer"))
    assert customers == [("Fjordline Sport AS", "10002"), ("Nordic Outdoor AB", "10001")]
    assert "2 demo customer(s) created" in first.getvalue()
    assert "0 demo customer(s) created" in second.getvalue()
