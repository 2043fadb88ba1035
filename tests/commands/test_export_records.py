import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from django.db.models import QuerySet

from audit.models import SyncRecord
from tests.factories import IntegrationFactory, SyncRecordFactory, TenantFactory

from .helpers import run

pytestmark = pytest.mark.django_db

OSLO = timezone(timedelta(hours=1))


@pytest.fixture
def records():
    """Three records of Nordlys (PayPal and Stripe) and one of another tenant."""
    tenant = TenantFactory(slug="nordlys-friluft")
    paypal = IntegrationFactory(tenant=tenant, kind="paypal")
    stripe = IntegrationFactory(tenant=tenant, kind="stripe")
    rows = [
        SyncRecordFactory(integration=paypal, stream="captures", source_id="8MC585209K746392H", status="posted",
                          target_id="JT-000123", amount=Decimal("1249.50"), currency="NOK"),
        SyncRecordFactory(integration=paypal, stream="refunds", source_id="1JU08902781691411", status="flagged",
                          amount=Decimal("-99.9"), currency="NOK",
                          reasons=["GL account 3080 is inactive in Visma", "Dimension value 100 of segment 1 is "
                                                                           "unknown in Visma"]),
        SyncRecordFactory(integration=stripe, stream="charges", source_id="ch_3MmlLrLkdIwHu7ix0snN0B15",
                          status="received", amount=None, currency=""),
    ]
    SyncRecordFactory(integration=IntegrationFactory(tenant=TenantFactory(slug="other")), source_id="X-1")
    for number, record in enumerate(rows):
        # Stored times are converted to UTC on the way out, whatever zone they were written in.
        SyncRecord.objects.filter(pk=record.pk).update(updated_at=datetime(2026, 11, 2, 9 + number, 30, 5, tzinfo=OSLO))
    return rows


def test_csv_has_one_row_per_record_with_exact_amounts(records):
    # when
    stdout, _ = run("export_records", "nordlys-friluft")

    # then
    assert stdout == (
        "integration,stream,source_id,target_id,status,amount,currency,reasons,updated_at\r\n"
        "paypal,captures,8MC585209K746392H,JT-000123,posted,1249.50,NOK,,2026-11-02T08:30:05+00:00\r\n"
        "paypal,refunds,1JU08902781691411,,flagged,-99.90,NOK,GL account 3080 is inactive in Visma; "
        "Dimension value 100 of segment 1 is unknown in Visma,2026-11-02T09:30:05+00:00\r\n"
        "stripe,charges,ch_3MmlLrLkdIwHu7ix0snN0B15,,received,,,,2026-11-02T10:30:05+00:00\r\n"
    )


def test_json_is_a_list_of_records_with_amounts_as_strings(records, tmp_path):
    # given
    output = tmp_path / "records.json"

    # when
    stdout, stderr = run("export_records", "nordlys-friluft", "--format", "json", "--output", str(output))

    # then
    assert stdout == ""
    assert stderr == f"Wrote 3 record(s) of nordlys-friluft to {output} (json).\n"
    text = output.read_text()
    assert '"amount": "1249.50"' in text
    assert json.loads(text) == [
        {"integration": "paypal", "stream": "captures", "source_id": "8MC585209K746392H", "target_id": "JT-000123",
         "status": "posted", "amount": "1249.50", "currency": "NOK", "reasons": [],
         "updated_at": "2026-11-02T08:30:05+00:00"},
        {"integration": "paypal", "stream": "refunds", "source_id": "1JU08902781691411", "target_id": "",
         "status": "flagged", "amount": "-99.90", "currency": "NOK",
         "reasons": ["GL account 3080 is inactive in Visma", "Dimension value 100 of segment 1 is unknown in Visma"],
         "updated_at": "2026-11-02T09:30:05+00:00"},
        {"integration": "stripe", "stream": "charges", "source_id": "ch_3MmlLrLkdIwHu7ix0snN0B15", "target_id": "",
         "status": "received", "amount": None, "currency": "", "reasons": [],
         "updated_at": "2026-11-02T10:30:05+00:00"},
    ]


def test_an_amount_finer_than_its_currency_is_kept_whole(records):
    # given
    SyncRecord.objects.filter(pk=records[0].pk).update(amount=Decimal("1249.5025"))
    SyncRecord.objects.filter(pk=records[1].pk).update(amount=Decimal("1500"), currency="JPY")

    # when
    stdout, _ = run("export_records", "nordlys-friluft", "--format", "json")

    # then
    assert [(row["amount"], row["currency"]) for row in json.loads(stdout)] == [
        ("1249.5025", "NOK"), ("1500", "JPY"), (None, ""),
    ]


def test_a_tenant_without_records_gets_the_header_only(records):
    # given
    TenantFactory(slug="empty")

    # when
    csv_out, _ = run("export_records", "empty")
    json_out, _ = run("export_records", "empty", "--format", "json")

    # then
    assert csv_out == "integration,stream,source_id,target_id,status,amount,currency,reasons,updated_at\r\n"
    assert json_out == "[\n]\n"
    assert json.loads(json_out) == []


def test_an_unknown_tenant_is_refused(records, tmp_path):
    # when
    with pytest.raises(CommandError) as raised:
        run("export_records", "nobody", "--output", str(tmp_path / "out.csv"))

    # then
    assert str(raised.value) == "No tenant with slug 'nobody'."
    assert not (tmp_path / "out.csv").exists()


def test_records_are_streamed_in_chunks(records, monkeypatch):
    # given
    chunk_sizes = []
    iterator = QuerySet.iterator

    def spy(queryset, chunk_size=None):
        chunk_sizes.append(chunk_size)
        return iterator(queryset, chunk_size=chunk_size)

    monkeypatch.setattr(QuerySet, "iterator", spy)
    monkeypatch.setattr("audit.exports.CHUNK_SIZE", 2)

    # when
    stdout, _ = run("export_records", "nordlys-friluft")

    # then
    assert chunk_sizes == [2]
    assert len(stdout.splitlines()) == 4
