import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from connectors import registry
from connectors.errors import ConflictError, PermanentError, TransientError
from connectors.visma.client import (
    VismaClient,
    VismaConflictError,
    VismaPermanentError,
    VismaTransientError,
    visma_dto,
    visma_ping,
)
from tests.factories import ConnectionFactory
from tests.visma.conftest import API, payload, token_reply


@pytest.fixture
def client(visma_connection, mocked):
    token_reply(mocked)
    return VismaClient(visma_connection, sleep=lambda seconds: None)


def _api_calls(mocked):
    return [call for call in mocked.calls if call.request.url.startswith(API)]


def _page(number, size, rows, **params):
    return [matchers.query_param_matcher({**params, "pageNumber": str(number), "pageSize": str(size)})], rows


# --- paging ---------------------------------------------------------------------------------------------------


def test_a_list_is_read_page_by_page_and_streamed(client, mocked):
    # given
    for number, name in ((1, "customers_page1.json"), (2, "customers_page2.json")):
        match, rows = _page(number, 2, payload(name))
        mocked.add(responses.GET, f"{API}/v1/customer", json=rows, match=match)

    # when
    pages = client.pages("/v1/customer", page_size=2)
    first = next(pages)
    calls_after_first_page = len(_api_calls(mocked))
    rest = list(pages)

    # then
    assert [row["number"] for row in first] == ["10001", "10002"]
    assert calls_after_first_page == 1
    assert [[row["number"] for row in page] for page in rest] == [["10003"]]
    assert len(_api_calls(mocked)) == 2


def test_paging_stops_at_an_empty_page_when_no_total_is_given(client, mocked):
    # given
    rows = [{"number": str(n)} for n in range(1, 4)]
    for number, page_rows in ((1, rows[:2]), (2, rows[2:] + [{"number": "4"}]), (3, [])):
        match, _ = _page(number, 2, page_rows)
        mocked.add(responses.GET, f"{API}/v1/supplier", json=page_rows, match=match)

    # when
    numbers = [row["number"] for row in client.items("/v1/supplier", page_size=2)]

    # then
    assert numbers == ["1", "2", "3", "4"]
    assert len(_api_calls(mocked)) == 3


def test_a_page_size_above_the_endpoints_maximum_follows_visma_s_cap(client, mocked):
    # given
    match, rows = _page(1, 500, payload("customers_page1.json"))
    mocked.add(responses.GET, f"{API}/v1/customer", json=rows, match=match)
    match, rows = _page(2, 2, payload("customers_page2.json"))
    mocked.add(responses.GET, f"{API}/v1/customer", json=rows, match=match)

    # when
    numbers = [row["number"] for row in client.items("/v1/customer")]

    # then
    assert numbers == ["10001", "10002", "10003"]


def test_the_pagination_envelope_some_endpoints_use_is_read_too(client, mocked):
    # given
    envelope = {"pageNumber": 1, "pageSize": 2, "totalCount": 1, "records": [{"id": "30D"}]}
    mocked.add(responses.GET, f"{API}/v1/creditTerm", json=envelope)

    # when
    terms = list(client.items("/v1/creditTerm", page_size=2))

    # then
    assert terms == [{"id": "30D"}]


def test_a_delta_read_overlaps_the_last_read_and_serves_each_key_once(client, mocked):
    # given
    since = datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    delta = {"lastModifiedDateTime": "2026-03-05T09:00:00", "lastModifiedDateTimeCondition": ">="}
    first, second = payload("customers_page1.json"), payload("customers_page2.json")
    for row in first + second:
        row["metadata"]["totalCount"] = 4
    # 10002 changed during the read and moved to the second page.
    second = [first[1], *second]
    for number, rows in ((1, first), (2, second)):
        match, _ = _page(number, 2, rows, **delta)
        mocked.add(responses.GET, f"{API}/v1/customer", json=rows, match=match)

    # when
    numbers = [row["number"] for row in client.changed("/v1/customer", since=since, key="number", page_size=2)]

    # then
    assert numbers == ["10001", "10002", "10003"]


def test_the_delta_overlap_can_be_set_per_read(client, mocked):
    # given
    delta = {"lastModifiedDateTime": "2026-03-05T11:50:00", "lastModifiedDateTimeCondition": ">="}
    mocked.add(responses.GET, f"{API}/v1/account", json=[], match=[matchers.query_param_matcher(delta)])

    # when
    rows = list(client.changed("/v1/account", since=datetime(2026, 3, 5, 12, 0, tzinfo=UTC), key="accountCD",
                               overlap=timedelta(minutes=10), paged=False))

    # then
    assert rows == []
    assert len(_api_calls(mocked)) == 1


# --- writes ---------------------------------------------------------------------------------------------------


