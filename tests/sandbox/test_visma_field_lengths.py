"""The emulated Visma's field lengths (refuse or truncate, switched at run time), own numbers, and lost answers."""
import time

import pytest

from sandbox.models import VismaDocument, VismaFault
from sandbox.services import VISMA_SANDBOX_COMPANY_ID, visma_fault_lose_answer, visma_fault_slow_commit
from sandbox.visma_fields import visma_field_lengths_mode
from tests.sandbox.conftest import BASE, journal_body, value

pytestmark = pytest.mark.django_db

LINES = [("1920", 100, 0, None), ("3000", 0, 100, None)]


def control(client, switch: str, data: dict):
    return client.post(f"{BASE}/_control/{switch}", data, content_type="application/json")


def journals() -> list[dict]:
    return [document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection="journal").exclude(key="000001").order_by("id")]


def long_reference_journal() -> dict:
    body = journal_body(LINES)
    body["journalTransactionLines"][0]["referenceNumber"] = value("ch_3PqRsTuVwXyZ0123456789AB")  # 27
    return body


def test_field_lengths_refuse_by_default_naming_the_field_and_its_limit_and_write_nothing(visma):
    # when
    response = visma.post("/v2/journaltransaction", long_reference_journal())

    # then
    assert visma_field_lengths_mode() == "refuse"
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        "journalTransactionLines[0].referenceNumber: the value is 27 characters long; the field takes at most 15 "
        "(GLTran.RefNbr).")
    assert journals() == []


def test_field_lengths_truncate_mode_cuts_silently_and_stores_the_cut_value(visma, client):
    # given
    switched = control(client, "field-lengths", {"mode": "truncate"})

    # when
    response = visma.post("/v2/journaltransaction", long_reference_journal())

    # then
    assert switched.json() == {"ok": True, "mode": "truncate"}
    assert response.status_code == 201
    (journal,) = journals()
    assert [line["referenceNumber"] for line in journal["journalTransactionLines"]] == ["ch_3PqRsTuVwXyZ", "po_123"]


def test_field_lengths_count_utf16_units_as_an_nvarchar_column_does(visma, client):
    # given: 254 letters and one emoji (two UTF-16 units) make 256 units in a 255-unit description
    control(client, "field-lengths", {"mode": "truncate"})
    body = journal_body(LINES, description="a" * 254 + "😀")

    # when
    response = visma.post("/v2/journaltransaction", body)

    # then
    assert response.status_code == 201
    assert journals()[0]["description"] == "a" * 254


def test_a_customer_name_and_a_nested_contact_are_held_to_their_columns(visma):
    # when
    too_long_name = visma.post("/v1/customer", {"name": value("N" * 61)})
    too_long_phone = visma.post("/v1/customer", {"name": value("Fjellheim AS"),
                                                 "mainContact": value({"phone1": value("4" * 51)})})

    # then
    assert too_long_name.status_code == 400
    assert too_long_name.json()["ExceptionMessage"] == (
        "name: the value is 61 characters long; the field takes at most 60 (Customer.AcctName).")
    assert too_long_phone.json()["ExceptionMessage"] == (
        "mainContact.phone1: the value is 51 characters long; the field takes at most 50 (Contact.Phone1).")
    assert VismaDocument.objects.filter(collection="customer", body__name="Fjellheim AS").count() == 0


def test_an_unknown_field_lengths_mode_is_refused(client, visma_company):
    # when
    response = control(client, "field-lengths", {"mode": "ignore"})

    # then
    assert response.status_code == 400
    assert visma_field_lengths_mode() == "refuse"


def test_a_second_journal_with_the_same_own_number_is_refused(visma):
    # given
    body = journal_body(LINES, batchNumber="MLAAAAAAAAAAAAA", overrideNumberSeries=True)
    first = visma.post("/v2/journaltransaction", body)

    # when
    second = visma.post("/v2/journaltransaction", body)

    # then
    assert first.status_code == 201
    assert first["Location"].endswith("/v2/journaltransaction/MLAAAAAAAAAAAAA")
    assert second.status_code == 400
    assert second.json()["ExceptionMessage"] == "Journal transaction 'MLAAAAAAAAAAAAA' already exists."
    assert len(journals()) == 1


def test_a_lost_answer_is_a_502_after_the_write_was_done(visma, client):
    # given
    switched = control(client, "lose-answer", {"calls": 1, "status_code": 502})

    # when
    lost = visma.post("/v2/journaltransaction", journal_body(LINES))
    answered = visma.post("/v2/journaltransaction", journal_body(LINES))

    # then
    assert switched.json()["fault"] == "lose_answer"
    assert (lost.status_code, answered.status_code) == (502, 201)
    assert len(journals()) == 2
    assert VismaFault.objects.get(kind="lose_answer").remaining == 0


def test_a_lost_answer_in_timeout_mode_answers_only_after_the_write_and_the_wait(visma):
    # given
    visma_fault_lose_answer(1, seconds=0.3)

    # when
    started = time.monotonic()
    response = visma.post("/v2/journaltransaction", journal_body(LINES))
    waited = time.monotonic() - started

    # then
    assert response.status_code == 201
    assert waited >= 0.3
    assert len(journals()) == 1


def test_reads_keep_their_answers_while_a_lose_answer_fault_waits_for_a_write(visma):
    # given
    visma_fault_lose_answer(1)

    # when
    read = visma.get("/v1/account/1920")

    # then
    assert read.status_code == 200
    assert VismaFault.objects.get(kind="lose_answer").remaining == 1


def test_a_slow_commit_holds_the_write_back_then_does_it(visma, client):
    # given
    switched = control(client, "slow-commit", {"calls": 1, "seconds": 0.3})

    # when
    started = time.monotonic()
    response = visma.post("/v2/journaltransaction", journal_body(LINES))

    # then
    assert switched.json() == {"ok": True, "fault": "slow_commit", "calls": 1, "seconds": 0.3}
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 201
    assert len(journals()) == 1


def test_a_timeout_without_seconds_is_refused(client, visma_company):
    # when
    response = control(client, "lose-answer", {"calls": 1, "mode": "timeout"})

    # then
    assert response.status_code == 400
    assert VismaFault.objects.count() == 0


def test_the_slow_commit_fault_counts_writes_only(visma):
    # given
    visma_fault_slow_commit(1, seconds=0.0)

    # when
    visma.get("/v1/account/1920")

    # then
    assert VismaFault.objects.get(kind="slow_commit").remaining == 1
