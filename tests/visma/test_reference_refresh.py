from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
import responses
import time_machine
from responses import matchers

from connectors.errors import TransientError
from connectors.models import SyncCursor
from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.models import (
    Customer, CustomerInvoice, DimensionValue, FinancialPeriod, GLAccount, GLMappingRule, Supplier,
)
from mappings.reference import (
    InvoiceFound, ReferenceRefresh, customer_invoice_by_reference, reference_data_refresh, reference_exists_live,
    reference_live_check, tenant_base_currency,
)
from mappings.services import posting_validate
from tests.factories import (
    DimensionValueFactory, GLAccountFactory, GLMappingRuleFactory, IntegrationFactory,
)
from tests.visma.conftest import API, payload, token_reply
from tests.factories import hand_marker

REFRESH_TIME = datetime(2026, 3, 6, 6, 0, tzinfo=UTC)


def _visma_has_everything(mocked, *, customers_delta=None, suppliers_delta=None, accounts_delta=None,
                          invoices_delta=None):
    mocked.add(responses.GET, f"{API}/v1/account", json=payload("accounts.json"),
               match=[matchers.query_param_matcher(accounts_delta or {})])
    mocked.add(responses.GET, f"{API}/v1/dimension/SUBACCOUNT", json=payload("dimension_subaccount.json"),
               match=[matchers.query_param_matcher({"expandSegmentsValues": "true"})])
    # The first customer page says maxPageSize 2: the second page is asked for at that size.
    for number, size, name in ((1, "500", "customers_page1.json"), (2, "2", "customers_page2.json")):
        mocked.add(responses.GET, f"{API}/v1/customer", json=payload(name), match=[
            matchers.query_param_matcher({**(customers_delta or {}), "pageNumber": str(number), "pageSize": size})])
    mocked.add(responses.GET, f"{API}/v1/supplier", json=payload("suppliers.json"), match=[
        matchers.query_param_matcher({**(suppliers_delta or {}), "pageNumber": "1", "pageSize": "500"})])
    # A full read takes the open invoices (what a payment can settle); a delta every invoice changed since.
    invoices = invoices_delta or {"status": "Open"}
    mocked.add(responses.GET, f"{API}/v1/customerinvoice", json=payload("customer_invoices_open.json"), match=[
        matchers.query_param_matcher({"documentType": "Invoice", **invoices, "pageNumber": "1", "pageSize": "500"})])
    # The financial calendar is read whole every time (GET /v1/financialPeriod has no delta).
    mocked.add(responses.GET, f"{API}/v1/financialPeriod", json=payload("financial_periods.json"),
               match=[matchers.query_param_matcher({})])
    mocked.add(responses.GET, f"{API}/v1/currency", json=payload("currencies.json"))


@time_machine.travel(REFRESH_TIME, tick=False)
def test_a_full_refresh_mirrors_every_kind_and_revalidates_the_rules(visma_connection, mocked):
    # given
    tenant = visma_connection.tenant
    good = GLMappingRuleFactory(tenant=tenant, gl_account="3000", fee_account="", clearing_account="1920",
                                dimensions={"1": "100", "2": "P42"})
    closed_fee = GLMappingRuleFactory(tenant=tenant, gl_account="3000", fee_account="7770", clearing_account="1920")
    token_reply(mocked)
    _visma_has_everything(mocked)

    # when
    refresh = reference_data_refresh(tenant, full=True)

    # then
    assert refresh == ReferenceRefresh(accounts=3, dimension_values=3, customers=3, suppliers=1,
                                       customer_invoices=2, currencies=2, financial_periods=12, deactivated=0,
                                       invalid_rules=1)
    assert tenant_base_currency(tenant) == "NOK"
    accounts = GLAccount.objects.filter(tenant=tenant)
    assert list(accounts.values_list("number", "account_type", "currency", "active")) == [
        ("1920", "Asset", "EUR", True), ("3000", "Income", "", True), ("7770", "Expense", "", False),
    ]
    assert GLAccount.objects.get(tenant=tenant, number="1920").visma_last_modified == datetime(
        2026, 3, 2, 9, 15, 0, 123000, tzinfo=UTC
    )
    assert list(DimensionValue.objects.filter(tenant=tenant).values_list(
        "segment_id", "segment_name", "value", "active")) == [
        (1, "Department", "100", True), (1, "Department", "200", False), (2, "Project", "P42", True),
    ]
    customers = Customer.objects.filter(tenant=tenant)
    assert list(customers.values_list("number", "customer_class", "currency", "active")) == [
        ("10001", "NO", "NOK", True), ("10002", "SE", "SEK", False), ("10003", "NO", "NOK", True),
    ]
    assert list(Supplier.objects.filter(tenant=tenant).values_list("number", "supplier_class", "active")) == [
        ("20001", "CARD", True),
    ]
    assert list(CustomerInvoice.objects.filter(tenant=tenant).values_list(
        "number", "external_reference", "customer", "currency", "status", "active")) == [
        ("100002", "WEB-2041", "10001", "NOK", "Open", True), ("100003", "", "10003", "NOK", "Open", True),
    ]
    good.refresh_from_db()
    closed_fee.refresh_from_db()
    assert (good.validation_state, good.validation_problems) == (GLMappingRule.ValidationState.VALID, [])
    assert (closed_fee.validation_state, closed_fee.validation_problems) == (
        GLMappingRule.ValidationState.INVALID, ["fee account 7770 is inactive in Visma"],
    )


