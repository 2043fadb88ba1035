"""The WSGI entry point: webhooks run without the middleware of a browser site; everything else runs with it."""
import io
import json
import sys

import pytest

from config import wsgi
from connectors.models import InboundEvent
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.ledger_stream import sign

pytestmark = pytest.mark.django_db


def call(path: str, body: bytes = b"", method: str = "POST", **headers) -> tuple[str, dict, bytes]:
    """One request through config.wsgi.application, as gunicorn makes it."""
    environ = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1",
        "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
        "wsgi.multithread": False, "wsgi.multiprocess": True, "wsgi.run_once": False, "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }
    answer = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"], answer["headers"] = status, dict(response_headers)

    response = wsgi.application(environ, start_response)
    content = b"".join(response)
    response.close()
    return answer["status"], answer["headers"], content


def test_a_webhook_is_stored_through_the_handler_without_browser_middleware(payments_stream):
    # given
    integration = IntegrationFactory(partner_connection=ConnectionFactory(
        system="paypal", credentials={"client_id": "c", "client_secret": "s", "webhook_secret": "wh"}))
    body = json.dumps({"id": "EVT-1", "type": "payment.completed", "resource_id": "P-1"}).encode()

    # when
    status, headers, content = call(integration.webhook_path, body, X_TEST_SIGNATURE=sign("wh", body))

    # then stored, and answered without what sessions, CSRF and frame options add; security middleware still ran
    assert (status, json.loads(content)) == ("200 OK", {"received": 1, "duplicates": 0})
    assert InboundEvent.objects.get().event_id == "EVT-1"
    assert "X-Frame-Options" not in headers
    assert "Cookie" not in headers.get("Vary", "")
    assert headers["X-Content-Type-Options"] == "nosniff"


def test_the_admin_still_runs_with_every_middleware():
    # when
    status, headers, _ = call("/admin/login/", method="GET")

    # then
    assert status == "200 OK"
    assert headers["X-Frame-Options"] == "DENY"
    assert "csrftoken=" in headers.get("Set-Cookie", "")
