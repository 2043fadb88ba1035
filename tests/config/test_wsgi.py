"""The WSGI entry point: webhooks run without the middleware of a browser site; everything else runs with it."""
import json

import pytest

from connectors.models import InboundEvent
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.ledger_stream import sign
from tests.wsgi_client import wsgi_request

pytestmark = pytest.mark.django_db


def test_a_webhook_is_stored_through_the_handler_without_browser_middleware(payments_stream):
    # given
    integration = IntegrationFactory(partner_connection=ConnectionFactory(
        system="paypal", credentials={"client_id": "c", "client_secret": "s", "webhook_secret": "wh"}))
    body = json.dumps({"id": "EVT-1", "type": "payment.completed", "resource_id": "P-1"}).encode()

    # when
    response = wsgi_request(integration.webhook_path, body, headers={"X-Test-Signature": sign("wh", body)})

    # then stored, and answered without what sessions, CSRF and frame options add; security middleware still ran
    assert (response.status_code, json.loads(response.content)) == (200, {"received": 1, "duplicates": 0})
    assert InboundEvent.objects.get().event_id == "EVT-1"
    assert "X-Frame-Options" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_the_admin_still_runs_with_every_middleware():
    # when
    response = wsgi_request("/admin/login/", method="GET")

    # then
    assert response.status_code == 200
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "csrftoken=" in response.headers.get("Set-Cookie", "")
