"""Visma Connect tokens and the API's header rules: 401 without a valid token, 400 without the right company."""
import base64
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from sandbox.models import VismaCallWindow, VismaToken
from sandbox.services import VISMA_SANDBOX_CLIENT_ID, VISMA_SANDBOX_CLIENT_SECRET, visma_client_configure
from tests.sandbox.conftest import BASE, VismaSession, token_form, token_request

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 2, 10, 15, tzinfo=UTC)


def test_a_client_gets_a_bearer_token_for_its_scopes(visma_company, client):
    # when
    response = token_request(client, token_form())

    # then
    assert response.status_code == 200
    token = response.json()
    assert set(token) == {"access_token", "expires_in", "token_type", "scope"}
    assert token["expires_in"] == 3600
    assert token["token_type"] == "Bearer"
    assert token["scope"] == (
        "vismanet_erp_service_api:read vismanet_erp_service_api:create vismanet_erp_service_api:update"
    )
    assert response["Cache-Control"] == "no-store"
    assert VismaToken.objects.count() == 1


def test_client_credentials_may_come_as_http_basic(visma_company, client):
    # given
    credentials = base64.b64encode(f"{VISMA_SANDBOX_CLIENT_ID}:{VISMA_SANDBOX_CLIENT_SECRET}".encode()).decode()
    form = token_form()
    del form["client_id"], form["client_secret"]

    # when
    response = token_request(client, form, Authorization=f"Basic {credentials}")

    # then
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({"scope": "vismanet_erp_interactive_api:read"}, "invalid_scope"),
    ],
)
def test_a_bad_token_request_is_refused_like_an_oauth_server(visma_company, client, overrides, error):
    # when
    response = token_request(client, token_form(**overrides))

    # then
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert VismaToken.objects.count() == 0


def test_a_token_expires_after_the_clients_lifetime(visma_company, client):
    # given
    visma_client_configure(token_lifetime_seconds=60)
    with time_machine.travel(NOW, tick=False):
        visma = VismaSession(client=client).authenticate()

        # when
        fresh = visma.get("/v1/account/1920")
    with time_machine.travel(NOW + timedelta(seconds=60), tick=False):
        expired = visma.get("/v1/account/1920")

    # then
    assert fresh.status_code == 200
    assert expired.status_code == 401
    assert expired.json() == {"message": "Authorization has been denied for this request."}
    assert expired["WWW-Authenticate"] == 'Bearer error="invalid_token", error_description="The token expired"'


def test_calls_without_a_valid_token_are_unauthorized_and_not_counted(visma_company, client):
    # when
    without = client.get(f"{BASE}/v1/account", headers={"ipp-company-id": "1234567"})
    unknown = client.get(f"{BASE}/v1/account", headers={"ipp-company-id": "1234567", "Authorization": "Bearer nope"})

    # then
    assert (without.status_code, unknown.status_code) == (401, 401)
    assert without["WWW-Authenticate"] == 'Bearer error="invalid_token", error_description="No bearer token"'
    assert "X-RateLimit-Remaining" not in without
    assert VismaCallWindow.objects.count() == 0


def test_a_token_asked_for_another_tenant_is_issued_but_refused_by_the_api(visma_company, client):
    # given: Visma's documented pitfall, the customer tenant id instead of the company's
    token = token_request(client, token_form(tenant_id="customer-tenant")).json()["access_token"]

    # when
    response = client.get(
        f"{BASE}/v1/account", headers={"Authorization": f"Bearer {token}", "ipp-company-id": "1234567"}
    )

    # then
    assert response.status_code == 401


def test_the_company_header_is_required_and_must_be_the_tokens_company(visma):
    # when
    missing = visma.client.get(f"{BASE}/v1/account", headers={"Authorization": f"Bearer {visma.token}"})
    other = visma.get("/v1/account", **{"ipp-company-id": "7654321"})

    # then
    assert missing.status_code == 400
    assert missing.json()["ExceptionType"] == "IPPException"
    assert missing.json()["ExceptionFaultCode"] == "12002"
    assert missing.json()["ExceptionMessage"] == "Company is not set: send the ipp-company-id header."
    assert missing.json()["ExceptionMessageID"].startswith("12002_")
    assert other.status_code == 400
    assert other.json()["ExceptionMessage"] == "The client is not authorised for company '7654321'."


def test_a_read_only_token_cannot_create(visma_company, client):
    # given
    token = token_request(client, token_form(scope="vismanet_erp_service_api:read")).json()["access_token"]
    visma = VismaSession(client=client, token=token)

    # when
    read = visma.get("/v1/customer/10001")
    write = visma.post("/v1/customer", {"name": {"value": "Read Only AB"}})

    # then
    assert read.status_code == 200
    assert write.status_code == 403
    assert write.json() == {"message": "The token's scope does not include vismanet_erp_service_api:create."}
    assert visma.get("/v1/customer", {"name": "Read Only AB"}).json() == []