def test_a_plain_journal_becomes_visma_s_write_dto():
    # given
    journal = {
        "transactionDate": "2026-01-31T00:00:00",
        "financialPeriod": "202601",
        "description": "Stripe payout po_123",
        "journalTransactionLines": [
            {"operation": "Insert", "accountNumber": "1920", "subaccount": {"2": "P42", "1": "100"},
             "referenceNumber": "po_123", "debitAmountInCurrency": Decimal("1000.00")},
            {"operation": "Insert", "accountNumber": "1580", "creditAmountInCurrency": Decimal("1000.00")},
        ],
    }

    # when
    dto = visma_dto(journal)

    # then
    assert dto == {
        "transactionDate": {"value": "2026-01-31T00:00:00"},
        "financialPeriod": {"value": "202601"},
        "description": {"value": "Stripe payout po_123"},
        "journalTransactionLines": [
            {"operation": "Insert", "accountNumber": {"value": "1920"},
             "subaccount": [{"segmentId": 1, "segmentValue": "100"}, {"segmentId": 2, "segmentValue": "P42"}],
             "referenceNumber": {"value": "po_123"}, "debitAmountInCurrency": {"value": Decimal("1000.00")}},
            {"operation": "Insert", "accountNumber": {"value": "1580"},
             "creditAmountInCurrency": {"value": Decimal("1000.00")}},
        ],
    }


def test_nested_objects_are_wrapped_whole_and_bare_flags_stay_bare():
    # when
    dto = visma_dto({"name": "Nordlys AS", "mainAddress": {"city": "Oslo", "countryId": "NO"},
                     "overrideWithClassValues": True, "lineNumber": 2})

    # then
    assert dto == {
        "name": {"value": "Nordlys AS"},
        "mainAddress": {"value": {"city": {"value": "Oslo"}, "countryId": {"value": "NO"}}},
        "overrideWithClassValues": True,
        "lineNumber": {"value": 2},
    }


def test_create_posts_the_wrapped_document_and_reads_the_id_from_location(client, mocked):
    # given
    mocked.add(
        responses.POST, f"{API}/v2/journaltransaction", status=201, json={},
        headers={"Location": f"{API}/v2/journaltransaction/000123"},
    )

    # when
    batch_number = client.create("/v2/journaltransaction", {"description": "PayPal 2026-03-05",
                                                              "journalTransactionLines": [
                                                                  {"operation": "Insert", "accountNumber": "1920",
                                                                   "debitAmountInCurrency": Decimal("96.60")}]})

    # then
    assert batch_number == "000123"
    sent = json.loads(_api_calls(mocked)[0].request.body)
    assert sent == {"description": {"value": "PayPal 2026-03-05"}, "journalTransactionLines": [
        {"operation": "Insert", "accountNumber": {"value": "1920"}, "debitAmountInCurrency": {"value": 96.6}}]}
    assert _api_calls(mocked)[0].request.headers["Content-Type"] == "application/json"


