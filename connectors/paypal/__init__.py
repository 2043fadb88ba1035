"""PayPal: the client, webhook verification and the streams to Visma; registers them on KINDS["paypal"] on import."""
from connectors import registry

from .client import paypal_ping
from .flows import STREAMS
from .webhooks import PayPalWebhookVerifier

SETTINGS_SCHEMA: dict[str, tuple[type, object]] = {
    # Hosts PAYPAL-CERT-URL may name (None: PayPal's live and sandbox API hosts).
    "cert_hosts": (list, None),
    # A delivery whose PAYPAL-TRANSMISSION-TIME is further from now than this is refused as a replay.
    "webhook_max_age_seconds": (int, 300),
    # How far behind now Transaction Search is taken to have published when an answer leaves out
    # last_refreshed_datetime (PayPal: "a maximum of three hours"); otherwise PayPal's own word is used.
    "publication_delay_minutes": (int, 180),
    # A customer payment's cash account (else the mapping rule's clearing account) and Visma payment method.
    "cash_account": (str, None),
    "payment_method": (str, None),
}

spec = registry.KINDS["paypal"]
spec.ping = paypal_ping
spec.verifier = PayPalWebhookVerifier()
spec.settings_schema.update(SETTINGS_SCHEMA)
spec.streams.update(STREAMS)
