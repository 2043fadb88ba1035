"""Visma → Stripe over real HTTP, both emulators live: a released Visma invoice marked for Stripe becomes one Stripe
invoice (customer matched by metadata or description, or created when the tenant allows; finalized, sent), no match,
two matches or a customer billed in another currency is flagged with nothing created, a retry never makes a second
one, an invoice in a currency the account does not collect is flagged, and a sent invoice whose billed terms
change in Visma is flagged, not re-sent."""
import pytest

from audit.models import SyncRecord
from connectors.pipeline import stream_for, stream_poll
from connectors.services import integration_save
from mappings.documents import Posting
from sandbox.models import StripeObject, VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.stripe_api import customer_create
from sandbox.visma_erp import customer_invoice_create, customer_invoice_update
from tests.e2e.test_stripe_payments import world  # noqa: F401


def _visma_invoice(number: str, customer: str, currency: str, lines: list[tuple[str, str]], *, marker="STRIPE"):
    document = customer_invoice_create(VISMA_SANDBOX_COMPANY_ID, {
        "overrideNumberSeries": {"value": True}, "referenceNumber": {"value": number},
        "customerNumber": {"value": customer}, "currencyId": {"value": currency},
        "customerRefNumber": {"value": marker}, "invoiceText": {"value": f"Order {number}"},
        "invoiceLines": [{"operation": "Insert", "accountNumber": {"value": "3000"}, "description": {"value": text},
                          "quantity": {"value": 1}, "unitPriceInCurrency": {"value": float(amount)}}
                         for text, amount in lines],
    })
    document.body["status"] = "Open"
    document.save(update_fields=["body"])
    return document


@pytest.fixture
def collecting(world):  # noqa: F811
    world.integration.settings = {**world.integration.settings, "collect_field": "customerRefNumber",
                                  "collect_currencies": ["EUR", "NOK", "SEK"], "create_customers": True}
    integration_save(world.integration)
    return world


def _stripe(object_type):
    return [row.body for row in StripeObject.objects.filter(object_type=object_type).order_by("pk")]


def test_a_marked_visma_invoice_becomes_one_sent_stripe_invoice(collecting):
    # given
    _visma_invoice("200001", "10004", "EUR", [("Tent", "120.00"), ("Pegs", "9.90")])
    _visma_invoice("200002", "10004", "EUR", [("Stove", "45.00")], marker="")

    # when
    run = stream_poll(collecting.integration, "visma_invoices")

    # then
    assert run.status == "completed"
    record = collecting.record("visma_invoices", "200001")
    [invoice] = _stripe("invoice")
    assert (record.status, record.target_id) == ("posted", invoice["id"])
    assert (invoice["status"], invoice["currency"], invoice["amount_due"], invoice["metadata"]) == (
        "open", "eur", 12990, {"visma_invoice": "200001", "visma_customer": "10004"})
    assert [(line["description"], line["amount"]) for line in invoice["lines"]["data"]] == [
        ("Tent", 12000), ("Pegs", 990)]
    [customer] = _stripe("customer")
    assert (invoice["customer"], customer["metadata"]) == (customer["id"], {"visma_customer": "10004"})
    assert [event["type"] for event in _stripe("event")] == ["customer.created", "invoice.created",
                                                             "invoice.finalized", "invoice.sent"]


def test_the_stripe_customer_is_found_by_its_visma_number_not_created_again(collecting):
    # given
    existing = customer_create(collecting.account, {"name": "Helsinki Trail Oy",
                                                    "metadata": {"visma_customer": "10004"}})
    _visma_invoice("200003", "10004", "EUR", [("Tent", "120.00")])

    # when
    stream_poll(collecting.integration, "visma_invoices")

    # then
    [invoice] = _stripe("invoice")
    assert invoice["customer"] == existing["id"]
    assert len(_stripe("customer")) == 1


def test_a_retried_write_never_makes_a_second_stripe_invoice(collecting):
    # given: the invoice was written, then the record is read and written again (a crash before it was marked)
    _visma_invoice("200004", "10004", "EUR", [("Tent", "120.00")])
    stream_poll(collecting.integration, "visma_invoices")
    record = collecting.record("visma_invoices", "200004")
    stream = stream_for(collecting.integration, "visma_invoices")

    # when
    again = stream.write(Posting.from_json(record.proposed_posting), record)

    # then
    assert (again.kind, again.target_id) == ("stripe_invoice", record.target_id)
    assert len(_stripe("invoice")) == 1
    assert len(_stripe("invoiceitem")) == 1
    assert stream.find_posted(Posting.from_json(record.proposed_posting), record) == again


