"""How the Square client authenticates: OAuth tokens renewed before use when old, once on a 401; PKCE's new refresh
token stored (encrypted) before the new access token is used; a refused refresh marks the connection "the seller must
re-authorize", stops calls and polls without losing anything, and is lifted by new credentials."""
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from django.db import connection as db_connection
from django.utils import timezone

from connectors import registry
from connectors.errors import PermanentError, TransientError
from connectors.models import Connection, HttpExchange, SyncCursor, SyncRun
from connectors.pipeline import Stream, stream_poll
from connectors.provisioning import connection_check
from connectors.square.auth import SquareAuth, square_expires_at
from connectors.square.client import SquareApi, SquareReauthorizationRequired
from tests.factories import ConnectionFactory, IntegrationFactory

OURS = "http://sandbox.test/sandbox/square"
TOKEN_URL = f"{OURS}/oauth2/token"
CLIENT_SECRET = "sq0csp-client-secret-s3cr3t"
REFRESH = "EQAA-refresh-s3cr3t-1"
OLD_TOKEN = "EAAA-old-access-s3cr3t"
NEW_TOKEN = "EAAA-new-access-s3cr3t"
EXPIRED = {"errors": [{"category": "AUTHENTICATION_ERROR", "code": "ACCESS_TOKEN_EXPIRED",
                       "detail": "The access token has expired."}]}


class Crash(BaseException):
    """A worker dying (not an Exception: nothing catches it)."""


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issued_days_ago(days: float) -> datetime:
    """The expires_at of a token issued `days` ago (Square's tokens live 30 days)."""
    return timezone.now() + timedelta(days=30 - days)


def oauth_connection(*, age_days: float, pkce: bool = False, **more) -> Connection:
    credentials = {"access_token": OLD_TOKEN, "expires_at": iso(issued_days_ago(age_days)),
                   "refresh_token": REFRESH, "client_id": "sq0idp-app", **more}
    if not pkce:
        credentials["client_secret"] = CLIENT_SECRET
    return ConnectionFactory(system="square", base_url=OURS, credentials=credentials)


def token_answer(*, token: str = NEW_TOKEN, expires_at: str | None = None, refresh_token: str = REFRESH) -> dict:
    return {"access_token": token, "token_type": "bearer", "merchant_id": "ML8M1AQ1GQG2K",
            "expires_at": expires_at or iso(timezone.now() + timedelta(days=30)), "refresh_token": refresh_token}


@pytest.fixture
def mocked(settings):
    settings.HTTP_BACKOFF_BASE_SECONDS = 0
    settings.HTTP_BACKOFF_MAX_SECONDS = 0
    with responses.RequestsMock() as mock:
        yield mock


def api(connection, **settings) -> SquareApi:
    return SquareApi(connection, settings=settings, sleep=lambda seconds: None)


def token_calls(mocked):
    return [call for call in mocked.calls if call.request.url == TOKEN_URL]


def bearers(mocked):
    return [call.request.headers.get("Authorization") for call in mocked.calls if call.request.url != TOKEN_URL]


# --- renewal before use ----------------------------------------------------------------------------------------


def test_a_29_and_a_half_day_old_token_is_renewed_before_use_and_the_code_flow_keeps_its_refresh_token(db, mocked):
    # given
    connection = oauth_connection(age_days=29.5)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    api(connection).locations()

    # then: ObtainToken first, with the code flow's secret, no bearer, Square-Version; then the call with the new one
    sent = token_calls(mocked)[0].request
    assert json.loads(sent.body) == {"client_id": "sq0idp-app", "client_secret": CLIENT_SECRET,
                                     "grant_type": "refresh_token", "refresh_token": REFRESH}
    assert "Authorization" not in sent.headers and sent.headers["Square-Version"] == "2025-08-20"
    assert bearers(mocked) == [f"Bearer {NEW_TOKEN}"]
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.access_token == NEW_TOKEN
    assert stored.credentials["refresh_token"] == REFRESH
    # encrypted at rest
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT access_token, credentials FROM connectors_connection WHERE id = %s", [connection.pk])
        raw_token, raw_credentials = cursor.fetchone()
    assert NEW_TOKEN.encode() not in bytes(raw_token) and REFRESH.encode() not in bytes(raw_credentials)


