"""The Visma emulator over real HTTP (pytest-django's live_server + requests), control endpoints included."""
import time

import pytest
import requests

from sandbox.models import VismaDocument
from sandbox.services import visma_sandbox_seed
from tests.sandbox.conftest import journal_body, token_form, value


@pytest.fixture
def sandbox(transactional_db, live_server):
    visma_sandbox_seed()
    return f"{live_server.url}/sandbox/visma"


class Visma:
    """A requests session with a token and the company header, the way an integration talks to Visma."""

    def __init__(self, base: str):
        self.base = base
        self.session = requests.Session()
        token = requests.post(f"{base}/connect/token", data=token_form(), timeout=10)
        assert token.status_code == 200, token.text
        self.session.headers.update(
            {"Authorization": f"Bearer {token.json()['access_token']}", "ipp-company-id": "1234567",
             "Accept": "application/json"}
        )

    def get(self, path: str, timeout: float = 10, **params):
        return self.session.get(f"{self.base}{path}", params=params, timeout=timeout)

    def post(self, path: str, body: dict, timeout: float = 10):
        return self.session.post(f"{self.base}{path}", json=body, timeout=timeout)

    def put(self, path: str, body: dict, **headers):
        return self.session.put(f"{self.base}{path}", json=body, headers=headers, timeout=10)

    def control(self, switch: str, **data):
        response = requests.post(f"{self.base}/_control/{switch}", json=data, timeout=10)
        assert response.status_code == 200, response.text
        return response.json()


def test_a_token_from_the_form_endpoint_opens_the_api_and_an_expired_one_does_not(sandbox):
    # given
    requests.post(f"{sandbox}/_control/client", json={"token_lifetime_seconds": 1}, timeout=10)
    visma = Visma(sandbox)

    # when
    fresh = visma.get("/v1/account/1920")
    time.sleep(1.1)
    expired = visma.get("/v1/account/1920")

    # then
    assert fresh.status_code == 200
    assert fresh.json()["description"] == "Bank"
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')


def test_wrong_client_credentials_are_an_invalid_client(sandbox):
    # when
    response = requests.post(f"{sandbox}/connect/token", data=token_form(client_secret="nope"), timeout=10)

    # then
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


def test_paging_over_http_reaches_every_customer(sandbox):
    # given
    visma = Visma(sandbox)

    # when
    numbers, page_number = [], 1
    while True:
        page = visma.get("/v1/customer", pageNumber=page_number, pageSize=100).json()
        if not page:
            break
        numbers += [customer["number"] for customer in page]
        total = page[0]["metadata"]["totalCount"]
        page_number += 1

    # then
    assert (len(numbers), len(set(numbers)), total, page_number) == (250, 250, 250, 4)


def test_a_created_journal_is_read_back_from_its_location_and_moves_the_balances(sandbox):
    # given
    visma = Visma(sandbox)
    body = journal_body([("1581", 480, 0, [(1, "100")]), ("7770", 20, 0, [(1, "100")]), ("3000", 0, 500, [(1, "100")])])

    # when
    created = visma.post("/v2/journaltransaction", body)

    # then
    assert created.status_code == 201
    assert created.headers["Location"] == f"{sandbox}/v2/journaltransaction/000002"
    read = visma.session.get(created.headers["Location"], timeout=10)
    assert read.headers["ETag"] == created.headers["ETag"]
    assert read.json()["creditTotalInCurrency"] == 500.0
    state = requests.get(f"{sandbox}/_state/balances", timeout=10).json()
    balances = {row["account"]: row["balance"] for row in state["balances"]}
    assert balances == {"1581": "480.00", "1920": "50000.00", "2081": "-50000.00", "3000": "-500.00", "7770": "20.00"}


def test_a_malformed_body_over_http_is_refused_naming_the_field(sandbox):
    # given
    visma = Visma(sandbox)

    # when
    response = visma.post("/v1/customer", {"name": "Plain String AB"})

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        'The request does not match the Visma.net ERP API: name: "Plain String AB" is not of type object'
    )


def test_control_endpoints_flip_the_fault_switches(sandbox):
    # given
    visma = Visma(sandbox)
    etag = visma.get("/v1/customer/10001").headers["ETag"]

    # when
    visma.control("fail", calls=1)
    failed = visma.get("/v1/account/1920")
    visma.control("throttle", calls=1)
    throttled = visma.get("/v1/account/1920")
    edited = visma.control("concurrent-edit", collection="customer", key="10001")
    stale = visma.put("/v1/customer/10001", {"name": value("Nordic Outdoor Group AB")}, **{"If-Match": etag})
    visma.control("stale-puts", calls=1)
    fresh_etag = visma.get("/v1/customer/10001").headers["ETag"]
    stale_again = visma.put(
        "/v1/customer/10001", {"name": value("Nordic Outdoor Group AB")}, **{"If-Match": fresh_etag}
    )

    # then
    assert failed.status_code == 500
    assert (throttled.status_code, "Retry-After" in throttled.headers) == (429, False)
    assert int(throttled.headers["X-RateLimit-Remaining"]) > 0
    assert fresh_etag == f'"{edited["etag"]}"'
    assert (stale.status_code, stale_again.status_code) == (412, 412)
    assert visma.get("/v1/customer/10001").json()["name"] == "Nordic Outdoor AB"


def test_a_slow_answer_times_the_client_out_but_the_write_still_happens(sandbox):
    # given
    visma = Visma(sandbox)
    visma.control("delay", calls=1, seconds=1.0)

    # when
    with pytest.raises(requests.exceptions.ReadTimeout):
        visma.post("/v1/customer", {"name": value("Slow Write AB")}, timeout=0.3)
    time.sleep(1.2)

    # then: the lost answer hid a created customer, which a crash-safe client must look up before posting again
    found = visma.get("/v1/customer", name="Slow Write AB").json()
    assert [customer["number"] for customer in found] == ["10251"]


def test_the_budget_is_exhausted_over_http_and_reset_restores_the_seed(sandbox):
    # given
    visma = Visma(sandbox)
    visma.control("client", hourly_call_budget=2)
    visma.post("/v1/customer", {"name": value("Temporary AB")})
    visma.get("/v1/account/1920")

    # when
    refused = visma.get("/v1/account/1920")
    reset = visma.control("reset")

    # then
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) == int(refused.headers["X-RateLimit-Reset"]) > 0
    assert reset == {"ok": True, "client_id": "ml-connector-sandbox", "company_id": "1234567",
                     "tenant_id": "5c1a4d3e-8f2b-4e6a-9d7c-0b1e2f3a4b5c"}
    assert VismaDocument.objects.filter(collection="customer").count() == 250
    assert Visma(sandbox).get("/v1/account/1920").headers["X-RateLimit-Remaining"] == "499"


def test_an_unknown_control_switch_is_not_found(sandbox):
    # when
    response = requests.post(f"{sandbox}/_control/explode", json={}, timeout=10)

    # then
    assert response.status_code == 404
    assert response.json() == {"error": "Unknown control switch 'explode'."}
