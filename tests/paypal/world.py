"""An end-to-end world over real HTTP: the Visma and PayPal emulators on pytest-django's live_server, a tenant whose
connections point at them, its Visma mirror, PayPal mapping rules and payer mappings; and the helpers to look.

Import the fixtures into a test module: `from tests.paypal.world import world  # noqa: F401`.
"""
from __future__ import annotations

import gc
import json
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlsplit

import pytest
import requests
from django.utils import timezone

import connectors.paypal  # noqa: F401  (registers the PayPal kind's streams and verifier)
from audit.models import SyncRecord
from connectors.http import ApiSession
from connectors.models import Connection, HttpExchange, Integration, Tenant
from connectors.paypal.webhooks import PAYPAL_CERT_HOSTS
from connectors.services import inbox_process, integration_save
from mappings.documents import posting_marker_part
from tests.factories import stream_marker
from mappings.models import ExternalReference, GLMappingRule
from mappings.reference import reference_data_refresh
from sandbox.models import PayPalWebhook, PayPalWebhookEvent, VismaDocument
from sandbox.paypal import PAYPAL_SANDBOX_CLIENT_ID, PAYPAL_SANDBOX_CLIENT_SECRET, Payer
from sandbox.paypal_seed import paypal_app_ensure
from sandbox.paypal_webhooks import paypal_certificate_ensure, paypal_event_deliver, paypal_webhook_subscribe
from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_sandbox_seed,
)

WEBHOOK_ID = "8PT597110X687430LKGECATA"
ANNA = Payer("QYR5Z8XDVJNXQ", "orders@nordic-outdoor.example", "Anna", "Lindqvist", "SE")
MIKKO = Payer("M3XK8D2QJRB5P", "info@helsinki-trail.example", "Mikko", "Virtanen", "FI")
GUEST = Payer("ZQ7N4R8K2WXPL", "guest.buyer@example.com", "Guest", "Buyer", "DE")
PAYER_CUSTOMERS = {ANNA.payer_id: "10001", MIKKO.payer_id: "10004"}


