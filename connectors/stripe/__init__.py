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
}

spec = registry.KINDS["stripe"]
spec.ping = stripe_ping
spec.verifier = StripeWebhookVerifier()
spec.settings_schema.update(SETTINGS_SCHEMA)
spec.streams.update(STREAMS)