def test_a_6_day_old_token_is_used_as_is(db, mocked):
    # given
    connection = oauth_connection(age_days=6)
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    api(connection).locations()

    # then
    assert token_calls(mocked) == []
    assert bearers(mocked) == [f"Bearer {OLD_TOKEN}"]


@pytest.mark.parametrize(("renew_after_days", "age_days", "renewed"), [
    (7, 7.1, True), (3, 3.5, True), (3, 2.5, False), (60, 27.5, False), (60, 28.2, True), (7, 31, True),
])
def test_renewal_age_follows_the_setting_but_never_past_28_days(db, mocked, renew_after_days, age_days, renewed):
    # given
    connection = oauth_connection(age_days=age_days)
    if renewed:
        mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    api(connection, token_renew_after_days=renew_after_days).locations()

    # then
    assert len(token_calls(mocked)) == (1 if renewed else 0)


def test_a_renewed_token_is_cached_on_the_connection_and_shared_by_the_next_client(db, mocked):
    # given
    connection = oauth_connection(age_days=10)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})
    api(connection).locations()

    # when
    api(Connection.objects.get(pk=connection.pk)).locations()

    # then
    assert len(token_calls(mocked)) == 1
    assert bearers(mocked) == [f"Bearer {NEW_TOKEN}"] * 2


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-04-04T10:00:00Z", datetime(2026, 4, 4, 10, 0, tzinfo=UTC)),
    ("2026-04-04T12:00:00+02:00", datetime(2026, 4, 4, 10, 0, tzinfo=UTC)),
    ("2026-04-04T05:30:00-04:30", datetime(2026, 4, 4, 10, 0, tzinfo=UTC)),
])
def test_expires_at_is_read_as_iso_with_z_or_an_offset(db, mocked, text, expected):
    # given: ObtainToken answers expires_at (never expires_in)
    connection = oauth_connection(age_days=29.5)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer(expires_at=text))
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    api(connection).locations()

    # then
    assert square_expires_at(text) == expected
    assert Connection.objects.get(pk=connection.pk).token_expires_at == expected


def test_a_token_answer_with_expires_in_instead_of_expires_at_is_unusable_and_marks_nothing(db, mocked):
    # given
    connection = oauth_connection(age_days=29.5)
    answer = {**token_answer(), "expires_in": 2592000}
    del answer["expires_at"]
    mocked.add(responses.POST, TOKEN_URL, json=answer)

    # when
    with pytest.raises(PermanentError, match="expires_at"):
        api(connection).locations()

    # then
    assert Connection.objects.get(pk=connection.pk).authorization_problem == ""


# --- a 401 during a run ----------------------------------------------------------------------------------------


def test_a_token_expired_mid_run_is_renewed_and_the_call_retried_once(db, mocked):
    # given: page 1 answered; page 2 refused with ACCESS_TOKEN_EXPIRED, then answered with the new token
    connection = oauth_connection(age_days=2)
    mocked.add(responses.GET, f"{OURS}/v2/refunds", json={"refunds": [{"id": "r-1"}], "cursor": "c1"})
    mocked.add(responses.GET, f"{OURS}/v2/refunds", status=401, json=EXPIRED)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/refunds", json={"refunds": [{"id": "r-2"}]})
    now = timezone.now()

    # when
    found = list(api(connection).refunds(updated_from=now - timedelta(days=1), updated_to=None,
                                         begin_time=now - timedelta(days=30)))

    # then
    assert [refund["id"] for refund in found] == ["r-1", "r-2"]
    assert bearers(mocked) == [f"Bearer {OLD_TOKEN}", f"Bearer {OLD_TOKEN}", f"Bearer {NEW_TOKEN}"]
    assert len(token_calls(mocked)) == 1
    assert "cursor=c1" in mocked.calls[3].request.url


def test_a_new_token_refused_too_is_an_authentication_error_after_one_renewal(db, mocked):
    # given
    connection = oauth_connection(age_days=2)
    mocked.add(responses.GET, f"{OURS}/v2/locations", status=401, json=EXPIRED)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/locations", status=401, json={"errors": [
        {"category": "AUTHENTICATION_ERROR", "code": "UNAUTHORIZED"}]})

    # then
    with pytest.raises(PermanentError, match="UNAUTHORIZED"):
        api(connection).locations()
    assert len(token_calls(mocked)) == 1


