"""The pure parts of the Stripe streams: Stripe's smallest-unit amounts, Visma field text, the collection criterion,
what counts as a change to a Visma invoice already sent to Stripe, how the Stripe customer of a Visma invoice is
matched."""
from datetime import date
from decimal import Decimal

import pytest
import stripe

from connectors.errors import PermanentError
from connectors.pipeline import SourceDataError
from connectors.stripe.flows import (
    RefundsStream,
    VismaInvoicesStream,
    stripe_amount,
    stripe_customer_match,
    visma_billed_changes,
    visma_billed_terms,
    visma_field_text,
)
from mappings.documents import MatchFacts, Posting
from tests.factories import IntegrationFactory
from tests.factories import hand_marker


@pytest.mark.parametrize("minor, currency, amount", [
    (5000, "JPY", Decimal("5000")),
    (125000, "NOK", Decimal("1250.00")),
    (1, "EUR", Decimal("0.01")),
    (1234, "KWD", Decimal("1.234")),
])
def test_stripe_amounts_are_in_the_currencys_smallest_unit(minor, currency, amount):
    # then
    assert stripe_amount(minor, currency, field="amount") == amount


@pytest.mark.parametrize("minor", ["5000", 50.0, True, None])
def test_an_amount_that_is_not_an_integer_is_refused(minor):
    # when
    with pytest.raises(SourceDataError) as raised:
        stripe_amount(minor, "NOK", field="amount")

    # then
    assert str(raised.value) == f"amount {minor!r} is not an integer amount"


def test_a_visma_reference_reads_as_its_id_and_plain_values_as_text():
    # then
    assert visma_field_text({"id": "STRIPE", "description": "Card via Stripe"}) == "STRIPE"
    assert visma_field_text("stripe-card") == "stripe-card"
    assert visma_field_text(None) == ""


@pytest.mark.parametrize("settings, invoice, collected", [
    ({}, {"paymentMethod": {"id": "STRIPE"}}, True),
    ({}, {"paymentMethod": {"id": "GIRO"}}, False),
    ({"collect_field": "customerRefNumber", "collect_value": "stripe"}, {"customerRefNumber": "STRIPE-42"}, True),
    ({"collect_field": "customerRefNumber", "collect_value": "stripe"}, {"customerRefNumber": None}, False),
])
def test_the_collection_criterion_is_configurable(db, settings, invoice, collected):
    # given
    integration = IntegrationFactory(kind="stripe", settings=settings)

    # then
    assert VismaInvoicesStream(integration).is_for_stripe(invoice) is collected


SENT = {"referenceNumber": "200001", "currencyId": "EUR", "amountInCurrency": 129.9, "vatTotalInCurrency": 0.0,
        "documentDueDate": "2026-06-30T00:00:00", "balanceInCurrency": 129.9, "status": "Open", "note": None,
        "invoiceLines": [{"description": "Tent", "amountInCurrency": 120.0},
                         {"description": "Pegs", "amountInCurrency": 9.9}]}


def test_balance_status_and_note_are_not_billed_terms():
    # given
    paid_in_part = {**SENT, "balanceInCurrency": 29.9, "status": "Closed", "note": "Called",
                    "amountInCurrency": "129.90"}

    # then
    assert visma_billed_terms(paid_in_part) == visma_billed_terms(SENT)
    assert visma_billed_changes(visma_billed_terms(SENT), visma_billed_terms(paid_in_part)) == []


def test_each_changed_billed_term_is_named_with_before_and_after():
    # given
    changed = {**SENT, "currencyId": "SEK", "documentDueDate": "2026-07-31T00:00:00",
               "invoiceLines": [{"description": "Tent (green)", "amountInCurrency": 120.0},
                                {"description": "Pegs", "amountInCurrency": 9.9}]}

    # then
    assert visma_billed_changes(visma_billed_terms(SENT), visma_billed_terms(changed)) == [
        "currency EUR → SEK", "due date 2026-06-30 → 2026-07-31", "lines changed (2 → 2 lines)"]


class StripeCustomers:
    """The customer calls of StripeApi over a fixed list; every search and create is kept."""

    def __init__(self, *customers: dict):
        self.customers = [stripe.Customer.construct_from(customer, "sk_test") for customer in customers]
        self.queries: list[str] = []
        self.created: list[dict] = []

    def customers_search(self, query: str) -> list[stripe.Customer]:
        self.queries.append(query)
        return list(self.customers)

    def customer_create(self, params: dict, *, idempotency_key: str) -> stripe.Customer:
        self.created.append(params)
        return stripe.Customer.construct_from({"id": "cus_new", **params}, "sk_test")


def _invoice_stream(settings: dict, *customers: dict) -> tuple[VismaInvoicesStream, StripeCustomers]:
    stream = VismaInvoicesStream(IntegrationFactory(kind="stripe", settings=settings))
    api = StripeCustomers(*customers)
    stream.__dict__["stripe"] = api
    return stream, api


INVOICE = Posting(document="stripe_invoice", marker=hand_marker("visma-invoice-200001"), currency="EUR",
                  date=date(2026, 6, 1),
                  description="Order 200001", customer="10004",
                  facts=MatchFacts(transaction_type="invoice", amount=Decimal("129.90"), currency="EUR"),
                  extra={"invoice_number": "200001", "lines": [], "customer_name": "Helsinki Trail Oy",
                         "due_date": "2026-06-30"})


@pytest.mark.parametrize("settings, query, how", [
    ({}, "metadata['visma_customer']:'10004'", "metadata visma_customer"),
    ({"customer_match": "metadata", "customer_metadata_key": "erp"}, "metadata['erp']:'10004'", "metadata erp"),
    ({"customer_match": "description"}, "description:'O\\'Neill \\\\ Sons'", "description"),
])
def test_the_stripe_customer_search_follows_the_configured_match(settings, query, how):
    # when
    match = stripe_customer_match(settings, number="10004", name="O'Neill \\ Sons")

    # then
    assert (match.query, match.how) == (query, how)


