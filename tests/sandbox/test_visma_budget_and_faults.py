"""The hourly call budget (429 + Retry-After) and the fault switches tests use to provoke failures."""
from datetime import UTC, datetime

import pytest
import time_machine

from sandbox import services
from sandbox.models import VismaCallWindow, VismaDocument, VismaFault
from sandbox.services import (
    visma_client_configure,
    visma_fault_concurrent_edit,
    visma_fault_delay,
    visma_fault_fail,
    visma_fault_stale_puts,
    visma_fault_throttle,
    visma_sandbox_reset,
)
from tests.sandbox.conftest import VismaSession, value

pytestmark = pytest.mark.django_db

TEN_TO_ELEVEN = datetime(2026, 3, 2, 10, 59, 30, tzinfo=UTC)


def test_every_call_reports_the_budget_left_in_the_hour(visma):
    # when
    with time_machine.travel(TEN_TO_ELEVEN, tick=False):
        first = visma.get("/v1/account/1920")
        second = visma.get("/v1/account/1920")

    # then
    assert (first["X-RateLimit-Limit"], first["X-RateLimit-Remaining"], first["X-RateLimit-Reset"]) == (
        "500", "499", "30",
    )
    assert second["X-RateLimit-Remaining"] == "498"


def test_past_the_hourly_budget_calls_get_429_with_retry_after_until_the_next_hour(visma_company, client):
    # given
    visma_client_configure(hourly_call_budget=3)
    with time_machine.travel(TEN_TO_ELEVEN, tick=False):
        visma = VismaSession(client=client).authenticate()
        allowed = [visma.get("/v1/account/1920") for _ in range(3)]

        # when
        refused = visma.get("/v1/account/1920")
    with time_machine.travel(datetime(2026, 3, 2, 11, 0, 1, tzinfo=UTC), tick=False):
        next_hour = visma.get("/v1/account/1920")

    # then
    assert [response["X-RateLimit-Remaining"] for response in allowed] == ["2", "1", "0"]
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    assert (refused["X-RateLimit-Limit"], refused["X-RateLimit-Remaining"]) == ("3", "0")
    assert refused.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 30 seconds."}
    assert next_hour.status_code == 200
    assert next_hour["X-RateLimit-Remaining"] == "2"
    assert list(VismaCallWindow.objects.order_by("window_start").values_list("calls", flat=True)) == [3, 1]


def test_a_refused_call_does_not_write(visma_company, client):
    # given
    visma_client_configure(hourly_call_budget=1)
    visma = VismaSession(client=client).authenticate()
    visma.get("/v1/account/1920")

    # when
    response = visma.post("/v1/customer", {"name": value("Over Budget AB")})

    # then
    assert response.status_code == 429
    assert not VismaDocument.objects.filter(collection="customer", body__name="Over Budget AB").exists()


def test_the_next_calls_fail_with_500_then_recover(visma):
    # given
    visma_fault_fail(2)

    # when
    responses = [visma.get("/v1/account/1920") for _ in range(3)]

    # then
    assert [response.status_code for response in responses] == [500, 500, 200]
    assert responses[0].json() == {"message": "An error has occurred."}
    assert [response["X-RateLimit-Remaining"] for response in responses] == ["499", "498", "497"]
    assert VismaFault.objects.get().remaining == 0


def test_a_throttle_answers_429_without_retry_after_while_the_hourly_budget_remains(visma):
    # given
    visma_fault_throttle(1)

    # when
    with time_machine.travel(datetime(2026, 3, 2, 10, 34, 0, tzinfo=UTC), tick=False):
        throttled = visma.get("/v1/account/1920")
        served = visma.get("/v1/account/1920")

    # then
    assert throttled.status_code == 429
    assert throttled.json() == {"statusCode": 429, "message": "Rate limit is exceeded."}
    assert "Retry-After" not in throttled
    assert (throttled["X-RateLimit-Limit"], throttled["X-RateLimit-Remaining"], throttled["X-RateLimit-Reset"]) == (
        "500", "499", "1560",
    )
    assert (served.status_code, served["X-RateLimit-Remaining"]) == (200, "498")


def test_a_failed_create_stores_nothing(visma):
    # given
    visma_fault_fail(1, status_code=503)

    # when
    response = visma.post("/v1/customer", {"name": value("Unlucky AB")})

    # then
    assert response.status_code == 503
    assert not VismaDocument.objects.filter(collection="customer", body__name="Unlucky AB").exists()


def test_the_next_calls_are_answered_late(visma, monkeypatch):
    # given
    slept = []
    monkeypatch.setattr(services.time, "sleep", slept.append)
    visma_fault_delay(1, seconds=2.5)

    # when
    late = visma.get("/v1/account/1920")
    on_time = visma.get("/v1/account/1920")

    # then
    assert (late.status_code, on_time.status_code) == (200, 200)
    assert slept == [2.5]


def test_a_concurrent_edit_makes_the_held_etag_stale(visma):
    # given
    before = visma.get("/v1/customer/10002")

    # when
    edited = visma_fault_concurrent_edit("customer", "10002")
    response = visma.put("/v1/customer/10002", {"name": value("Fjordline Sport ASA")}, **{"If-Match": before["ETag"]})

    # then
    assert response.status_code == 412
    after = visma.get("/v1/customer/10002")
    assert after["ETag"] == f'"{edited.etag}"' != before["ETag"]
    assert after.json()["name"] == "Fjordline Sport AS"
    assert after.json()["lastModifiedDateTime"] > before.json()["lastModifiedDateTime"]


def test_stale_puts_refuse_every_retry_for_the_next_n_puts(visma):
    # given
    visma_fault_stale_puts(2)

    # when: re-read and retry, as a client does on 412
    statuses = []
    for _ in range(3):
        etag = visma.get("/v1/customer/10003")["ETag"]
        statuses.append(visma.put("/v1/customer/10003", {"note": value("x")}, **{"If-Match": etag}).status_code)

    # then
    assert statuses == [412, 412, 204]
    assert VismaFault.objects.get().remaining == 0


def test_reset_returns_to_the_seed_state(visma):
    # given
    assert visma.post("/v1/customer", {"name": value("Temporary AB")}).status_code == 201
    visma_fault_fail(5)

    # when
    visma_sandbox_reset()

    # then
    assert VismaDocument.objects.filter(collection="customer").count() == 250
    assert VismaFault.objects.count() == 0
    fresh = VismaSession(client=visma.client).authenticate()
    assert fresh.get("/v1/customer/10251").status_code == 404
    assert fresh.post("/v1/customer", {"name": value("Again AB")})["Location"].endswith("/v1/customer/10251")