# --- PKCE ------------------------------------------------------------------------------------------------------


def test_pkce_stores_the_new_refresh_token_with_the_access_token_before_using_it(db, mocked):
    # given: PKCE (no client secret); the API call looks at what is stored when it is made
    connection = oauth_connection(age_days=29.5, pkce=True)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer(refresh_token="EQAA-refresh-s3cr3t-2"))
    seen = {}

    def locations(request):
        stored = Connection.objects.get(pk=connection.pk)
        seen.update(refresh=stored.credentials["refresh_token"], access=stored.access_token)
        return 200, {}, json.dumps({"locations": []})

    mocked.add_callback(responses.GET, f"{OURS}/v2/locations", callback=locations)

    # when
    api(connection).locations()

    # then
    assert json.loads(token_calls(mocked)[0].request.body) == {
        "client_id": "sq0idp-app", "grant_type": "refresh_token", "refresh_token": REFRESH}
    assert seen == {"refresh": "EQAA-refresh-s3cr3t-2", "access": NEW_TOKEN}


def test_pkce_a_crash_right_after_the_refresh_keeps_the_new_refresh_token(db, mocked):
    # given: the worker dies on its first call with the new token
    connection = oauth_connection(age_days=29.5, pkce=True)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer(refresh_token="EQAA-refresh-s3cr3t-2"))

    def die(request):
        raise Crash("worker killed")

    mocked.add_callback(responses.GET, f"{OURS}/v2/locations", callback=die)

    # when
    with pytest.raises(Crash):
        api(connection).locations()

    # then: the next worker refreshes with the new refresh token, not the spent one
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.credentials["refresh_token"] == "EQAA-refresh-s3cr3t-2"
    assert stored.access_token == NEW_TOKEN
    assert stored.credentials["client_id"] == "sq0idp-app"


def test_pkce_a_refresh_whose_answer_was_lost_is_not_sent_again(db, mocked):
    # given: the token request times out (it may have consumed the single-use refresh token)
    connection = oauth_connection(age_days=29.5, pkce=True)
    mocked.add(responses.POST, TOKEN_URL, body=requests.ReadTimeout("read timed out"))

    # when
    with pytest.raises(TransientError):
        api(connection).locations()

    # then
    assert len(token_calls(mocked)) == 1
    assert Connection.objects.get(pk=connection.pk).authorization_problem == ""


def test_a_code_flow_refresh_whose_answer_was_lost_is_sent_again(db, mocked):
    # given
    connection = oauth_connection(age_days=29.5)
    mocked.add(responses.POST, TOKEN_URL, body=requests.ReadTimeout("read timed out"))
    mocked.add(responses.POST, TOKEN_URL, json=token_answer())
    mocked.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})

    # when
    api(connection).locations()

    # then
    assert len(token_calls(mocked)) == 2


# --- a refused refresh -----------------------------------------------------------------------------------------


class _PaymentsSeen(Stream):
    """A stream that only reads Square payments through the client (F's real streams post them)."""

    name = "payments"
    kind = "square"
    seen: list = []

    def read_window(self, start, end):
        client = SquareApi(self.integration.partner_connection, settings=self.integration.settings)
        for found in client.payments(location_id="L1", updated_from=start, updated_to=end, begin_time=start):
            _PaymentsSeen.seen.append(found["id"])
        return []

    def read_one(self, source_id):
        return None

    def transform(self, source):
        raise NotImplementedError

    def find_posted(self, posting, record):
        return None

    def write(self, posting, record):
        raise NotImplementedError


@pytest.fixture
def payments_seen():
    spec = registry.kind_spec("square")
    saved = spec.streams
    spec.streams = {**saved, "payments": _PaymentsSeen}
    _PaymentsSeen.seen = []
    yield _PaymentsSeen
    spec.streams = saved


REFUSED = {"errors": [{"category": "AUTHENTICATION_ERROR", "code": "UNAUTHORIZED",
                       "detail": "The refresh token has expired or been revoked."}]}