def test_an_invoice_in_a_currency_the_account_does_not_collect_is_flagged(collecting):
    # given: 10001 is a SEK customer; the account collects EUR, NOK and SEK only
    collecting.integration.settings = {**collecting.integration.settings, "collect_currencies": ["EUR"]}
    integration_save(collecting.integration)
    _visma_invoice("200005", "10001", "SEK", [("Boots", "500.00")])

    # when
    stream_poll(collecting.integration, "visma_invoices")

    # then
    record = collecting.record("visma_invoices", "200005")
    assert record.status == "flagged"
    assert record.reasons == ["Visma invoice 200005 is in SEK; this Stripe account collects EUR"]
    assert _stripe("invoice") == []
    assert VismaDocument.objects.filter(collection="customer_invoice", key="200005").count() == 1


def _visma_invoice_change(number: str, dto: dict) -> None:
    customer_invoice_update(VISMA_SANDBOX_COMPANY_ID, number, dto, if_match=None)


def test_a_sent_invoice_whose_lines_change_in_visma_is_flagged_naming_the_change_not_re_sent(collecting):
    # given: 200006 was sent to Stripe, then a line is added in Visma
    _visma_invoice("200006", "10004", "EUR", [("Tent", "120.00"), ("Pegs", "9.90")])
    stream_poll(collecting.integration, "visma_invoices")
    sent = collecting.record("visma_invoices", "200006")
    _visma_invoice_change("200006", {"invoiceLines": [
        {"operation": "Insert", "accountNumber": {"value": "3000"}, "description": {"value": "Stove"},
         "quantity": {"value": 1}, "unitPriceInCurrency": {"value": 45.0}}]})

    # when
    run = stream_poll(collecting.integration, "visma_invoices")
    again = stream_poll(collecting.integration, "visma_invoices")

    # then
    [changed] = SyncRecord.objects.filter(integration=collecting.integration, stream="visma_invoices",
                                          source_id__startswith="200006:changed:")
    assert changed.status == "flagged"
    assert changed.reasons == [
        (f"visma_invoices {changed.source_id}: Visma invoice 200006 changed after it was sent to Stripe as "
         f"{sent.target_id} (amount 129.90 → 174.90; lines changed (2 → 3 lines)): not re-sent; correct the Stripe "
         "invoice by hand (void and send a new one) or undo the change in Visma")]
    assert (run.flagged, again.flagged, again.skipped) == (1, 0, 1)
    assert collecting.record("visma_invoices", "200006").status == "posted"
    [invoice] = _stripe("invoice")
    assert (invoice["id"], invoice["amount_due"]) == (sent.target_id, 12990)
    assert [event["type"] for event in _stripe("event")].count("invoice.sent") == 1


def test_a_sent_invoice_whose_due_date_changes_in_visma_is_flagged_naming_the_dates(collecting):
    # given
    document = _visma_invoice("200007", "10004", "EUR", [("Tent", "120.00")])
    due_before = document.body["documentDueDate"][:10]
    stream_poll(collecting.integration, "visma_invoices")
    _visma_invoice_change("200007", {"documentDueDate": {"value": "2031-01-31T00:00:00"}})

    # when
    stream_poll(collecting.integration, "visma_invoices")

    # then
    [changed] = SyncRecord.objects.filter(integration=collecting.integration, source_id__startswith="200007:changed:")
    assert changed.status == "flagged"
    assert f"(due date {due_before} → 2031-01-31)" in changed.reasons[0]
    assert len(_stripe("invoice")) == 1


def test_a_sent_invoice_re_read_with_only_its_note_changed_is_skipped(collecting):
    # given
    _visma_invoice("200008", "10004", "EUR", [("Tent", "120.00")])
    stream_poll(collecting.integration, "visma_invoices")
    _visma_invoice_change("200008", {"note": {"value": "Customer asked for a copy"}})

    # when
    run = stream_poll(collecting.integration, "visma_invoices")

    # then
    assert (run.fetched, run.skipped, run.flagged, run.posted) == (1, 1, 0, 0)
    assert list(SyncRecord.objects.filter(integration=collecting.integration).values_list("source_id", "status")) == [
        ("200008", "posted")]
    assert len(_stripe("invoice")) == 1


@pytest.fixture
def matching(collecting):
    collecting.integration.settings = {**collecting.integration.settings, "create_customers": False}
    integration_save(collecting.integration)
    return collecting


def _settings_change(invoicing, **changes) -> None:
    invoicing.integration.settings = {**invoicing.integration.settings, **changes}
    integration_save(invoicing.integration)


