"""A tenant file with a Square integration: OAuth credentials (expires_at, refresh token, client id and secret) and
the signature key stored encrypted, Square's settings validated."""
import json

import pytest

from connectors.models import Connection, Integration

from .helpers import example_document, run, run_refused, write_document

pytestmark = pytest.mark.django_db

SQUARE = {
    "base_url": "http://sandbox/square",
    "access_token": "EAAA-square-access-s3cr3t",
    "expires_at": "2026-04-01T10:00:00Z",
    "refresh_token": "EQAA-square-refresh-s3cr3t",
    "client_id": "sq0idp-ml-connector",
    "client_secret": "sq0csp-square-client-s3cr3t",
    "webhook_signature_key": "square-signature-key-s3cr3t",
    "settings": {"webhook_notification_url": "https://connector.example.no/webhooks/square/x/",
                 "token_renew_after_days": 5, "page_size": 50},
}


def test_a_tenant_file_with_a_square_integration_loads(tmp_path):
    # given
    document = example_document()
    document["integrations"]["square"] = SQUARE
    path = write_document(tmp_path / "tenant.json", document)

    # when
    stdout, _ = run("load_tenant", path)

    # then
    square = Integration.objects.get(kind="square")
    assert json.loads(stdout)["integrations"]["square"] == {"id": str(square.pk),
                                                            "webhook_url": f"/webhooks/square/{square.pk}/"}
    connection = Connection.objects.get(system="square")
    assert connection.credentials == {key: value for key, value in SQUARE.items()
                                      if key not in ("base_url", "settings")}
    assert square.settings["square_version"] == "2025-08-20"
    assert (square.settings["token_renew_after_days"], square.settings["page_size"]) == (5, 50)
    assert square.settings["webhook_notification_url"] == "https://connector.example.no/webhooks/square/x/"


def test_an_unknown_square_setting_or_credential_is_refused_by_its_key(tmp_path):
    # given
    document = example_document()
    document["integrations"]["square"] = {**SQUARE, "application_secret": "x",
                                          "settings": {"square_versoin": "2025-08-20"}}
    path = write_document(tmp_path / "tenant.json", document)

    # when
    error, _, _ = run_refused("load_tenant", path)

    # then
    assert "integrations.square.application_secret: unknown key" in str(error)
    assert "integrations.square.settings.square_versoin: unknown setting" in str(error)
    assert not Integration.objects.filter(kind="square").exists()
