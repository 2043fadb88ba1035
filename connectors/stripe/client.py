"""Stripe API access: one official `stripe.StripeClient` per connection (its key and base URL), errors sorted for the
pipeline, and an idempotency key on every create so a retried create never makes a second object."""
from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import requests
import stripe

from connectors.errors import AuthenticationError, ConnectorError, PermanentError, TransientError
from connectors.models import Connection
from connectors.services import connection_credentials

STRIPE_API_BASE = "https://api.stripe.com"
# The client retries network errors, 409 lock timeouts, 429 and 5xx itself (honouring Stripe-Should-Retry).
MAX_NETWORK_RETRIES = 2
TIMEOUT_SECONDS = 30
PAGE_SIZE = 100


def stripe_idempotency_key(*parts: object) -> str:
    """A stable key for one create: the same business object gives the same key on every retry (Stripe keeps 24 h)."""
    return "ml-" + hashlib.sha256("|".join(str(part) for part in parts).encode()).hexdigest()[:48]


def stripe_search_text(value: str) -> str:
    """A value quoted for Stripe's search query language (backslash and quote escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


@contextmanager
def stripe_errors() -> Iterator[None]:
    """Turn the library's errors into ours: transient (retry later) or permanent (a person looks)."""
    try:
        yield
    except stripe.AuthenticationError as exc:
        raise AuthenticationError(f"Stripe refused the key: {exc.user_message or exc}",
                                  status_code=exc.http_status) from exc
    except (stripe.RateLimitError, stripe.APIConnectionError) as exc:
        raise TransientError(f"Stripe: {exc.user_message or exc}", status_code=exc.http_status) from exc
    except stripe.StripeError as exc:
        status = exc.http_status
        message = f"Stripe {status}: {exc.user_message or exc}"
        if status is None or status >= 500 or status in (409, 429):
            raise TransientError(message, status_code=status) from exc
        raise PermanentError(message, status_code=status, system_message=str(exc.user_message or exc)) from exc


class StripeApi:
    """The calls the streams make, over one connection's `StripeClient`."""

    def __init__(self, connection: Connection):
        credentials = connection_credentials(connection)
        self.base_url = (connection.base_url or STRIPE_API_BASE).rstrip("/")
        # Our own session (the library's default is per thread), so `close` ends every kept-alive connection.
        self.session = requests.Session()
        self.client = stripe.StripeClient(
            credentials["secret_key"],
            base_addresses={"api": self.base_url},
            max_network_retries=MAX_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS, session=self.session),
        )

    def close(self) -> None:
        self.session.close()

    # --- reads -------------------------------------------------------------------------------------------------

    def charge(self, charge_id: str) -> stripe.Charge:
        with stripe_errors():
            return self.client.v1.charges.retrieve(charge_id, {"expand": ["balance_transaction"]})

    def dispute(self, dispute_id: str) -> stripe.Dispute:
        with stripe_errors():
            return self.client.v1.disputes.retrieve(dispute_id)

    def refund(self, refund_id: str) -> stripe.Refund:
        with stripe_errors():
            return self.client.v1.refunds.retrieve(refund_id, {"expand": ["balance_transaction"]})

    def event(self, event_id: str) -> stripe.Event:
        with stripe_errors():
            return self.client.v1.events.retrieve(event_id)

    def invoice(self, invoice_id: str) -> stripe.Invoice:
        with stripe_errors():
            return self.client.v1.invoices.retrieve(invoice_id)

    def events(self, *, since: datetime, types: list[str] | None = None) -> Iterator[stripe.Event]:
        """Events created at or after `since` (Stripe keeps 30 days), oldest page last, every page streamed."""
        params: dict[str, Any] = {"created": {"gte": int(since.timestamp())}, "limit": PAGE_SIZE}
        if types:
            params["types"] = types
        with stripe_errors():
            yield from self.client.v1.events.list(params).auto_paging_iter()

    def invoices_of(self, customer_id: str) -> Iterator[stripe.Invoice]:
        """Every invoice of one customer, newest first, page by page."""
        with stripe_errors():
            yield from self.client.v1.invoices.list({"customer": customer_id, "limit": PAGE_SIZE}).auto_paging_iter()

    def customer_find(self, *, metadata_key: str, value: str) -> stripe.Customer | None:
        """The customer whose metadata[`metadata_key`] is `value` (Stripe's search), or None."""
        found = self.customers_search(f"metadata['{metadata_key}']:{stripe_search_text(value)}", limit=1)
        return found[0] if found else None

    def customers_search(self, query: str, *, limit: int = 10) -> list[stripe.Customer]:
        """The customers Stripe's search query language finds (newest first), at most `limit`."""
        with stripe_errors():
            return list(self.client.v1.customers.search({"query": query, "limit": limit}).data)

    # --- writes (each with an idempotency key) -----------------------------------------------------------------

    def customer_create(self, params: dict[str, Any], *, idempotency_key: str) -> stripe.Customer:
        with stripe_errors():
            return self.client.v1.customers.create(params, {"idempotency_key": idempotency_key})

    def invoice_item_create(self, params: dict[str, Any], *, idempotency_key: str) -> stripe.InvoiceItem:
        with stripe_errors():
            return self.client.v1.invoice_items.create(params, {"idempotency_key": idempotency_key})

    def invoice_create(self, params: dict[str, Any], *, idempotency_key: str) -> stripe.Invoice:
        with stripe_errors():
            return self.client.v1.invoices.create(params, {"idempotency_key": idempotency_key})

    def invoice_finalize(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        with stripe_errors():
            return self.client.v1.invoices.finalize_invoice(invoice_id, {}, {"idempotency_key": idempotency_key})

    def invoice_send(self, invoice_id: str, *, idempotency_key: str) -> stripe.Invoice:
        with stripe_errors():
            return self.client.v1.invoices.send_invoice(invoice_id, {}, {"idempotency_key": idempotency_key})


def stripe_ping(connection: Connection) -> str:
    """Check the key end to end: read the account's balance."""
    api = StripeApi(connection)
    try:
        with stripe_errors():
            balance = api.client.v1.balance.retrieve()
    finally:
        api.close()
    currencies = ", ".join(sorted({entry.currency.upper() for entry in balance.available})) or "none"
    return f"key OK, balance readable (currencies: {currencies}) ({api.base_url})"


__all__ = ["ConnectorError", "StripeApi", "stripe_errors", "stripe_idempotency_key", "stripe_ping",
           "stripe_search_text"]
