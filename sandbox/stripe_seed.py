"""The Stripe emulator's seed: an account (secret key, webhook endpoint and secret) and a few demo customers."""
from __future__ import annotations

from django.db import transaction

from . import stripe_api
from .models import StripeAccount, StripeObject

STRIPE_SANDBOX_SECRET_KEY = "sk_test_51NordlysSandbox0000000000"
STRIPE_SANDBOX_WEBHOOK_SECRET = "whsec_nordlys_sandbox_0000000000"
# Demo customers, each naming the Visma customer it stands for (see sandbox/visma_seed.py).
DEMO_CUSTOMERS = (("Nordic Outdoor AB", "orders@nordic-outdoor.example", "10001"),
                  ("Fjordline Sport AS", "post@fjordline-sport.example", "10002"))


def stripe_sandbox_seed(*, secret_key: str = STRIPE_SANDBOX_SECRET_KEY, webhook_url: str = "",
                        webhook_secret: str = STRIPE_SANDBOX_WEBHOOK_SECRET, demo: bool = True) -> tuple[StripeAccount, int]:
    """The account (updated in place when it exists) and how many demo customers were created; twice changes nothing."""
    with transaction.atomic():
        account, _ = StripeAccount.objects.update_or_create(
            secret_key=secret_key, defaults={"name": "Nordlys AS (sandbox)", "webhook_url": webhook_url,
                                             "webhook_secret": webhook_secret, "default_currency": "nok"})
        created = 0
        if demo and not StripeObject.objects.filter(account=account, object_type="customer").exists():
            for name, email, visma_customer in DEMO_CUSTOMERS:
                stripe_api.customer_create(account, {"name": name, "email": email,
                                                     "metadata": {"visma_customer": visma_customer}})
                created += 1
    return account, created