@dataclass
class World:
    """The tenant, its integration, the servers' addresses, and what it takes to look at both systems."""

    url: str
    tenant: Tenant
    integration: Integration
    subscription: PayPalWebhook
    rules: dict[str, GLMappingRule] = field(default_factory=dict)

    @property
    def visma_url(self) -> str:
        return f"{self.url}/sandbox/visma"

    @property
    def paypal_url(self) -> str:
        return f"{self.url}/sandbox/paypal"

    def records(self, stream: str | None = None):
        records = SyncRecord.objects.filter(integration=self.integration)
        return records.filter(stream=stream) if stream else records

    def record(self, stream: str, source_id: str) -> SyncRecord:
        return SyncRecord.objects.get(integration=self.integration, stream=stream, source_id=source_id)

    def process_inbox(self) -> int:
        return inbox_process()

    def deliver(self, event: PayPalWebhookEvent, **build_options) -> int | None:
        """Send an event the emulated PayPal raised to the integration's webhook address, signed as PayPal signs."""
        return paypal_event_deliver(event, self.subscription, **build_options)

    def last_event(self, event_type: str) -> PayPalWebhookEvent:
        return PayPalWebhookEvent.objects.filter(event_type=event_type).order_by("-id").first()

    def journals(self) -> list[dict]:
        """Journal transactions in the Visma emulator other than the seed's opening balance, oldest first."""
        return [document.body for document in VismaDocument.objects.filter(
            company_id=VISMA_SANDBOX_COMPANY_ID, collection="journal").exclude(key="000001").order_by("id")]

    def marker(self, source_id: str, part: str = "") -> str:
        """The marker the pipeline gave this source object's record (or a part of it, e.g. its "fee" journal)."""
        record = SyncRecord.objects.get(integration=self.integration, source_id=source_id)
        marker = stream_marker(self.integration, record.stream, source_id)
        return posting_marker_part(marker, part) if part else marker

    def journal_with(self, source_id: str, part: str = "") -> list[dict]:
        """The journals carrying the marker of this source object's record (or of its part)."""
        marker = self.marker(source_id, part)
        return [journal for journal in self.journals()
                if any(line["referenceNumber"] == marker for line in journal["journalTransactionLines"])]

    def customer_payments(self) -> list[dict]:
        return [document.body for document in VismaDocument.objects.filter(
            company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_payment").order_by("id")]

    def customer_invoice(self, number: str) -> dict:
        return VismaDocument.objects.get(company_id=VISMA_SANDBOX_COMPANY_ID, collection="customer_invoice",
                                         key=number).body

    def visma_calls(self) -> int:
        return HttpExchange.objects.filter(connection=self.integration.visma_connection).count()


def journal_lines(journal: dict) -> list[tuple[str, str, str]]:
    """(account, debit, credit) in the transaction's currency, as Visma holds them."""
    return [(line["accountNumber"], f"{Decimal(str(line['debitAmountInCurrency'])):.2f}",
             f"{Decimal(str(line['creditAmountInCurrency'])):.2f}") for line in journal["journalTransactionLines"]]


def rule(tenant: Tenant, name: str, priority: int, transaction_type: str, gl_account: str,
         **fields) -> GLMappingRule:
    return GLMappingRule.objects.create(
        tenant=tenant, system="paypal", name=name, priority=priority, transaction_type=transaction_type,
        gl_account=gl_account, fee_account=fields.pop("fee_account", "7770"),
        clearing_account=fields.pop("clearing_account", "1580"), dimensions=fields.pop("dimensions", {"1": "100"}),
        **fields,
    )


def world_build(url: str) -> World:
    visma_sandbox_seed()
    paypal_app_ensure(base_url=f"{url}/sandbox/paypal")
    paypal_certificate_ensure()
    tenant = Tenant.objects.create(slug="nordlys", name="Nordlys Friluft AS")
    visma = Connection.objects.create(
        tenant=tenant, system="visma", base_url=f"{url}/sandbox/visma", token_url=f"{url}/sandbox/visma/connect/token",
        credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                     "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID},
    )
    paypal = Connection.objects.create(
        tenant=tenant, system="paypal", base_url=f"{url}/sandbox/paypal",
        credentials={"client_id": PAYPAL_SANDBOX_CLIENT_ID, "client_secret": PAYPAL_SANDBOX_CLIENT_SECRET,
                     "webhook_id": WEBHOOK_ID},
    )
    # The sandbox serves its signing certificate from this server: its host joins PayPal's on the allow-list.
    integration = integration_save(Integration(
        tenant=tenant, kind="paypal", visma_connection=visma, partner_connection=paypal,
        settings={"cert_hosts": [*PAYPAL_CERT_HOSTS, urlsplit(url).netloc]},
    ))
    subscription = paypal_webhook_subscribe(f"{url}{integration.webhook_path}", webhook_id=WEBHOOK_ID)
    reference_data_refresh(tenant, full=True)
    rules = {
        "capture": rule(tenant, "PayPal captures", 10, "capture", "3000"),
        "refund": rule(tenant, "PayPal refunds", 20, "refund", "3000"),
        "reversal": rule(tenant, "PayPal reversals", 30, "reversal", "3000", disputes_account="1590"),
        "dispute": rule(tenant, "PayPal dispute holds and returns", 35, "dispute", "3000", disputes_account="1590"),
        "invoice_payment": rule(tenant, "PayPal payments of invoices", 40, "invoice_payment", "1510"),
        "invoice": rule(tenant, "PayPal invoices", 50, "invoice", "3000"),
    }
    for payer_id, customer in PAYER_CUSTOMERS.items():
        ExternalReference.objects.create(tenant=tenant, system="paypal", external_kind="payer", external_id=payer_id,
                                         visma_kind="customer", visma_id=customer)
    # PayPal invoices name their recipient by email only.
    ExternalReference.objects.create(tenant=tenant, system="paypal", external_kind="payer_email",
                                     external_id=MIKKO.email, visma_kind="customer", visma_id="10004")
    return World(url=url, tenant=tenant, integration=integration, subscription=subscription, rules=rules)


@pytest.fixture
def world(transactional_db, live_server) -> World:
    yield world_build(live_server.url)
    live_connections_close()


def live_connections_close() -> None:
    """Close every HTTP session a test left open and let the live server's request threads end, so none of them
    outlives the server (Django keeps the last rolled-back exception on the connection, and with it the frames of
    the stream that owns a session: a keep-alive connection can stay open until the next one)."""
    gc.collect()
    # type(), not isinstance(): that would wake lazy objects, and django-csp's spent request.csp_nonce raises.
    for session in [found for found in gc.get_objects() if issubclass(type(found), ApiSession)]:
        session.close()
    for thread in threading.enumerate():
        if "process_request_thread" in thread.name:
            thread.join(timeout=5)


def hours_ago(hours: float):
    return timezone.now().replace(microsecond=0) - timedelta(hours=hours)


def post_raw(url: str, body: bytes, headers: dict) -> requests.Response:
    return requests.post(url, data=body, headers=headers, timeout=10)


def event_body(event: PayPalWebhookEvent) -> dict:
    return json.loads(json.dumps(event.body))