def test_the_stripe_customer_is_found_by_its_description_being_the_visma_customers_name(matching):
    # given: the Stripe customer carries no Visma number, only the name as its description
    _settings_change(matching, customer_match="description")
    customer_create(matching.account, {"name": "Helsinki Trail", "description": "Helsinki Trail Oyj"})
    existing = customer_create(matching.account, {"name": "Helsinki Trail", "description": "Helsinki Trail Oy"})
    _visma_invoice("200101", "10004", "EUR", [("Tent", "120.00")])

    # when
    stream_poll(matching.integration, "visma_invoices")

    # then
    assert matching.record("visma_invoices", "200101").status == "posted"
    [invoice] = _stripe("invoice")
    assert invoice["customer"] == existing["id"]
    assert len(_stripe("customer")) == 2


def test_the_stripe_customer_is_found_by_the_configured_metadata_key(matching):
    # given
    _settings_change(matching, customer_metadata_key="erp_number")
    customer_create(matching.account, {"name": "Other", "metadata": {"visma_customer": "10004"}})
    existing = customer_create(matching.account, {"name": "Helsinki Trail", "metadata": {"erp_number": "10004"}})
    _visma_invoice("200102", "10004", "EUR", [("Tent", "120.00")])

    # when
    stream_poll(matching.integration, "visma_invoices")

    # then
    [invoice] = _stripe("invoice")
    assert (matching.record("visma_invoices", "200102").status, invoice["customer"]) == ("posted", existing["id"])
    assert len(_stripe("customer")) == 2


def test_no_matching_stripe_customer_is_flagged_and_none_created_when_creation_is_not_allowed(matching):
    # given
    _settings_change(matching, customer_match="description")
    customer_create(matching.account, {"name": "Helsinki Trail Oy", "description": "Visma customer 10004"})
    _visma_invoice("200103", "10004", "EUR", [("Tent", "120.00")])

    # when
    run = stream_poll(matching.integration, "visma_invoices")

    # then
    record = matching.record("visma_invoices", "200103")
    assert (record.status, run.flagged) == ("flagged", 1)
    assert record.reasons == [("no Stripe customer matches Visma customer 10004 Helsinki Trail Oy by description: "
                               "create it in Stripe or allow creation")]
    assert len(_stripe("customer")) == 1
    assert _stripe("invoice") == []


def test_no_matching_stripe_customer_is_created_once_and_reused_by_the_next_invoice_when_allowed(collecting):
    # given
    _visma_invoice("200104", "10004", "EUR", [("Tent", "120.00")])
    _visma_invoice("200105", "10004", "EUR", [("Stove", "45.00")])

    # when
    run = stream_poll(collecting.integration, "visma_invoices")

    # then
    assert run.posted == 2
    [customer] = _stripe("customer")
    assert (customer["name"], customer["metadata"]) == ("Helsinki Trail Oy", {"visma_customer": "10004"})
    assert [invoice["customer"] for invoice in _stripe("invoice")] == [customer["id"], customer["id"]]


def test_two_matching_stripe_customers_are_flagged_naming_both(matching):
    # given
    first = customer_create(matching.account, {"name": "Helsinki Trail Oy", "metadata": {"visma_customer": "10004"}})
    second = customer_create(matching.account, {"name": "Helsinki Trail", "metadata": {"visma_customer": "10004"}})
    _visma_invoice("200106", "10004", "EUR", [("Tent", "120.00")])

    # when
    stream_poll(matching.integration, "visma_invoices")

    # then
    record = matching.record("visma_invoices", "200106")
    assert record.status == "flagged"
    assert record.reasons == [(f"2 Stripe customers match Visma customer 10004 Helsinki Trail Oy by metadata "
                               f"visma_customer ({second['id']}, {first['id']}): keep one, or match another way")]
    assert _stripe("invoice") == []
    assert len(_stripe("customer")) == 2


def test_a_stripe_customer_billed_in_another_currency_is_flagged_and_no_invoice_created(matching):
    # given: Stripe fixed the customer's currency at an earlier SEK invoice
    existing = customer_create(matching.account, {"name": "Helsinki Trail Oy", "metadata": {"visma_customer": "10004"}})
    row = StripeObject.objects.get(stripe_id=existing["id"])
    row.body["currency"] = "sek"
    row.save(update_fields=["body"])
    _visma_invoice("200107", "10004", "EUR", [("Tent", "120.00")])

    # when
    stream_poll(matching.integration, "visma_invoices")

    # then
    record = matching.record("visma_invoices", "200107")
    assert record.status == "flagged"
    assert record.reasons == [(f"Stripe customer {existing['id']} of Visma customer 10004 Helsinki Trail Oy is "
                               "billed in SEK; Visma invoice 200107 is in EUR")]
    assert _stripe("invoice") == []
    assert _stripe("invoiceitem") == []
    assert len(_stripe("customer")) == 1