def test_a_create_without_location_is_transient_so_the_marker_lookup_decides(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v1/customer", status=201, json={})

    # when
    with pytest.raises(VismaTransientError) as raised:
        client.create("/v1/customer", {"name": "Nordlys AS"})

    # then
    assert "without a Location header" in str(raised.value)
    assert len(_api_calls(mocked)) == 1


def test_a_create_whose_answer_timed_out_is_not_posted_again(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", body=requests.ReadTimeout("read timed out"))

    # when
    with pytest.raises(TransientError):
        client.create("/v2/journaltransaction", {"description": "PayPal 2026-03-05"})

    # then
    assert len(_api_calls(mocked)) == 1


def _supplier(name, etag):
    return {**payload("supplier_20001.json"), "name": name, "timeStamp": etag.strip('"')}


def test_an_update_reads_the_etag_puts_with_if_match_and_after_a_412_applies_the_change_again(client, mocked):
    # given
    url = f"{API}/v1/supplier/20001"
    mocked.add(responses.GET, url, json=_supplier("Airbase Card Issuing", '"v1"'), headers={"ETag": '"v1"'})
    mocked.add(responses.PUT, url, status=412, json={"message": "Supplier version does not match with If-Match header"})
    mocked.add(responses.GET, url, json=_supplier("Airbase Card Issuing Ltd", '"v2"'), headers={"ETag": '"v2"'})
    mocked.add(responses.PUT, url, status=204, headers={"ETag": '"v3"'})

    # when
    etag = client.update("/v1/supplier/20001", lambda current: {"name": f"{current['name']} (EUR)"})

    # then
    assert etag == '"v3"'
    puts = [call.request for call in _api_calls(mocked) if call.request.method == "PUT"]
    assert [put.headers["If-Match"] for put in puts] == ['"v1"', '"v2"']
    assert [json.loads(put.body) for put in puts] == [
        {"name": {"value": "Airbase Card Issuing (EUR)"}}, {"name": {"value": "Airbase Card Issuing Ltd (EUR)"}},
    ]


def test_an_update_refused_with_412_every_time_raises_a_conflict_with_the_reason(client, mocked):
    # given
    url = f"{API}/v1/supplier/20001"
    for version in range(3):
        mocked.add(responses.GET, url, json=_supplier("Airbase", f'"v{version}"'), headers={"ETag": f'"v{version}"'})
        mocked.add(responses.PUT, url, status=412,
                   json={"message": "Supplier version does not match with If-Match header"})

    # when
    with pytest.raises(VismaConflictError) as raised:
        client.update("/v1/supplier/20001", lambda current: {"note": "paid by card"})

    # then
    assert isinstance(raised.value, ConflictError)
    assert isinstance(raised.value, PermanentError)
    assert raised.value.status_code == 412
    assert raised.value.system_message == (
        "Changed in Visma while we updated it, 3 times: Supplier version does not match with If-Match header"
    )
    assert len(_api_calls(mocked)) == 6


def test_the_etag_falls_back_to_the_body_timestamp(client, mocked):
    # given
    url = f"{API}/v1/supplier/20001"
    mocked.add(responses.GET, url, json=_supplier("Airbase", "AAAAAAAC1Ns="))
    mocked.add(responses.PUT, url, status=204)

    # when
    client.update("/v1/supplier/20001", lambda current: {"note": "paid by card"})

    # then
    assert _api_calls(mocked)[1].request.headers["If-Match"] == '"AAAAAAAC1Ns="'


# --- errors ---------------------------------------------------------------------------------------------------


def test_an_ipp_exception_body_is_parsed_into_a_permanent_visma_error(client, mocked):
    # given
    mocked.add(responses.POST, f"{API}/v2/journaltransaction", status=400, json=payload("error_validation.json"))

    # when
    with pytest.raises(VismaPermanentError) as raised:
        client.create("/v2/journaltransaction", {"description": "x"})

    # then
    fault = raised.value.fault
    assert (fault.exception_type, fault.fault_code, fault.message_id) == (
        "IPPException", "10000", "10000_3f7a2c1d-5e6b-4f8a-9b0c-1d2e3f4a5b6c",
    )
    assert fault.details == "Error: 'Account' cannot be empty."
    assert raised.value.system_message == "Error: 'Account' cannot be empty. Line 2 (IPPException 10000)"
    assert raised.value.status_code == 400


@pytest.mark.parametrize("body", [{"message": "Customer 99 not found"}, {"Message": "Customer 99 not found"}])
def test_a_message_body_in_either_case_is_parsed(client, mocked, body):
    # given
    mocked.add(responses.GET, f"{API}/v1/customer/99", status=404, json=body)

    # when
    with pytest.raises(VismaPermanentError) as raised:
        client.get_json("/v1/customer/99")

    # then
    assert raised.value.system_message == "Customer 99 not found"
    assert raised.value.fault.exception_type == ""


def test_a_server_error_that_persists_becomes_a_transient_visma_error_with_visma_s_message(client, mocked, settings):
    # given
    settings.HTTP_MAX_RETRIES = 2
    for _ in range(3):
        mocked.add(responses.GET, f"{API}/v1/account", status=500, json={"Message": "An error has occurred."})

    # when
    with pytest.raises(VismaTransientError) as raised:
        client.get_json("/v1/account")

    # then
    assert raised.value.system_message == "An error has occurred."
    assert raised.value.status_code == 500
    assert len(_api_calls(mocked)) == 3


def test_get_one_is_none_for_a_missing_resource(client, mocked):
    # given
    mocked.add(responses.GET, f"{API}/v1/account/9999", status=404, json={"message": "Account not found"})

    # when
    account = client.get_one("/v1/account/9999")

    # then
    assert account is None


# --- ping -----------------------------------------------------------------------------------------------------


def test_ping_reports_the_token_the_company_and_the_number_of_gl_accounts(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account", json=payload("accounts.json"))

    # when
    message = registry.KINDS["visma"].ping(visma_connection)

    # then
    assert registry.KINDS["visma"].ping is visma_ping
    assert message == "token OK, company 1234567, 3 GL accounts"


def test_ping_on_the_deprecated_base_url_works_but_warns(db, mocked):
    # given
    connection = ConnectionFactory(system="visma", base_url="https://integration.visma.net/API/controller/api")
    token_reply(mocked)
    mocked.add(responses.GET, "https://integration.visma.net/API/controller/api/v1/account", json=[])

    # when
    message = visma_ping(connection)

    # then
    assert message == (
        "token OK, company 1234567, 0 GL accounts; warning: integration.visma.net is Visma's deprecated base URL "
        "(throttled since 2026-02-01, being shut down): change it to https://api.finance.visma.net"
    )


def test_ping_raises_when_the_company_is_refused(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account", status=403, json=payload("error_ipp.json"))

    # when
    with pytest.raises(VismaPermanentError) as raised:
        visma_ping(visma_connection)

    # then
    assert raised.value.system_message == "No license for this company (IPPException 12027)"
