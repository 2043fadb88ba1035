"""visma_request_problems: requests checked against Visma's published OpenAPI file."""
from sandbox.openapi import visma_api_path, visma_openapi, visma_request_problems


def value(x):
    return {"value": x}


VALID_JOURNAL = {
    "transactionDate": value("2026-01-31T00:00:00"),
    "financialPeriod": value("202601"),
    "description": value("Stripe payout po_123"),
    "branch": value("1"),
    "journalTransactionLines": [
        {
            "operation": "Insert",
            "accountNumber": value("1920"),
            "subaccount": [{"segmentId": 1, "segmentValue": "100"}],
            "referenceNumber": value("po_123"),
            "transactionDescription": value("payout"),
            "debitAmountInCurrency": value(1000.0),
        },
        {"operation": "Insert", "accountNumber": value("1580"), "creditAmountInCurrency": value(1000.0)},
    ],
}


def test_a_well_formed_journal_has_no_problems():
    # when
    problems = visma_request_problems("POST", "/v2/journaltransaction", VALID_JOURNAL, {})

    # then
    assert problems == []


def test_a_malformed_journal_is_refused_field_by_field():
    # given
    body = {
        "transactionDate": value("31/01/2026"),
        "financialPeriod": "202601",
        "journalTransactionLines": [
            {
                "operation": "Add",
                "accountNumber": value(1920),
                "debitAmount": value(10),
                "subaccount": [{"segmentId": "1", "segmentValue": "100"}],
            },
            {"operation": "Insert", "accountNumber": value("1580"), "creditAmountInCurrency": value("10.00")},
        ],
    }

    # when
    problems = visma_request_problems("POST", "/v2/journaltransaction", body, {})

    # then
    assert problems == [
        'financialPeriod: "202601" is not of type object',
        "journalTransactionLines[0].debitAmount: unknown property",
        "journalTransactionLines[0].accountNumber.value: 1920 is not of type string",
        "journalTransactionLines[0].operation: \"Add\" is not one of Insert, Update, Delete",
        'journalTransactionLines[0].subaccount[0].segmentId: "1" is not of type integer',
        'journalTransactionLines[1].creditAmountInCurrency.value: "10.00" is not of type number',
        'transactionDate.value: "31/01/2026" is not a valid date-time',
    ]


def test_query_parameter_names_and_values_are_checked_against_the_operation():
    # when
    problems = visma_request_problems(
        "GET", "/v1/customer", None, {"pageNumber": "x", "pagenumber": "2", "lastModifiedDateTime": "2026-01-01"}
    )

    # then
    assert problems == [
        "pageNumber: 'x' is not an integer",
        "pagenumber: query parameter not declared for GET /v1/customer (did you mean 'pageNumber'?)",
        "lastModifiedDateTimeCondition: required together with lastModifiedDateTime",
    ]


def test_a_date_filter_must_be_in_one_of_the_listed_formats_with_a_known_condition():
    # when
    problems = visma_request_problems(
        "GET",
        "/v1/customerinvoice",
        None,
        {"lastModifiedDateTime": "05.01.2026", "lastModifiedDateTimeCondition": "=="},
    )

    # then
    assert problems == [
        "lastModifiedDateTime: '05.01.2026' is not in an accepted format "
        "(yyyy-MM-dd, yyyy-MM-dd HH:mm:ss[.FFF], yyyy-MM-ddTHH:mm:ss[.FFF])",
        "lastModifiedDateTimeCondition: '==' is not one of >, <, >=, <=",
    ]


def test_account_lists_take_no_page_parameters_in_the_published_spec():
    # when
    problems = visma_request_problems("GET", "/v1/account", None, {"active": "true", "pageNumber": "1"})

    # then
    assert problems == ["pageNumber: query parameter not declared for GET /v1/account"]


def test_full_urls_under_any_base_are_understood_with_their_query_string():
    # when
    problems = visma_request_problems(
        "GET", "http://127.0.0.1:8000/sandbox/visma/v1/customerinvoice?externalReference=WEB-1001&bogus=1", None
    )

    # then
    assert visma_api_path("https://api.finance.visma.net/v1/customer/10001?x=1") == ("/v1/customer/10001", {"x": ["1"]})
    assert problems == ["bogus: query parameter not declared for GET /v1/customerinvoice"]


def test_paths_match_templates_with_literal_segments_first_and_unknown_operations_are_named():
    # when
    by_internal_id, _ = visma_openapi().operation_find("get", "/v1/customer/internal/5")
    by_number, parameters = visma_openapi().operation_find("get", "/v1/customer/10001")
    problems = visma_request_problems("PUT", "/v1/customer", {"name": value("x")}, {})

    # then
    assert by_internal_id.template == "/v1/customer/internal/{internalID}"
    assert (by_number.template, parameters) == ("/v1/customer/{customerCd}", {"customerCd": "10001"})
    assert problems == ["PUT /v1/customer is not an operation of the Visma.net ERP API"]


def test_a_write_needs_its_body_and_a_bare_scalar_is_not_a_value_wrapper():
    # when
    missing = visma_request_problems("POST", "/v1/customer", None, {})
    bare = visma_request_problems("POST", "/v1/customer", {"name": "Nordic Outdoor AB", "number": value(None)}, {})

    # then
    assert missing == ["request body is required"]
    assert bare == ['name: "Nordic Outdoor AB" is not of type object']


def test_the_document_is_loaded_once_per_process():
    # when
    first = visma_openapi()
    second = visma_openapi()

    # then
    assert first is second
    assert len(first.document["paths"]) == 383
    assert first.load_seconds > 0
