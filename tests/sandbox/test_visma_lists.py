"""Lists as Visma pages and filters them: pageNumber/pageSize with metadata, delta filters, the journal rules."""
import pytest

from tests.sandbox.conftest import journal_body

pytestmark = pytest.mark.django_db


def test_customers_page_past_several_pages_with_the_total_on_every_element(visma):
    # when
    pages = [visma.get("/v1/customer", {"pageNumber": number, "pageSize": 100}).json() for number in (1, 2, 3, 4)]

    # then
    assert [len(page) for page in pages] == [100, 100, 50, 0]
    numbers = [customer["number"] for page in pages for customer in page]
    assert len(set(numbers)) == 250
    assert numbers[0] == "10001" and numbers[-1] == "10250"
    assert {str(customer["metadata"]) for page in pages for customer in page} == {
        "{'totalCount': 250, 'maxPageSize': 100}"
    }


def test_a_page_larger_than_the_maximum_is_capped_silently(visma):
    # when
    response = visma.get("/v1/customer", {"pageNumber": 1, "pageSize": 500})

    # then
    assert response.status_code == 200
    assert len(response.json()) == 100
    assert response.json()[0]["metadata"] == {"totalCount": 250, "maxPageSize": 100}


@pytest.mark.parametrize(
    ("moment", "condition", "count"),
    [
        ("2026-02-01", ">=", 36),
        ("2026-01-05 11:00:00", ">", 248),
        ("2026-01-05 11:00:00.000", ">=", 249),
        ("2026-01-05T11:00:00", "<", 1),
        ("2026-01-05T11:00:00.000", "<=", 2),
    ],
)
def test_customers_changed_around_a_moment(visma, moment, condition, count):
    # when
    response = visma.get(
        "/v1/customer",
        {"lastModifiedDateTime": moment, "lastModifiedDateTimeCondition": condition, "pageSize": 100},
    )

    # then
    assert response.status_code == 200
    assert response.json()[0]["metadata"]["totalCount"] == count


def test_a_date_filter_without_its_condition_is_refused(visma):
    # when
    response = visma.get("/v1/customer", {"lastModifiedDateTime": "2026-02-01"})

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        "The request does not match the Visma.net ERP API: "
        "lastModifiedDateTimeCondition: required together with lastModifiedDateTime"
    )


def test_accounts_can_be_listed_active_or_inactive(visma):
    # when
    active = visma.get("/v1/account", {"active": "true"}).json()
    inactive = visma.get("/v1/account", {"active": "false"}).json()

    # then
    assert len(active) == 18
    assert [account["accountCD"] for account in inactive] == ["3099"]
    assert inactive[0]["metadata"] == {"totalCount": 1, "maxPageSize": 100}


def test_customer_invoices_are_found_by_external_reference(visma):
    # when
    found = visma.get("/v1/customerinvoice", {"externalReference": "WEB-1001"}).json()
    missing = visma.get("/v1/customerinvoice", {"externalReference": "WEB-9999"}).json()

    # then
    assert [(invoice["referenceNumber"], invoice["amount"], invoice["status"]) for invoice in found] == [
        ("100001", 1250.0, "Open")
    ]
    assert found[0]["customer"] == {"number": "10001", "name": "Nordic Outdoor AB"}
    assert missing == []


def test_customers_are_found_by_name_and_email(visma):
    # when
    by_name = visma.get("/v1/customer", {"name": "Nordic Outdoor AB"}).json()
    by_email = visma.get("/v1/customer", {"email": "INFO@helsinki-trail.example"}).json()

    # then
    assert [customer["number"] for customer in by_name] == ["10001"]
    assert [customer["number"] for customer in by_email] == ["10004"]


def test_the_subaccount_dimension_lists_segments_and_values(visma):
    # when
    dimensions = visma.get("/v1/dimension").json()
    dimension = visma.get("/v1/dimension/SUBACCOUNT").json()
    without_values = visma.get("/v1/dimension/SUBACCOUNT", {"expandSegmentsValues": "false"}).json()

    # then
    assert dimensions == ["SUBACCOUNT"]
    assert [(segment["segmentId"], segment["description"]) for segment in dimension["segments"]] == [
        (1, "Department"), (2, "Project"),
    ]
    assert [(value["valueId"], value["active"]) for value in dimension["segments"][0]["segmentValues"]] == [
        ("100", True), ("200", True), ("900", False),
        ("310", True), ("320", True), ("330", True), ("390", False),
    ]
    assert [value["valueId"] for value in dimension["segments"][1]["segmentValues"]] == ["P-100", "P-200"]
    assert without_values["segments"][0]["segmentValues"] == []


def test_subaccounts_list_every_department_and_project_pair(visma):
    # when
    subaccounts = visma.get("/v1/subaccount", {"pageNumber": 1, "pageSize": 10}).json()
    active = visma.get("/v1/subaccount", {"active": "true"}).json()

    # then
    assert [subaccount["subaccountNumber"] for subaccount in subaccounts] == [
        "100-P-100", "100-P-200", "200-P-100", "200-P-200", "900-P-100", "900-P-200",
        "310-P-100", "310-P-200", "320-P-100", "320-P-200",
    ]
    assert len(active) == 10


def test_journal_transactions_need_a_period_or_a_change_date(visma):
    # when
    response = visma.get("/v2/journaltransaction")

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == "PeriodId or LastModifiedDateTime must be provided."


def test_journal_pages_count_lines_so_a_batch_can_span_pages(visma):
    # given: two batches of three lines in March 2026
    for amount in (100, 200):
        lines = [("1920", amount, 0, []), ("7770", 5, 0, []), ("1580", 0, amount + 5, [])]
        assert visma.post("/v2/journaltransaction", journal_body(lines)).status_code == 201

    # when
    pages = [
        visma.get("/v2/journaltransaction", {"periodId": "202603", "pageNumber": number, "pageSize": 4}).json()
        for number in (1, 2)
    ]

    # then
    assert [[(batch["batchNumber"], len(batch["journalTransactionLines"])) for batch in page] for page in pages] == [
        [("000002", 3), ("000003", 1)],
        [("000003", 2)],
    ]
    assert pages[0][0]["metadata"] == {"totalCount": 6, "maxPageSize": 100}


def test_journal_transactions_changed_since_a_moment(visma):
    # when
    since_2026 = visma.get("/v2/journaltransaction", {"lastModifiedDateTime": "2026-01-01"}).json()
    later = visma.get("/v2/journaltransaction", {"lastModifiedDateTime": "2026-01-03"}).json()

    # then
    assert [batch["batchNumber"] for batch in since_2026] == ["000001"]
    assert since_2026[0]["lastModifiedDateTime"] == "2026-01-02T07:00:00.000"
    assert later == []


def test_a_filter_the_sandbox_does_not_emulate_is_refused_rather_than_ignored(visma):
    # when
    response = visma.get("/v1/customerinvoice", {"dunningLevel": "1"})

    # then
    assert response.status_code == 400
    assert response.json()["ExceptionMessage"] == (
        "dunningLevel: the Visma sandbox does not emulate this filter; remove it or extend sandbox/visma_erp.py"
    )
