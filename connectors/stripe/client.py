"""Stripe API access: one official `stripe.StripeClient` per connection (its key and base URL), errors sorted for the
pipeline, and an idempotency key on every create so a retried create never makes a second object."""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from decimal import Decimal
from typing import Any

import requests
import stripe

from connectors.errors import AuthenticationError, ConnectorError, PermanentError, TransientError
from connectors.models import Connection
from connectors.services import connection_credentials

STRIPE_API_BASE = "https://api.stripe.com"
# The API version every request names (Stripe-Version): the one stripe==16.1.0's typed objects describe
# (stripe/_api_version.py). In it Charge.invoice and Invoice.charge/payment_intent are gone: an invoice's payments are
# InvoicePayment objects (docs/stripe-api.md). Upgrading the package means reading its CHANGELOG and moving this.
STRIPE_API_VERSION = "2026-10-28.endive"
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
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=MAX_NETWORK_RETRIES,
            http_client=stripe.RequestsClient(timeout=TIMEOUT_SECONDS, session=self.session),
        )

    def close(self) -> None:
        self.session.close()

    # --- reads -------------------------------------------------------------------------------------------------

    def charge(self, charge_id: str) -> stripe.Charge:
        with stripe_errors():
            return self.client.v1.charges.retrieve(charge_id, {"expand": ["balance_transaction"]})

    def charge_data(self, charge_id: str) -> dict:
        """The charge with its balance transaction, as Stripe's JSON with every number a Decimal or int (the library
        reads `exchange_rate` as a float)."""
        return stripe_json(self.charge(charge_id))

    def invoice_payments_of(self, payment_intent_id: str) -> list[dict]:
        """The InvoicePayments of one payment intent (GET /v1/invoice_payments?payment[type]=payment_intent&
        payment[payment_intent]=…, stripe/params/_invoice_payment_list_params.py)."""
        params = {"payment": {"type": "payment_intent", "payment_intent": payment_intent_id}, "limit": PAGE_SIZE}
        with stripe_errors():
            return [payment.to_dict()
                    for payment in self.client.v1.invoice_payments.list(params).auto_paging_iter()]

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

    def tax_rates(self, *, inclusive: bool) -> Iterator[stripe.TaxRate]:
        """Every active tax rate, exclusive or inclusive (Stripe has no search for tax rates), page by page."""
        with stripe_errors():
            yield from self.client.v1.tax_rates.list(
                {"active": True, "inclusive": inclusive, "limit": PAGE_SIZE}).auto_paging_iter()

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

    def tax_rate_create(self, params: dict[str, Any], *, idempotency_key: str) -> stripe.TaxRate:
        with stripe_errors():
            return self.client.v1.tax_rates.create(params, {"idempotency_key": idempotency_key})

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


def stripe_json(obj: stripe.StripeObject) -> dict:
    """An object as the raw JSON Stripe sent, numbers parsed as Decimal (never float); the library's dict if the
    response text is not at hand."""
    response = obj.last_response
    if response is None or not response.body:
        return obj.to_dict()
    return json.loads(response.body, parse_float=Decimal)


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


__all__ = ["STRIPE_API_VERSION", "ConnectorError", "StripeApi", "stripe_json", "stripe_errors", "stripe_idempotency_key", "stripe_ping",
           "stripe_search_text"]
