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
    stripe_line_tax,
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


SENT = {"referenceNumber": "200001", "currencyId": "EUR", "exchangeRate": 1.0, "amount": 129.9,
        "amountInCurrency": 129.9, "detailTotal": 129.9, "detailTotalInCurrency": 129.9, "vatTotal": 0.0,
        "vatTotalInCurrency": 0.0, "documentDueDate": "2026-06-30T00:00:00", "balance": 129.9,
        "balanceInCurrency": 129.9, "status": "Open", "note": None,
        "invoiceLines": [{"description": "Tent", "amount": 120.0, "amountInCurrency": 120.0},
                         {"description": "Pegs", "amount": 9.9, "amountInCurrency": 9.9}]}


def _terms(invoice: dict) -> dict:
    return visma_billed_terms(invoice, base_currency="EUR")


def test_balance_status_and_note_are_not_billed_terms():
    # given
    paid_in_part = {**SENT, "balance": 29.9, "balanceInCurrency": 29.9, "status": "Closed", "note": "Called",
                    "amountInCurrency": "129.90"}

    # then
    assert _terms(paid_in_part) == _terms(SENT)
    assert visma_billed_changes(_terms(SENT), _terms(paid_in_part)) == []


def test_each_changed_billed_term_is_named_with_before_and_after():
    # given
    changed = {**SENT, "currencyId": "SEK", "documentDueDate": "2026-07-31T00:00:00",
               "invoiceLines": [{"description": "Tent (green)", "amount": 120.0, "amountInCurrency": 120.0},
                                {"description": "Pegs", "amount": 9.9, "amountInCurrency": 9.9}]}

    # then
    assert visma_billed_changes(_terms(SENT), _terms(changed)) == [
        "currency EUR → SEK", "due date 2026-06-30 → 2026-07-31", "lines changed (2 → 2 lines)"]


def test_vat_added_to_a_sent_invoice_is_a_change_of_amount_and_vat():
    # given: 25 % VAT on both lines added in Visma after the invoice was sent
    with_vat = {**SENT, "vatTotal": 32.48, "vatTotalInCurrency": 32.48, "amount": 162.38,
                "amountInCurrency": 162.38, "balance": 162.38, "balanceInCurrency": 162.38}

    # then
    assert visma_billed_changes(_terms(SENT), _terms(with_vat)) == ["amount 129.90 → 162.38", "VAT 0.00 → 32.48"]


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


def _draft(subtotal: int, taxes: list[int], total: int) -> stripe.Invoice:
    return stripe.Invoice.construct_from({
        "id": "in_draft", "object": "invoice", "status": "draft", "subtotal": subtotal, "total": total,
        "total_taxes": [{"amount": amount, "tax_behavior": "exclusive", "type": "tax_rate_details",
                         "tax_rate_details": {"tax_rate": "txr_1"}, "taxable_amount": subtotal} for amount in taxes]},
        "sk_test")


def _billing(subtotal: str, vat: str, total: str) -> Posting:
    return Posting(document="stripe_invoice", marker=hand_marker("visma-invoice-300001"), currency="NOK",
                   date=date(2026, 5, 4), description="Order 300001", customer="10002",
                   facts=MatchFacts(transaction_type="invoice", amount=Decimal(total), currency="NOK"),
                   extra={"invoice_number": "300001", "subtotal": subtotal, "vat": vat, "total": total})


def test_a_draft_billing_what_visma_bills_passes_the_totals_check():
    # then: no error
    VismaInvoicesStream._totals_check(_draft(80000, [20000], 100000), _billing("800.00", "200.00", "1000.00"))


def test_a_draft_whose_totals_differ_from_visma_is_not_finalized():
    # when
    with pytest.raises(PermanentError) as refused:
        VismaInvoicesStream._totals_check(_draft(80000, [20100], 100100), _billing("800.00", "200.00", "1000.00"))

    # then
    assert str(refused.value) == (
        "Stripe invoice in_draft bills subtotal/tax/total 80000/20100/100100, Visma invoice 300001 80000/20000/100000 "
        "(smallest units of NOK): left as a draft, not sent")


@pytest.mark.parametrize("net, percent, currency, tax", [
    (Decimal("800.00"), Decimal("25"), "NOK", Decimal("200.00")),
    (Decimal("0.35"), Decimal("25"), "EUR", Decimal("0.09")),
    (Decimal("8000"), Decimal("25"), "JPY", Decimal("2000")),
    (Decimal("333"), Decimal("12.5"), "JPY", Decimal("42")),
])
def test_the_tax_stripe_puts_on_a_line_is_rounded_to_the_smallest_unit(net, percent, currency, tax):
    # then
    assert stripe_line_tax(net, percent, currency) == tax


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
