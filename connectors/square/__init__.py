"""Square: the client, webhook verification and the streams to Visma; registers them on KINDS["square"] on import."""
from connectors import registry

from .client import square_ping
from .flows import STREAMS
from .webhooks import SquareWebhookVerifier

SETTINGS_SCHEMA: dict[str, tuple[type, object]] = {
    # The Square-Version every request names (docs/square.md §2): the version api.json describes.
    "square_version": (str, "2025-08-20"),
    # The notification URL configured in Square for this integration, byte for byte: signatures are computed over
    # it (never rebuilt from the request). None: every delivery is refused.
    "webhook_notification_url": (str, None),
    # Renew an OAuth access token once it is this old (issued = expires_at − 30 days); never later than 28 days.
    "token_renew_after_days": (int, 7),
    # `limit` of every list call (Square's maximum for payments and refunds is 100).
    "page_size": (int, 100),
    # ISO date the integration reads from (ListPayments/ListPaymentRefunds begin_time); None: its creation.
    "begin_time": (str, None),
    # How long a COMPLETED card payment without processing_fee waits before it is flagged.
    "fee_wait_minutes": (int, 120),
    # How long a refund waits for its payment before it is flagged.
    "refund_wait_hours": (int, 72),
    # An unknown Square customer on an invoice: create the Visma customer (True) or flag the invoice (False).
    "create_customers": (bool, False),
    # Customer and supplier classes of the Visma customers and suppliers we create.
    "customer_class": (str, None),
    "supplier_class": (str, None),
}

spec = registry.KINDS["square"]
spec.ping = square_ping
spec.verifier = SquareWebhookVerifier()
spec.settings_schema.update(SETTINGS_SCHEMA)
spec.streams.update(STREAMS)

# F2: invoices (with their payments and the customers they need) and vendors.
from .invoices import STREAMS as INVOICE_STREAMS  # noqa: E402
from .vendors import STREAMS as VENDOR_STREAMS  # noqa: E402

spec.streams.update(INVOICE_STREAMS)
spec.streams.update(VENDOR_STREAMS)