def test_a_refused_refresh_marks_the_connection_stops_the_poll_and_loses_nothing(db, mocked, payments_seen):
    # given: a token 45 days old (past the 15-day grace); Square refuses its refresh token
    connection = oauth_connection(age_days=45)
    integration = IntegrationFactory(tenant=connection.tenant, kind="square", partner_connection=connection)
    mocked.add(responses.POST, TOKEN_URL, status=401, json=REFUSED)

    # when
    with pytest.raises(SquareReauthorizationRequired):
        stream_poll(integration, "payments")
    again = api(Connection.objects.get(pk=connection.pk))

    # then: marked, the run failed saying why, the cursor did not move; the next call asks Square nothing
    stored = Connection.objects.get(pk=connection.pk)
    assert stored.authorization_problem.endswith("the seller must re-authorize in Square")
    assert "UNAUTHORIZED" in stored.authorization_problem
    run = SyncRun.objects.get(integration=integration, stream="payments")
    assert run.status == SyncRun.Status.FAILED and "re-authorize" in run.error
    assert SyncCursor.objects.get(integration=integration, stream="payments").position is None
    with pytest.raises(SquareReauthorizationRequired, match="re-authorize"):
        again.locations()
    assert len(mocked.calls) == 1
    check = connection_check(stored)
    assert check.outcome == "FAILED" and "the seller must re-authorize in Square" in check.message


def test_new_credentials_after_re_authorization_lift_the_mark_and_the_poll_reads_on(db, mocked, payments_seen):
    # given: a marked connection
    connection = oauth_connection(age_days=45)
    integration = IntegrationFactory(tenant=connection.tenant, kind="square", partner_connection=connection)
    mocked.add(responses.POST, TOKEN_URL, status=400, json=REFUSED)
    with pytest.raises(SquareReauthorizationRequired):
        api(connection).locations()

    # when: the seller authorized again; the new tokens are saved (admin or tenant file)
    connection = Connection.objects.get(pk=connection.pk)
    connection.credentials = {**connection.credentials, "access_token": "EAAA-reauthorized-s3cr3t",
                              "expires_at": iso(issued_days_ago(0)), "refresh_token": "EQAA-refresh-new"}
    connection.save()
    mocked.add(responses.GET, f"{OURS}/v2/payments", json={"payments": [{"id": "pay-1"}]})
    stream_poll(integration, "payments")

    # then
    assert payments_seen.seen == ["pay-1"]
    assert bearers(mocked)[-1] == "Bearer EAAA-reauthorized-s3cr3t"
    assert Connection.objects.get(pk=connection.pk).authorization_problem == ""
    assert SyncCursor.objects.get(integration=integration, stream="payments").position is not None


def test_a_rate_limited_refresh_is_transient_and_marks_nothing(db, mocked, settings):
    # given
    settings.HTTP_MAX_RETRIES = 1
    connection = oauth_connection(age_days=29.5)
    limited = {"errors": [{"category": "RATE_LIMIT_ERROR", "code": "RATE_LIMITED"}]}
    mocked.add(responses.POST, TOKEN_URL, status=429, json=limited)
    mocked.add(responses.POST, TOKEN_URL, status=429, json=limited)

    # when
    with pytest.raises(TransientError):
        api(connection).locations()

    # then
    assert Connection.objects.get(pk=connection.pk).authorization_problem == ""


# --- secrets ---------------------------------------------------------------------------------------------------


def test_no_secret_reaches_the_exchange_log_or_the_log(db, mocked, caplog):
    # given
    caplog.set_level(logging.DEBUG)
    connection = oauth_connection(age_days=29.5)
    mocked.add(responses.POST, TOKEN_URL, json=token_answer(refresh_token=REFRESH))
    mocked.add(responses.GET, f"{OURS}/v2/locations", status=401, json=EXPIRED)
    mocked.add(responses.POST, TOKEN_URL, status=400, json=REFUSED)

    # when
    with pytest.raises(SquareReauthorizationRequired) as refused:
        api(connection).locations()

    # then
    logged = [" ".join((exchange.url, exchange.request_body, exchange.response_body, exchange.error))
              for exchange in HttpExchange.objects.filter(connection=connection)]
    assert len(logged) == 3
    everything = "\n".join([*logged, caplog.text, str(refused.value)])
    for secret in (CLIENT_SECRET, REFRESH, OLD_TOKEN, NEW_TOKEN):
        assert secret not in everything
    assert '"refresh_token": "***"' in logged[0] and '"client_secret": "***"' in logged[0]


