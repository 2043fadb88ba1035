"""Stripe: the client, webhook verification and the streams to Visma; registers them on KINDS["stripe"] on import."""
from connectors import registry

from .client import stripe_ping
from .flows import STREAMS
from .webhooks import StripeWebhookVerifier

SETTINGS_SCHEMA: dict[str, tuple[type, object]] = {
    # A delivery whose Stripe-Signature t= is further from now than this is refused as a replay (Stripe: 300 s).
    "webhook_tolerance_seconds": (int, 300),
    # A customer payment's cash account (else the mapping rule's clearing account) and Visma payment method.
    "cash_account": (str, None),
    "payment_method": (str, None),
    # Visma → Stripe: an invoice is collected by Stripe when its `collect_field` contains `collect_value`.
    "collect_field": (str, "paymentMethod"),
    "collect_value": (str, "STRIPE"),
    # Currencies the Stripe account collects (None: any); an invoice in another currency is flagged.
    "collect_currencies": (list, None),
    # Days to pay a Stripe invoice when the Visma invoice's due date has passed or is missing.
    "days_until_due": (int, 14),
    # How the Stripe customer of a Visma customer is found: "metadata" (metadata[`customer_metadata_key`] is the
    # Visma customer number) or "description" (the Stripe customer's description is the Visma customer's name).
    "customer_match": (str, "metadata", ("metadata", "description")),
    "customer_metadata_key": (str, "visma_customer"),
    # No Stripe customer matches: create one (True) or flag the invoice for a person (False).
    "create_customers": (bool, False),
}

spec = registry.KINDS["stripe"]
spec.ping = stripe_ping
spec.verifier = StripeWebhookVerifier()
spec.settings_schema.update(SETTINGS_SCHEMA)
spec.streams.update(STREAMS)