def test_a_second_refresh_updates_rows_in_place(visma_connection, mocked):
    # given
    tenant = visma_connection.tenant
    GLAccountFactory(tenant=tenant, number="3000", description="Old name", account_type="Expense")
    token_reply(mocked)
    _visma_has_everything(mocked)

    # when
    reference_data_refresh(tenant, full=True)

    # then
    assert GLAccount.objects.filter(tenant=tenant).count() == 3
    assert GLAccount.objects.filter(tenant=tenant, number="3000").values_list("description", "account_type").get() == (
        "Sales revenue", "Income",
    )


def test_a_full_refresh_retires_rows_visma_no_longer_has(visma_connection, mocked):
    # given
    tenant = visma_connection.tenant
    with time_machine.travel(datetime(2026, 3, 1, tzinfo=UTC), tick=False):
        GLAccountFactory(tenant=tenant, number="2999", description="Deleted in Visma")
        DimensionValueFactory(tenant=tenant, segment_id=1, value="999")
    token_reply(mocked)
    _visma_has_everything(mocked)

    # when
    with time_machine.travel(REFRESH_TIME, tick=False):
        refresh = reference_data_refresh(tenant, full=True)

    # then
    assert refresh.deactivated == 2
    assert GLAccount.objects.get(tenant=tenant, number="2999").active is False
    assert DimensionValue.objects.get(tenant=tenant, value="999").active is False


def test_a_delta_refresh_reads_from_the_last_refresh_less_the_overlap_and_moves_the_cursor(visma_connection, mocked):
    # given
    tenant = visma_connection.tenant
    integration = IntegrationFactory(tenant=tenant)
    for kind in ("accounts", "customers", "suppliers", "customer_invoices"):
        SyncCursor.objects.create(integration=integration, stream=f"visma:reference:{kind}",
                                  position=datetime(2026, 3, 5, 6, 0, tzinfo=UTC))
    delta = {"lastModifiedDateTime": "2026-03-05T03:00:00", "lastModifiedDateTimeCondition": ">="}
    token_reply(mocked)
    _visma_has_everything(mocked, customers_delta=delta, suppliers_delta=delta, accounts_delta=delta,
                          invoices_delta=delta)

    # when
    with time_machine.travel(REFRESH_TIME, tick=False):
        refresh = reference_data_refresh(tenant)

    # then
    assert (refresh.accounts, refresh.customers, refresh.suppliers, refresh.deactivated) == (3, 3, 1, 0)
    assert dict(SyncCursor.objects.filter(integration=integration).values_list("stream", "position")) == {
        "visma:reference:accounts": REFRESH_TIME, "visma:reference:dimension_values": REFRESH_TIME,
        "visma:reference:customers": REFRESH_TIME, "visma:reference:suppliers": REFRESH_TIME,
        "visma:reference:customer_invoices": REFRESH_TIME, "visma:reference:currencies": REFRESH_TIME,
        "visma:reference:financial_periods": REFRESH_TIME,
    }


def test_without_an_integration_the_delta_starts_from_the_newest_visma_change_in_the_mirror(visma_connection, mocked):
    # given
    tenant = visma_connection.tenant
    Customer.objects.create(tenant=tenant, number="10001", name="Nordlys AS",
                            visma_last_modified=datetime(2026, 3, 4, 7, 0, tzinfo=UTC))
    token_reply(mocked)
    delta = {"lastModifiedDateTime": "2026-03-04T04:00:00", "lastModifiedDateTimeCondition": ">="}
    changed = payload("customers_page2.json")
    changed[0]["metadata"]["totalCount"] = 1
    mocked.add(responses.GET, f"{API}/v1/customer", json=changed, match=[
        matchers.query_param_matcher({**delta, "pageNumber": "1", "pageSize": "500"})])

    # when
    refresh = reference_data_refresh(tenant, kinds=["customers"])

    # then
    assert refresh.customers == 1
    assert sorted(Customer.objects.filter(tenant=tenant).values_list("number", flat=True)) == ["10001", "10003"]
    assert SyncCursor.objects.count() == 0


