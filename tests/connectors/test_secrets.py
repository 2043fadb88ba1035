"""Secrets stay secret: encrypted at rest, masked in log lines, absent from webhook rejections."""
import json
import logging

import pytest
from django.db import connection

from audit.models import AuditEntry
from connectors.logging import RedactSecretsFilter, redact
from connectors.models import Connection
from tests.factories import ConnectionFactory, IntegrationFactory
from tests.ledger_stream import sign

pytestmark = pytest.mark.django_db

CLIENT_SECRET = "pp-client-secret-9f8e7d6c"
WEBHOOK_SECRET = "whsec-a1b2c3d4e5"
ACCESS_TOKEN = "A21AAJ-access-token-77x"


def stored_bytes(connection_id: int) -> tuple[bytes, bytes]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT credentials, access_token FROM connectors_connection WHERE id = %s", [connection_id]
        )
        credentials, access_token = cursor.fetchone()
    return bytes(credentials), bytes(access_token)


def test_credentials_and_the_cached_token_are_encrypted_at_rest_and_readable_through_the_model():
    # given
    paypal = ConnectionFactory(
        system="paypal", credentials={"client_id": "pp-client", "client_secret": CLIENT_SECRET,
                                      "webhook_secret": WEBHOOK_SECRET},
    )
    Connection.objects.filter(pk=paypal.pk).update(access_token=ACCESS_TOKEN)

    # when
    credentials, access_token = stored_bytes(paypal.pk)
    loaded = Connection.objects.get(pk=paypal.pk)

    # then
    for secret in (CLIENT_SECRET, WEBHOOK_SECRET, "pp-client"):
        assert secret.encode() not in credentials
    assert ACCESS_TOKEN.encode() not in access_token
    assert credentials.startswith(b"gAAAAA")  # a Fernet token
    assert loaded.credentials == {"client_id": "pp-client", "client_secret": CLIENT_SECRET,
                                  "webhook_secret": WEBHOOK_SECRET}
    assert loaded.access_token == ACCESS_TOKEN


def test_a_dump_of_a_connection_never_writes_the_clear_credentials():
    # given
    paypal = ConnectionFactory(system="paypal", credentials={"client_secret": CLIENT_SECRET})

    # when
    from django.core import serializers

    dumped = serializers.serialize("json", [paypal])

    # then
    assert CLIENT_SECRET not in dumped
    assert json.loads(dumped)[0]["fields"]["credentials"] == "***"


@pytest.mark.parametrize(
    ("line", "masked"),
    [
        ("GET /v2/payments Authorization: Bearer A21AAJ.token-77x", "GET /v2/payments Authorization: Bearer ***"),
        ("Authorization: Basic cHAtY2xpZW50OnNlY3JldA==", "Authorization: Basic ***"),
        ("POST /token body grant_type=client_credentials&client_secret=s3cr3t&scope=x",
         "POST /token body grant_type=client_credentials&client_secret=***&scope=x"),
        ('{"client_id": "c", "client_secret": "s3cr3t"}', '{"client_id": "c", "client_secret": "***"}'),
        ("{'access_token': 'A21AAJ', 'expires_in': 32400}", "{'access_token': '***', 'expires_in': 32400}"),
        ('{"webhook_secret": "whsec-1", "api_key": "k-9"}', '{"webhook_secret": "***", "api_key": "***"}'),
        ("refresh_token=EQAA&token_url=https://x", "refresh_token=***&token_url=https://x"),
        ("captured 100.00 EUR for P-1", "captured 100.00 EUR for P-1"),
    ],
)
def test_redact_masks_credentials_in_a_line(line, masked):
    # then
    assert redact(line) == masked


def test_the_filter_masks_a_secret_passed_as_a_log_argument(caplog):
    # given
    logger = logging.getLogger("connectors.http")
    caplog.handler.addFilter(RedactSecretsFilter())

    # when
    with caplog.at_level(logging.INFO, logger="connectors.http"):
        logger.info("token request %s answered %d", f"client_secret={CLIENT_SECRET}", 200)
        logger.info("calling with Bearer %s", ACCESS_TOKEN)

    # then
    assert caplog.messages == ["token request client_secret=*** answered 200", "calling with Bearer ***"]
    assert CLIENT_SECRET not in caplog.text
    assert ACCESS_TOKEN not in caplog.text


def test_the_configured_console_handler_redacts():
    # then (config/settings.py LOGGING)
    filters = [
        type(log_filter)
        for handler in logging.getLogger().handlers
        for log_filter in handler.filters
    ]
    assert RedactSecretsFilter in filters


def test_a_webhook_rejection_logs_and_audits_no_secret(client, payments_stream, caplog):
    # given
    integration = IntegrationFactory()
    integration.partner_connection.credentials = {"client_id": "pp-client", "client_secret": CLIENT_SECRET,
                                                  "webhook_secret": WEBHOOK_SECRET}
    integration.partner_connection.save()
    body = json.dumps({"id": "WH-1", "type": "PAYMENT.CAPTURE.COMPLETED", "resource_id": "P-1"}).encode()
    forged = sign("guessed-secret", body)

    # when
    with caplog.at_level(logging.DEBUG):
        response = client.post(
            f"/webhooks/paypal/{integration.id}/", data=body, content_type="application/json",
            HTTP_X_TEST_SIGNATURE=forged, HTTP_AUTHORIZATION=f"Bearer {ACCESS_TOKEN}",
        )

    # then
    assert response.status_code == 401
    assert f"webhook for {integration.pk} refused: signature mismatch" in caplog.messages
    entry = AuditEntry.objects.get()
    trail = json.dumps({"reason": entry.reason, "details": entry.details})
    for secret in (WEBHOOK_SECRET, CLIENT_SECRET, ACCESS_TOKEN, sign(WEBHOOK_SECRET, body)):
        assert secret not in caplog.text
        assert secret not in trail
