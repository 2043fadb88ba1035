"""The Square emulator's OAuth (docs/square.md §3): ObtainToken for the code flow and PKCE, expiry by the merchant's
clock, the 15-day refresh grace, token status, revocation."""
from datetime import datetime, timedelta

import pytest

from sandbox import square_api
from sandbox.square_openapi import square_response_problems
from tests.sandbox.square_helpers import SquareSession


@pytest.fixture
def merchant(db):
    return square_api.square_merchant_create()


def _token_request(client, merchant, **body):
    return SquareSession(client, "").post("/oauth2/token", {"client_id": merchant.application_id, **body},
                                          authorization=None)


def _refresh(client, merchant, refresh_token, *, secret=True):
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    if secret:
        body["client_secret"] = merchant.application_secret
    return _token_request(client, merchant, **body)


def test_the_code_flow_exchanges_a_code_once_and_answers_expires_at_30_days_on(client, merchant):
    # given
    code = square_api.square_oauth_code_issue(merchant)
    now = square_api.square_now(merchant)

    # when
    first = _token_request(client, merchant, grant_type="authorization_code", code=code,
                           client_secret=merchant.application_secret)
    again = _token_request(client, merchant, grant_type="authorization_code", code=code,
                           client_secret=merchant.application_secret)

    # then
    assert first.status_code == 200
    answer = first.json()
    assert (answer["token_type"], answer["merchant_id"], answer["short_lived"]) == ("bearer", merchant.merchant_id,
                                                                                   False)
    expires_at = datetime.fromisoformat(answer["expires_at"])
    assert timedelta(days=30) - timedelta(seconds=5) < expires_at - now <= timedelta(days=30)
    assert "refresh_token_expires_at" not in answer
    assert square_response_problems("POST", "/oauth2/token", 200, answer) == []
    assert (again.status_code, again.json()["errors"][0]["code"]) == (401, "UNAUTHORIZED")


def test_a_code_older_than_five_minutes_is_refused(client, merchant):
    # given
    code = square_api.square_oauth_code_issue(merchant)
    square_api.square_clock_advance(merchant, timedelta(minutes=6))

    # when
    response = _token_request(client, merchant, grant_type="authorization_code", code=code,
                              client_secret=merchant.application_secret)

    # then
    assert response.status_code == 401


def test_a_code_flow_refresh_keeps_the_same_refresh_token_and_a_wrong_secret_is_refused(client, merchant):
    # given
    access, refresh, _ = square_api.square_oauth_tokens_issue(merchant)

    # when
    renewed = _refresh(client, merchant, refresh)
    renewed_again = _refresh(client, merchant, refresh)
    no_secret = _refresh(client, merchant, refresh, secret=False)

    # then
    assert renewed.status_code == renewed_again.status_code == 200
    assert renewed.json()["refresh_token"] == renewed_again.json()["refresh_token"] == refresh
    assert len({access, renewed.json()["access_token"], renewed_again.json()["access_token"]}) == 3
    assert no_secret.status_code == 401


def test_pkce_exchanges_a_code_with_its_verifier_and_each_refresh_rotates_the_refresh_token(client, merchant):
    # given
    verifier = "a-verifier-of-enough-length-0123456789-abcdefghij"
    code = square_api.square_oauth_code_issue(merchant, code_challenge=square_api.square_pkce_challenge(verifier))
    wrong = square_api.square_oauth_code_issue(merchant, code_challenge=square_api.square_pkce_challenge(verifier))
    issued = _token_request(client, merchant, grant_type="authorization_code", code=code, code_verifier=verifier)
    first_refresh = issued.json()["refresh_token"]

    # when
    rotated = _refresh(client, merchant, first_refresh, secret=False)
    reused = _refresh(client, merchant, first_refresh, secret=False)
    rotated_again = _refresh(client, merchant, rotated.json()["refresh_token"], secret=False)
    bad_verifier = _token_request(client, merchant, grant_type="authorization_code", code=wrong,
                                  code_verifier="another-verifier")

    # then
    assert issued.status_code == rotated.status_code == rotated_again.status_code == 200
    assert "refresh_token_expires_at" in issued.json()
    assert rotated.json()["refresh_token"] != first_refresh
    assert rotated_again.json()["refresh_token"] not in (first_refresh, rotated.json()["refresh_token"])
    assert (reused.status_code, reused.json()["errors"][0]["code"]) == (401, "UNAUTHORIZED")
    assert bad_verifier.status_code == 401


def test_an_access_token_expired_by_the_merchants_clock_is_401_access_token_expired(client, merchant):
    # given
    access, _, _ = square_api.square_oauth_tokens_issue(merchant)
    square = SquareSession(client, access)
    before = square.get("/v2/locations")

    # when
    square_api.square_clock_advance(merchant, timedelta(days=30, seconds=1))
    after = square.get("/v2/locations")

    # then
    assert before.status_code == 200
    assert after.status_code == 401
    assert after.json()["errors"][0] == {"category": "AUTHENTICATION_ERROR", "code": "ACCESS_TOKEN_EXPIRED",
                                         "detail": "The access token has expired."}


def test_a_backdated_token_expires_on_its_own_30_days(client, merchant):
    # given
    issued_at = square_api.square_now(merchant) - timedelta(days=29, hours=12)
    access, _, expires_at = square_api.square_oauth_tokens_issue(merchant, issued_at=issued_at)

    # when
    now_ok = SquareSession(client, access).get("/v2/locations")
    square_api.square_clock_advance(merchant, timedelta(hours=13))
    later = SquareSession(client, access).get("/v2/locations")

    # then
    assert datetime.fromisoformat(expires_at) - issued_at < timedelta(days=30, seconds=1)
    assert (now_ok.status_code, later.status_code) == (200, 401)


