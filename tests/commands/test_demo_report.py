import pytest

from tests.factories import IntegrationFactory, SyncRecordFactory, TenantFactory

from .helpers import run, run_refused

pytestmark = pytest.mark.django_db


def test_the_report_counts_each_streams_records_by_status_in_life_order():
    # given
    tenant = TenantFactory(slug="nordlys-friluft")
    paypal = IntegrationFactory(tenant=tenant, kind="paypal")
    stripe = IntegrationFactory(tenant=tenant, kind="stripe")
    SyncRecordFactory.create_batch(2, integration=paypal, stream="captures", status="posted")
    SyncRecordFactory(integration=paypal, stream="captures", status="flagged")
    SyncRecordFactory(integration=paypal, stream="captures", status="retrying")
    SyncRecordFactory(integration=paypal, stream="refunds", status="posted")
    SyncRecordFactory(integration=stripe, stream="charges", status="flagged")
    SyncRecordFactory(integration=IntegrationFactory(kind="paypal"), stream="captures", status="posted")

    # when
    stdout, _ = run("demo_report", "nordlys-friluft")

    # then
    assert stdout.splitlines() == [
        "nordlys-friluft's records, by stream:",
        "  paypal captures: posted 2, flagged 1, retrying 1",
        "  paypal refunds: posted 1",
        "  stripe charges: flagged 1",
        "  total: posted 3, flagged 2, retrying 1",
    ]


def test_records_settled_without_a_document_are_counted_apart_from_the_posted_ones():
    # given: a Square payment booked as a sale, one canceled before it was booked, one an invoice's payment books
    tenant = TenantFactory(slug="nordlys-friluft")
    square = IntegrationFactory(tenant=tenant, kind="square")
    SyncRecordFactory(integration=square, stream="payments", status="posted",
                      proposed_posting={"document": "journal"})
    SyncRecordFactory.create_batch(2, integration=square, stream="payments", status="posted",
                                   proposed_posting={"document": "nothing_booked"})

    # when
    stdout, _ = run("demo_report", "nordlys-friluft")

    # then
    assert stdout.splitlines() == [
        "nordlys-friluft's records, by stream:",
        "  square payments: posted 1, nothing booked 2",
        "  total: posted 1, nothing booked 2",
    ]


def test_a_demo_that_posted_nothing_is_refused_and_prints_no_report():
    # given
    tenant = TenantFactory(slug="nordlys-friluft")
    SyncRecordFactory(integration=IntegrationFactory(tenant=tenant, kind="paypal"), stream="captures", status="flagged")

    # when
    error, stdout, _ = run_refused("demo_report", "nordlys-friluft")

    # then
    assert str(error) == "nordlys-friluft has no posted record (flagged 1): the demo did not load."
    assert stdout == ""


def test_a_tenant_with_no_records_is_refused():
    # given
    TenantFactory(slug="nordlys-friluft")

    # when
    error, stdout, _ = run_refused("demo_report", "nordlys-friluft")

    # then
    assert str(error) == "nordlys-friluft has no posted record (no record at all): the demo did not load."
    assert stdout == ""


def test_an_unknown_tenant_is_named():
    # when
    error, stdout, _ = run_refused("demo_report", "nowhere")

    # then
    assert str(error) == "No tenant with slug 'nowhere'."
    assert stdout == ""
