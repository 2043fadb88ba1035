"""Fixtures for the Visma emulator: the seeded company and a caller that talks to it like the real client would."""
from dataclasses import dataclass, field
from urllib.parse import urlencode

import pytest
from django.test import Client

from sandbox.services import (
    VISMA_SANDBOX_CLIENT_ID,
    VISMA_SANDBOX_CLIENT_SECRET,
    VISMA_SANDBOX_COMPANY_ID,
    VISMA_SANDBOX_TENANT_ID,
    visma_sandbox_seed,
)

BASE = "/sandbox/visma"


def token_form(**overrides) -> dict:
    form = {
        "grant_type": "client_credentials",
        "client_id": VISMA_SANDBOX_CLIENT_ID,
        "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
        "scope": "vismanet_erp_service_api:read vismanet_erp_service_api:create vismanet_erp_service_api:update",
        "tenant_id": VISMA_SANDBOX_TENANT_ID,
    }
    form.update(overrides)
    return form


def token_request(client: Client, form: dict, **headers):
    return client.post(
        f"{BASE}/connect/token", urlencode(form), content_type="application/x-www-form-urlencoded", headers=headers
    )


@dataclass
class VismaSession:
    """The Django test client with a token and the ipp-company-id header, speaking to /sandbox/visma."""

    client: Client
    token: str = ""
    company_id: str = VISMA_SANDBOX_COMPANY_ID
    extra_headers: dict = field(default_factory=dict)

    def authenticate(self) -> "VismaSession":
        response = token_request(self.client, token_form())
        assert response.status_code == 200, response.content
        self.token = response.json()["access_token"]
        return self

    def headers(self, **extra) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "ipp-company-id": self.company_id}
        headers.update(self.extra_headers)
        headers.update(extra)
        return headers

    def get(self, path: str, query: dict | None = None, **headers):
        return self.client.get(f"{BASE}{path}", query or {}, headers=self.headers(**headers))

    def post(self, path: str, body, **headers):
        return self.client.post(f"{BASE}{path}", body, content_type="application/json", headers=self.headers(**headers))

    def put(self, path: str, body, **headers):
        return self.client.put(f"{BASE}{path}", body, content_type="application/json", headers=self.headers(**headers))


@pytest.fixture
def visma_company(db):
    """The seed company (chart of accounts, SUBACCOUNT dimension, 250 customers, suppliers, invoices)."""
    return visma_sandbox_seed()


@pytest.fixture
def visma(visma_company, client) -> VismaSession:
    return VismaSession(client=client).authenticate()


def value(x):
    """A write DTO field: {"value": x}."""
    return {"value": x}


def journal_body(lines, **header) -> dict:
    body = {"transactionDate": value("2026-03-10T00:00:00"), "description": value("Stripe payout po_123")}
    body.update({name: value(field_value) for name, field_value in header.items()})
    body["journalTransactionLines"] = [
        {
            "operation": "Insert",
            "accountNumber": value(account),
            **({"debitAmountInCurrency": value(debit)} if debit else {}),
            **({"creditAmountInCurrency": value(credit)} if credit else {}),
            **({"subaccount": [{"segmentId": s, "segmentValue": v} for s, v in segments]} if segments else {}),
            "referenceNumber": value("po_123"),
        }
        for account, debit, credit, segments in lines
    ]
    return body