def test_a_refresh_within_15_days_after_expiry_works_and_later_is_refused(client, merchant):
    # given
    _, refresh, _ = square_api.square_oauth_tokens_issue(merchant)
    square_api.square_clock_advance(merchant, timedelta(days=30 + 14))
    in_grace = _refresh(client, merchant, refresh)

    # when
    square_api.square_clock_advance(merchant, timedelta(days=30 + 16))
    past_grace = _refresh(client, merchant, refresh)

    # then
    assert in_grace.status_code == 200
    assert (past_grace.status_code, past_grace.json()["errors"][0]["code"]) == (401, "UNAUTHORIZED")


def test_token_status_names_the_merchant_and_expiry_and_a_personal_token_has_none(client, merchant):
    # given
    access, _, expires_at = square_api.square_oauth_tokens_issue(merchant)

    # when
    oauth = SquareSession(client, access).post("/oauth2/token/status")
    personal = SquareSession(client, square_api.square_personal_token(merchant)).post("/oauth2/token/status")

    # then
    assert oauth.status_code == personal.status_code == 200
    assert (oauth.json()["merchant_id"], oauth.json()["expires_at"]) == (merchant.merchant_id, expires_at)
    assert "expires_at" not in personal.json()
    assert square_response_problems("POST", "/oauth2/token/status", 200, oauth.json()) == []


def test_revoking_refuses_the_access_token_and_the_refresh_token_and_queues_the_event(client, merchant):
    # given
    access, refresh, _ = square_api.square_oauth_tokens_issue(merchant)
    session = SquareSession(client, "")

    # when
    wrong_secret = session.post("/oauth2/revoke", {"client_id": merchant.application_id, "access_token": access},
                                authorization="Client not-the-secret")
    revoked = session.post("/oauth2/revoke", {"client_id": merchant.application_id, "access_token": access},
                           authorization=f"Client {merchant.application_secret}")
    call = SquareSession(client, access).get("/v2/locations")
    renewal = _refresh(client, merchant, refresh)

    # then
    assert wrong_secret.status_code == 401
    assert (revoked.status_code, revoked.json()) == (200, {"success": True})
    assert (call.status_code, call.json()["errors"][0]["code"]) == (401, "ACCESS_TOKEN_REVOKED")
    assert renewal.status_code == 401
    events = square_api.square_objects(merchant, "event")
    assert [(event["type"], event["data"]["object"]["revocation"]["revoker_type"]) for event in events] == [
        ("oauth.authorization.revoked", "APPLICATION")]


def test_an_obtain_token_body_with_an_unknown_field_is_refused_by_the_spec_check(client, merchant):
    # when
    response = _token_request(client, merchant, grant_type="refresh_token", refresh_token="x" * 10,
                              refresh="misspelt")

    # then
    assert (response.status_code, response.json()["errors"][0]["code"]) == (400, "UNKNOWN_BODY_PARAMETER")


def test_token_status_of_an_expired_token_is_unauthorized_as_the_spec_says(client, merchant):
    # given
    access, _, _ = square_api.square_oauth_tokens_issue(merchant)
    square_api.square_clock_advance(merchant, timedelta(days=31))

    # when
    response = SquareSession(client, access).post("/oauth2/token/status")

    # then
    assert (response.status_code, response.json()["errors"][0]["code"]) == (401, "UNAUTHORIZED")


def test_a_shorter_token_lifetime_switch_applies_to_tokens_issued_after_it(client, merchant):
    # given
    square_api.square_switches_set(merchant, token_lifetime_days=1)

    # when
    access, _, expires_at = square_api.square_oauth_tokens_issue(merchant)
    square_api.square_clock_advance(merchant, timedelta(days=1, seconds=1))
    response = SquareSession(client, access).get("/v2/locations")

    # then
    assert datetime.fromisoformat(expires_at) - square_api.square_now(merchant) < timedelta(seconds=0)
    assert (response.status_code, response.json()["errors"][0]["code"]) == (401, "ACCESS_TOKEN_EXPIRED")


def test_revoking_only_the_access_token_keeps_the_refresh_token_working(client, merchant):
    # given
    access, refresh, _ = square_api.square_oauth_tokens_issue(merchant)

    # when
    revoked = SquareSession(client, "").post(
        "/oauth2/revoke", {"client_id": merchant.application_id, "access_token": access,
                           "revoke_only_access_token": True}, authorization=f"Client {merchant.application_secret}")
    call = SquareSession(client, access).get("/v2/locations")
    renewal = _refresh(client, merchant, refresh)

    # then
    assert revoked.status_code == 200
    assert call.json()["errors"][0]["code"] == "ACCESS_TOKEN_REVOKED"
    assert renewal.status_code == 200
    assert square_api.square_objects(merchant, "event") == []


def test_a_token_set_to_expire_after_two_calls_is_refused_on_the_third_and_its_refresh_works(client, merchant):
    # given
    access, refresh, _ = square_api.square_oauth_tokens_issue(merchant)
    square_api.square_fault_set("/v2/payments", status=401, after=2)
    square = SquareSession(client, access)

    # when
    statuses = [square.get("/v2/payments").status_code for _ in range(3)]
    expired = square.get("/v2/locations")
    renewed = _refresh(client, merchant, refresh).json()["access_token"]
    after_renewal = SquareSession(client, renewed).get("/v2/payments")

    # then
    assert statuses == [200, 200, 401]
    assert expired.json()["errors"][0]["code"] == "ACCESS_TOKEN_EXPIRED"
    assert after_renewal.status_code == 200