def test_the_renewal_rule_by_itself():
    # given
    auth = SquareAuth.__new__(SquareAuth)
    auth.renew_after = timedelta(days=7)
    now = datetime(2026, 3, 10, tzinfo=UTC)

    # then
    assert not auth.renewal_due(now + timedelta(days=24), now=now)  # 6 days old
    assert auth.renewal_due(now + timedelta(days=23), now=now)  # 7 days old
    assert auth.renewal_due(now - timedelta(seconds=1), now=now)  # expired
    assert auth.renewal_due(None, now=now)  # age unknown


def test_the_admin_shows_that_the_seller_must_re_authorize_on_the_connection_and_the_integration(db, mocked,
                                                                                                 admin_client):
    # given: a refused refresh
    from django.urls import reverse

    connection = oauth_connection(age_days=45)
    integration = IntegrationFactory(tenant=connection.tenant, kind="square", partner_connection=connection)
    mocked.add(responses.POST, TOKEN_URL, status=400, json=REFUSED)
    with pytest.raises(SquareReauthorizationRequired):
        api(connection).locations()

    # when
    pages = [admin_client.get(reverse("admin:connectors_connection_changelist")),
             admin_client.get(reverse("admin:connectors_connection_change", args=[connection.pk])),
             admin_client.get(reverse("admin:connectors_integration_changelist")),
             admin_client.get(reverse("admin:connectors_integration_change", args=[integration.pk]))]

    # then
    for page in pages:
        assert page.status_code == 200
        assert "the seller must re-authorize in Square" in page.content.decode()


# PostgreSQL only: Django's SQLite test database is in memory with a shared cache, where a second connection reading a
# table another holds a write lock on fails at once ("database table is locked") instead of waiting, so two threads
# cannot share it reliably (tests/visma/test_token.py does the same).
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_never_refresh_one_pkce_token_at_once(settings):
    # given: two workers, one PKCE token due for renewal; Square would refuse the second use of a refresh token
    # (the row lock keeps them apart)
    import threading
    import time

    from django.db import connection as worker_db

    settings.HTTP_BACKOFF_BASE_SECONDS = 0
    connection = oauth_connection(age_days=29.5, pkce=True)
    presented = []

    def obtain(request):
        presented.append(json.loads(request.body)["refresh_token"])
        time.sleep(0.3)  # the other worker arrives meanwhile
        if presented.count(presented[-1]) > 1:
            return 400, {}, json.dumps(REFUSED)
        return 200, {}, json.dumps(token_answer(refresh_token=f"EQAA-refresh-{len(presented) + 1}"))

    barrier = threading.Barrier(2)
    outcomes = []

    def worker():
        try:
            barrier.wait(timeout=10)
            api(Connection.objects.get(pk=connection.pk)).locations()
            outcomes.append("ok")
        except BaseException as exc:  # noqa: BLE001 — the test asserts on what a worker raised
            outcomes.append(exc)
        finally:
            worker_db.close()

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=obtain)
        mock.add(responses.GET, f"{OURS}/v2/locations", json={"locations": []})
        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    # then: one refresh; both workers used its token
    assert outcomes == ["ok", "ok"]
    assert presented == [REFRESH]
    stored = Connection.objects.get(pk=connection.pk)
    assert (stored.credentials["refresh_token"], stored.authorization_problem) == ("EQAA-refresh-2", "")


def test_a_marked_connection_spends_no_call_budget_and_logs_no_exchange(db, mocked):
    # given: a connection with a budget, marked after a refused refresh
    from connectors.models import CallBudgetWindow

    connection = oauth_connection(age_days=45)
    Connection.objects.filter(pk=connection.pk).update(hourly_call_budget=100)
    connection.refresh_from_db()
    mocked.add(responses.POST, TOKEN_URL, status=400, json=REFUSED)
    with pytest.raises(SquareReauthorizationRequired):
        api(connection).locations()
    exchanges = HttpExchange.objects.filter(connection=connection).count()

    # when
    for _ in range(3):
        with pytest.raises(SquareReauthorizationRequired):
            api(Connection.objects.get(pk=connection.pk)).payment("pay-1")

    # then: the refused refresh (outside the budget) was the only exchange
    assert exchanges == 1 and HttpExchange.objects.filter(connection=connection).count() == 1
    assert sum(CallBudgetWindow.objects.filter(connection=connection).values_list("calls", flat=True)) == 0