def test_an_unknown_customer_match_is_refused_naming_it():
    # when
    with pytest.raises(ValueError) as raised:
        stripe_customer_match({"customer_match": "email"}, number="10004", name="Helsinki Trail Oy")

    # then
    assert str(raised.value) == "customer_match 'email' is neither metadata nor description"


def test_a_customer_matched_by_description_is_used(db):
    # given
    stream, api = _invoice_stream({"customer_match": "description"},
                                  {"id": "cus_A", "description": "Helsinki Trail Oy", "currency": "eur"})

    # when
    problems = stream.problems(INVOICE)
    customer = stream._stripe_customer(INVOICE)

    # then
    assert (problems, customer) == ([], "cus_A")
    assert api.queries == ["description:'Helsinki Trail Oy'"] * 2
    assert api.created == []


def test_a_customer_matched_by_metadata_is_used(db):
    # given
    stream, api = _invoice_stream({}, {"id": "cus_A", "metadata": {"visma_customer": "10004"}, "currency": None})

    # when
    problems = stream.problems(INVOICE)
    customer = stream._stripe_customer(INVOICE)

    # then
    assert (problems, customer) == ([], "cus_A")
    assert api.queries == ["metadata['visma_customer']:'10004'"] * 2
    assert api.created == []


def test_no_match_is_flagged_and_nothing_created_when_creation_is_not_allowed(db):
    # given
    stream, api = _invoice_stream({"customer_match": "description", "create_customers": False})

    # when
    problems = stream.problems(INVOICE)
    with pytest.raises(PermanentError) as raised:
        stream._stripe_customer(INVOICE)

    # then
    expected = ("no Stripe customer matches Visma customer 10004 Helsinki Trail Oy by description: create it in "
                "Stripe or allow creation")
    assert problems == [expected]
    assert str(raised.value) == expected
    assert api.created == []


def test_no_match_creates_the_customer_with_the_metadata_key_when_creation_is_allowed(db):
    # given
    stream, api = _invoice_stream({"create_customers": True, "customer_metadata_key": "erp"})
    stream.__dict__["visma_client"] = type("Visma", (), {"get_one": lambda self, path: {
        "name": "Helsinki Trail Oy", "mainContact": {"email": "info@helsinki-trail.example"}}})()

    # when
    problems = stream.problems(INVOICE)
    customer = stream._stripe_customer(INVOICE)

    # then
    assert (problems, customer) == ([], "cus_new")
    assert api.created == [{"name": "Helsinki Trail Oy", "description": "Visma customer 10004",
                            "metadata": {"erp": "10004"}, "email": "info@helsinki-trail.example"}]


def test_two_matches_are_flagged_naming_both(db):
    # given
    stream, api = _invoice_stream({"create_customers": True}, {"id": "cus_B"}, {"id": "cus_A"})

    # when
    problems = stream.problems(INVOICE)

    # then
    assert problems == [("2 Stripe customers match Visma customer 10004 Helsinki Trail Oy by metadata visma_customer "
                         "(cus_B, cus_A): keep one, or match another way")]
    assert api.created == []


def test_a_customer_billed_in_another_currency_is_flagged_naming_both(db):
    # given
    stream, api = _invoice_stream({}, {"id": "cus_A", "currency": "sek"})

    # when
    problems = stream.problems(INVOICE)
    with pytest.raises(PermanentError):
        stream._stripe_customer(INVOICE)

    # then
    assert problems == [("Stripe customer cus_A of Visma customer 10004 Helsinki Trail Oy is billed in SEK; Visma "
                         "invoice 200001 is in EUR")]
    assert api.created == []


def _refund(balance_transaction) -> dict:
    return {"id": "re_1", "amount": 6000, "currency": "eur", "balance_transaction": balance_transaction}


@pytest.mark.parametrize("fee, net, returned", [(0, -6000, Decimal("0.00")), (-187, -5813, Decimal("1.87"))])
def test_the_fee_stripe_returns_with_a_refund_is_read_from_its_balance_transaction(fee, net, returned):
    # given: spec3.yaml balance_transaction: net = amount − fee; a negative fee is a fee returned
    refund = _refund({"id": "txn_1", "amount": -6000, "fee": fee, "net": net, "currency": "eur"})

    # then
    assert RefundsStream._fee_returned(refund, Decimal("60.00"), "EUR") == returned


@pytest.mark.parametrize("balance_transaction, message", [
    (None, "refund re_1 has no balance transaction (fee returned unknown)"),
    ("txn_1", "refund re_1 has no balance transaction (fee returned unknown)"),
    ({"id": "txn_1", "amount": -6000, "fee": 0, "net": -6000, "currency": "usd"},
     "refund re_1 in EUR was settled in USD: a converted refund needs a person"),
    ({"id": "txn_1", "amount": -6000, "fee": 50, "net": -6050, "currency": "eur"},
     "refund re_1 of 60.00 EUR: its balance transaction moved -60.00, fee 0.50, net -60.50"),
    ({"id": "txn_1", "amount": -5000, "fee": 0, "net": -5000, "currency": "eur"},
     "refund re_1 of 60.00 EUR: its balance transaction moved -50.00, fee 0.00, net -50.00"),
])
def test_a_refund_whose_balance_transaction_does_not_fit_it_is_refused(balance_transaction, message):
    # when
    with pytest.raises(SourceDataError) as refused:
        RefundsStream._fee_returned(_refund(balance_transaction), Decimal("60.00"), "EUR")

    # then
    assert str(refused.value) == message