def test_an_unknown_kind_is_refused_before_any_call(visma_connection, mocked):
    # when
    with pytest.raises(ValueError) as raised:
        reference_data_refresh(visma_connection.tenant, kinds=["projects"])

    # then
    assert str(raised.value) == (
        "unknown reference kind(s) projects; known: accounts, dimension_values, customers, suppliers, "
        "customer_invoices, currencies, financial_periods"
    )
    assert len(mocked.calls) == 0


# --- live checks ----------------------------------------------------------------------------------------------


def test_a_live_check_mirrors_an_account_visma_has_and_says_it_is_active(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account/1920", json=payload("accounts.json")[0])

    # when
    active = reference_exists_live(visma_connection.tenant, "account", "1920")

    # then
    assert active is True
    assert GLAccount.objects.get(tenant=visma_connection.tenant, number="1920").description == "PayPal clearing"


def test_a_live_check_of_an_account_visma_does_not_have_marks_the_mirror_row_inactive(visma_connection, mocked):
    # given
    GLAccountFactory(tenant=visma_connection.tenant, number="4000", active=True)
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account/4000", status=404, json={"message": "Account 4000 not found"})

    # when
    active = reference_exists_live(visma_connection.tenant, "account", "4000")

    # then
    assert active is False
    assert GLAccount.objects.get(tenant=visma_connection.tenant, number="4000").active is False


def test_a_live_check_of_a_dimension_value_rereads_the_dimension(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/dimension/SUBACCOUNT", json=payload("dimension_subaccount.json"))

    # when
    found = reference_exists_live(visma_connection.tenant, "dimension", "P42")
    closed = reference_exists_live(visma_connection.tenant, "dimension", "200")

    # then
    assert (found, closed) == (True, False)
    assert DimensionValue.objects.filter(tenant=visma_connection.tenant).count() == 3


def test_a_live_check_of_a_supplier_and_a_customer(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/supplier/20001", json=payload("supplier_20001.json"))
    mocked.add(responses.GET, f"{API}/v1/customer/10002", json=payload("customers_page1.json")[1])

    # when
    supplier = reference_exists_live(visma_connection.tenant, "supplier", "20001")
    customer_on_hold = reference_exists_live(visma_connection.tenant, "customer", "10002")

    # then
    assert (supplier, customer_on_hold) == (True, False)
    assert Customer.objects.get(tenant=visma_connection.tenant, number="10002").name == "Fjord Handel AB"


def test_a_live_check_that_cannot_reach_a_verdict_is_transient_not_inactive(visma_connection, mocked, settings):
    # given
    settings.HTTP_MAX_RETRIES = 0
    GLAccountFactory(tenant=visma_connection.tenant, number="3000", active=True)
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account/3000", status=403, json=payload("error_ipp.json"))
    mocked.add(responses.GET, f"{API}/v1/customer/10001", body=requests.ConnectionError("connection reset"))

    # when
    with pytest.raises(TransientError) as refused:
        reference_exists_live(visma_connection.tenant, "account", "3000")
    with pytest.raises(TransientError):
        reference_exists_live(visma_connection.tenant, "customer", "10001")

    # then
    assert str(refused.value).startswith("could not check account 3000 in Visma: GET ")
    assert refused.value.system_message == "No license for this company (IPPException 12027)"
    assert GLAccount.objects.get(tenant=visma_connection.tenant, number="3000").active is True


def test_posting_validate_with_the_live_check_accepts_an_account_created_in_visma_since_the_last_refresh(
    visma_connection, mocked,
):
    # given
    tenant = visma_connection.tenant
    GLAccountFactory(tenant=tenant, number="1920")
    new_account = {**payload("accounts.json")[1], "accountCD": "3010", "description": "Webshop sales"}
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/account/3010", json=new_account)
    posting = Posting(
        document="journal", marker=hand_marker("CAP-1"), currency="EUR", date=date(2026, 3, 5),
        description="PayPal capture CAP-1",
        facts=MatchFacts(transaction_type="capture", amount=Decimal("10.00"), currency="EUR"),
        lines=[PostingLine(role="clearing", account="1920", debit=Decimal("10.00")),
               PostingLine(role="account", account="3010", credit=Decimal("10.00"))],
    )

    # when
    problems = posting_validate(tenant=tenant, posting=posting, live_check=reference_live_check(tenant))

    # then
    assert problems == []
    assert GLAccount.objects.get(tenant=tenant, number="3010").active is True


# --- the invoice a payment settles --------------------------------------------------------------------------


def test_an_invoice_reference_the_fresh_mirror_lacks_costs_no_call(visma_connection, mocked):
    # given the invoice mirror was read a minute ago
    tenant = visma_connection.tenant
    integration = IntegrationFactory(tenant=tenant)
    SyncCursor.objects.create(integration=integration, stream="visma:reference:customer_invoices",
                              position=REFRESH_TIME - timedelta(seconds=59))

    # when
    with time_machine.travel(REFRESH_TIME, tick=False):
        found = customer_invoice_by_reference(tenant, "WEB-9999")

    # then
    assert found is None
    assert len(mocked.calls) == 0


def test_an_invoice_reference_a_stale_mirror_lacks_is_looked_for_in_one_delta_read(visma_connection, mocked):
    # given the invoice mirror was read two minutes ago; invoice 100002 (WEB-2041) was written in Visma since
    tenant = visma_connection.tenant
    integration = IntegrationFactory(tenant=tenant)
    SyncCursor.objects.create(integration=integration, stream="visma:reference:customer_invoices",
                              position=REFRESH_TIME - timedelta(minutes=2))
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/customerinvoice", json=payload("customer_invoices_open.json"), match=[
        matchers.query_param_matcher({"documentType": "Invoice", "lastModifiedDateTime": "2026-03-06T02:58:00",
                                      "lastModifiedDateTimeCondition": ">=", "pageNumber": "1", "pageSize": "500"})])

    # when
    with time_machine.travel(REFRESH_TIME, tick=False):
        found = customer_invoice_by_reference(tenant, "WEB-2041")
        again = customer_invoice_by_reference(tenant, "WEB-2041")

    # then
    assert found == again == InvoiceFound(number="100002", customer="10001", currency="NOK", status="Open",
                                          payable=True)
    assert [call.request.url.split("?")[0] for call in mocked.calls] == [
        "https://connect.visma.com/connect/token", f"{API}/v1/customerinvoice"]


def test_a_payment_made_after_the_fresh_mirrors_last_read_looks_for_its_invoice_in_one_delta_read(
        visma_connection, mocked):
    # given the invoice mirror was read 30 seconds ago; the payment was made 10 seconds ago, and the invoice it names
    # (100002, WEB-2041) was written in Visma between the two
    tenant = visma_connection.tenant
    integration = IntegrationFactory(tenant=tenant)
    SyncCursor.objects.create(integration=integration, stream="visma:reference:customer_invoices",
                              position=REFRESH_TIME - timedelta(seconds=30))
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/customerinvoice", json=payload("customer_invoices_open.json"))

    # when
    with time_machine.travel(REFRESH_TIME, tick=False):
        found = customer_invoice_by_reference(tenant, "WEB-2041", paid_at=REFRESH_TIME - timedelta(seconds=10))
        unknown = customer_invoice_by_reference(tenant, "WEB-9999", paid_at=REFRESH_TIME - timedelta(seconds=10))

    # then: found; and once the mirror was read after the payment, a reference Visma lacks costs no further call
    assert found == InvoiceFound(number="100002", customer="10001", currency="NOK", status="Open", payable=True)
    assert unknown is None
    assert [call.request.url.split("?")[0] for call in mocked.calls] == [
        "https://connect.visma.com/connect/token", f"{API}/v1/customerinvoice"]


def test_the_base_currency_is_read_from_visma_once_when_the_mirror_has_none(visma_connection, mocked):
    # given
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/currency", json=payload("currencies.json"))

    # when
    first = tenant_base_currency(visma_connection.tenant)
    again = tenant_base_currency(visma_connection.tenant)

    # then
    assert (first, again) == ("NOK", "NOK")
    assert len([call for call in mocked.calls if call.request.url.endswith("/v1/currency")]) == 1


@pytest.mark.parametrize("reading", ["inclusive", "exclusive"])
def test_financial_periods_are_mirrored_with_their_last_day_whichever_way_visma_writes_enddate(
        visma_connection, mocked, reading):
    # given: FinancialPeriodDto.endDate as the last day, or (Acumatica's FinPeriod.EndDate) the next one's first
    rows = payload("financial_periods.json")
    if reading == "exclusive":
        for row, following in zip(rows, rows[1:] + [{"startDate": "2026-07-01T00:00:00"}]):
            row["endDate"] = following["startDate"]
    token_reply(mocked)
    mocked.add(responses.GET, f"{API}/v1/financialPeriod", json=rows)

    # when
    refresh = reference_data_refresh(visma_connection.tenant, kinds=["financial_periods"], revalidate_rules=False)

    # then
    periods = FinancialPeriod.objects.filter(tenant=visma_connection.tenant).order_by("start_date")
    assert refresh.financial_periods == 12
    assert [(period.period_id, period.start_date, period.end_date) for period in periods][:2] == [
        ("202601", date(2025, 7, 1), date(2025, 7, 31)), ("202602", date(2025, 8, 1), date(2025, 8, 31))]
    assert periods.last().end_date == date(2026, 6, 30)
    assert periods.get(period_id="202607").closed_in_general_ledger is True
