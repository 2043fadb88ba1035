"""What each integration kind brings: its credentials, settings, streams, webhook verifier and ping."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import Connection
    from .pipeline import Stream
    from .webhooks import WebhookVerifier


@dataclass
class KindSpec:
    """One system. Vendor packages fill in streams, verifier and ping when they are imported."""

    kind: str
    required_credentials: tuple[str, ...] = ()
    # Further keys a connection may carry (webhook secrets, other auth schemes); anything else is refused.
    optional_credentials: tuple[str, ...] = ()
    # Setting name → (type, default) or (type, default, allowed values); anything else is refused.
    settings_schema: dict[str, tuple] = field(default_factory=dict)
    streams: dict[str, type[Stream]] = field(default_factory=dict)
    verifier: WebhookVerifier | None = None
    ping: Callable[[Connection], str] | None = None


_WEBHOOK_CREDENTIALS = ("webhook_id", "webhook_secret", "webhook_secrets", "webhook_signature_key")

KINDS: dict[str, KindSpec] = {
    "visma": KindSpec("visma", required_credentials=("client_id", "client_secret", "tenant_id", "company_id"),
                      optional_credentials=_WEBHOOK_CREDENTIALS),
    "paypal": KindSpec("paypal", required_credentials=("client_id", "client_secret"),
                       optional_credentials=_WEBHOOK_CREDENTIALS),
    "stripe": KindSpec("stripe", required_credentials=("secret_key",), optional_credentials=_WEBHOOK_CREDENTIALS),
    # Square: a personal access token, or OAuth tokens (expires_at ISO 8601; client_secret only for the code flow,
    # PKCE has none) renewed with the refresh token long before their 30-day expiry (connectors/square/auth.py).
    "square": KindSpec("square", required_credentials=("access_token",),
                       optional_credentials=(*_WEBHOOK_CREDENTIALS, "webhook_signature_keys", "expires_at",
                                             "refresh_token", "client_id", "client_secret")),
    "airbase": KindSpec("airbase", required_credentials=("api_key",), optional_credentials=_WEBHOOK_CREDENTIALS),
    # Adobe Commerce: an integration token (OAuth 1.0a on PaaS) or Adobe IMS server-to-server (SaaS).
    "adobe_commerce": KindSpec(
        "adobe_commerce", required_credentials=("access_token",),
        optional_credentials=(*_WEBHOOK_CREDENTIALS, "consumer_key", "consumer_secret", "access_token_secret",
                              "client_id", "client_secret"),
    ),
}


def kind_spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise KeyError(f"unknown integration kind {kind!r}; known: {', '.join(sorted(KINDS))}") from None


def stream_class(kind: str, stream: str) -> type[Stream]:
    streams = kind_spec(kind).streams
    try:
        return streams[stream]
    except KeyError:
        known = ", ".join(sorted(streams)) or "none yet"
        raise KeyError(f"{kind} has no stream {stream!r}; its streams: {known}") from None
