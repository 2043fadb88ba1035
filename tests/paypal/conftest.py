"""Fixtures for the PayPal tests: recorded payloads, the emulator's app and a caller, a PayPal connection."""
import base64
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client

import connectors.paypal  # noqa: F401  (registers the verifier, streams and settings on KINDS["paypal"])
from sandbox.openapi_index import vendor_spec_path
from sandbox.paypal import PAYPAL_SANDBOX_CLIENT_ID, PAYPAL_SANDBOX_CLIENT_SECRET
from sandbox.paypal_seed import paypal_app_ensure

PAYLOADS = Path(__file__).parent / "payloads"
BASE = "/sandbox/paypal"


def signature_vector() -> dict:
    """PayPal's webhook-signature test vector, from PayPal's SDK test suites (sandbox/vendor_specs/paypal)."""
    return json.loads(vendor_spec_path("paypal/webhook_signature_test_vector.json").read_text())


def payload(name: str):
    return json.loads((PAYLOADS / name).read_text())


def basic(client_id: str = PAYPAL_SANDBOX_CLIENT_ID, secret: str = PAYPAL_SANDBOX_CLIENT_SECRET) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@dataclass
class PayPalSession:
    """The Django test client with a bearer token, speaking to /sandbox/paypal like the connector does."""

    client: Client
    token: str = ""

    def authenticate(self) -> "PayPalSession":
        response = self.client.post(f"{BASE}/v1/oauth2/token", "grant_type=client_credentials",
                                    content_type="application/x-www-form-urlencoded",
                                    headers={"Authorization": basic()})
        assert response.status_code == 200, response.content
        self.token = response.json()["access_token"]
        return self

    def get(self, path: str, query: dict | None = None, **headers):
        return self.client.get(f"{BASE}{path}", query or {},
                               headers={"Authorization": f"Bearer {self.token}", **headers})

    def post(self, path: str, body, **headers):
        return self.client.post(f"{BASE}{path}", json.dumps(body) if body is not None else "",
                                content_type="application/json",
                                headers={"Authorization": f"Bearer {self.token}", **headers})


@pytest.fixture
def paypal_app(db):
    return paypal_app_ensure(base_url="http://testserver/sandbox/paypal")


@pytest.fixture
def paypal(paypal_app, client) -> PayPalSession:
    return PayPalSession(client=client).authenticate()
