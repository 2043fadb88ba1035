"""The resolver (which rule, which accounts and dimensions) and the validator (against the Visma mirror)."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from mappings.documents import MatchFacts, Posting, PostingLine, posting_apply_correction
from mappings.models import GLMappingRule
from mappings.services import (
    mapping_rule_resolve,
    mapping_rule_validate,
    mapping_rules_revalidate,
    posting_map,
    posting_validate,
)
from tests.factories import DimensionValueFactory, GLAccountFactory, GLMappingRuleFactory, TenantFactory
from tests.factories import hand_marker

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def posting(amount="100.00", currency="EUR", *, fee="0", transaction_type="capture", group="", method="",
            customer="", payer="") -> Posting:
    gross, fee = Decimal(amount), Decimal(fee)
    lines = [PostingLine(role="clearing", debit=gross - fee), PostingLine(role="account", credit=gross)]
    if fee:
        lines.insert(1, PostingLine(role="fee", debit=fee))
    return Posting(
        document="journal", marker=hand_marker("P-1"), currency=currency, date=date(2026, 11, 2),
        description="Payment P-1",
        facts=MatchFacts(transaction_type=transaction_type, amount=gross, currency=currency, customer_group=group,
                         payment_method=method, customer=customer, payer=payer),
        lines=lines, customer=customer,
    )


def resolved(tenant, the_posting, system="paypal") -> str | None:
    rule = mapping_rule_resolve(tenant=tenant, system=system, posting=the_posting)
    return rule.name if rule else None


# --- which rule ------------------------------------------------------------------------------------------------


def test_the_rule_with_the_lowest_priority_number_wins():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="general", priority=100)
    GLMappingRuleFactory(tenant=tenant, name="specific", priority=10)
    GLMappingRuleFactory(tenant=tenant, name="late", priority=200)

    # then
    assert resolved(tenant, posting()) == "specific"


def test_between_equal_priorities_the_older_rule_wins():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="first", priority=50)
    GLMappingRuleFactory(tenant=tenant, name="second", priority=50)

    # then
    assert resolved(tenant, posting()) == "first"


def test_the_transaction_type_must_match_and_an_empty_type_matches_any():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="refunds", priority=1, transaction_type="refund")
    GLMappingRuleFactory(tenant=tenant, name="anything", priority=2, transaction_type="")

    # then
    assert resolved(tenant, posting(transaction_type="refund")) == "refunds"
    assert resolved(tenant, posting(transaction_type="capture")) == "anything"


def test_the_currency_must_match_whatever_its_case():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="euro", priority=1, currency="eur")

    # then
    assert resolved(tenant, posting(currency="EUR")) == "euro"
    assert resolved(tenant, posting(currency="USD")) is None


@pytest.mark.parametrize(
    ("amount", "name"),
    [("99.99", None), ("100.00", "mid-size"), ("250.00", "mid-size"), ("500.00", "mid-size"), ("500.01", None),
     ("-100.00", "mid-size"), ("-500.01", None)],
)
def test_the_amount_range_includes_both_bounds_and_compares_the_size_of_the_amount(amount, name):
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="mid-size", min_amount=Decimal("100.00"), max_amount=Decimal("500.00"))

    # then
    assert resolved(tenant, posting(amount=amount)) == name


def test_an_open_ended_range_bounds_one_side_only():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="large", priority=1, min_amount=Decimal("1000"))
    GLMappingRuleFactory(tenant=tenant, name="small", priority=2, max_amount=Decimal("999.99"))

    # then
    assert resolved(tenant, posting(amount="1000.00")) == "large"
    assert resolved(tenant, posting(amount="999.99")) == "small"


def test_the_customer_group_must_match():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="wholesale", priority=1, customer_group="wholesale")
    GLMappingRuleFactory(tenant=tenant, name="everyone else", priority=2)

    # then
    assert resolved(tenant, posting(group="wholesale")) == "wholesale"
    assert resolved(tenant, posting(group="retail")) == "everyone else"
    assert resolved(tenant, posting(group="")) == "everyone else"


def test_a_rule_for_one_customer_wins_over_a_group_rule_whatever_their_priorities():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="wholesale", priority=1, customer_group="wholesale")
    GLMappingRuleFactory(tenant=tenant, name="Fjordline only", priority=50, customer="10002")
    GLMappingRuleFactory(tenant=tenant, name="everyone else", priority=100)

    # then
    assert resolved(tenant, posting(group="wholesale", customer="10002")) == "Fjordline only"
    assert resolved(tenant, posting(group="wholesale", customer="10003")) == "wholesale"
    assert resolved(tenant, posting(group="retail", customer="10003")) == "everyone else"


def test_a_rule_for_one_payer_matches_its_payer_id_or_its_email_whatever_its_case():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="all captures", priority=1, transaction_type="capture")
    GLMappingRuleFactory(tenant=tenant, name="payer M3XK", priority=90, payer="M3XK8D2QJRB5P")
    GLMappingRuleFactory(tenant=tenant, name="payer Anna", priority=91, payer="anna@example.se")

    # then
    assert resolved(tenant, posting(payer="M3XK8D2QJRB5P")) == "payer M3XK"
    assert resolved(tenant, posting(payer="m3xk8d2qjrb5p")) == "all captures"
    assert resolved(tenant, posting(payer="Anna@Example.se")) == "payer Anna"
    assert resolved(tenant, posting(payer="")) == "all captures"


def test_a_customer_rule_still_needs_its_other_conditions():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="Fjordline refunds", priority=1, customer="10002",
                         transaction_type="refund")
    GLMappingRuleFactory(tenant=tenant, name="captures", priority=2, transaction_type="capture")

    # then
    assert resolved(tenant, posting(customer="10002")) == "captures"


def test_the_payment_method_must_match():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="cards", payment_method="card")

    # then
    assert resolved(tenant, posting(method="card")) == "cards"
    assert resolved(tenant, posting(method="sepa_debit")) is None


def test_every_condition_must_hold_at_once():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="eur card captures", transaction_type="capture", currency="EUR",
                         payment_method="card", customer_group="retail", min_amount=Decimal("1"))

    # then
    assert resolved(tenant, posting(method="card", group="retail")) == "eur card captures"
    assert resolved(tenant, posting(method="card", group="retail", currency="SEK")) is None
    assert resolved(tenant, posting(method="card", group="retail", amount="0.50")) is None


def test_an_inactive_rule_and_rules_of_other_tenants_and_systems_are_ignored():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="switched off", priority=1, is_active=False)
    GLMappingRuleFactory(tenant=tenant, name="stripe", priority=2, system="stripe")
    GLMappingRuleFactory(tenant=TenantFactory(), name="other tenant", priority=3)
    GLMappingRuleFactory(tenant=tenant, name="the one", priority=4)

    # then
    assert resolved(tenant, posting()) == "the one"
    assert resolved(tenant, posting(), system="stripe") == "stripe"


# --- mapping a posting -----------------------------------------------------------------------------------------


def test_mapping_fills_each_line_from_the_rule_by_role_and_a_lines_own_dimension_wins():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="captures", gl_account="3000", fee_account="7770",
                         clearing_account="1920", dimensions={"1": "100", 2: "P-42"})
    the_posting = posting(fee="3.40")
    the_posting.lines[0].dimensions = {"1": "200"}

    # when
    outcome = posting_map(tenant=tenant, system="paypal", posting=the_posting)

    # then
    assert (outcome.rule.name, outcome.problems, outcome.posting.rule) == ("captures", [], "captures")
    assert [(line.role, line.account, line.dimensions) for line in outcome.posting.lines] == [
        ("clearing", "1920", {"1": "200", "2": "P-42"}),
        ("fee", "7770", {"1": "100", "2": "P-42"}),
        ("account", "3000", {"1": "100", "2": "P-42"}),
    ]


def test_mapping_names_a_missing_account_on_the_rule():
    # given
    tenant = TenantFactory()
    GLMappingRuleFactory(tenant=tenant, name="captures", clearing_account="")

    # when
    outcome = posting_map(tenant=tenant, system="paypal", posting=posting())

    # then
    assert outcome.problems == [
        "Mapping rule 'captures' has no clearing account but the posting has a clearing line: set the clearing "
        "account on the rule."
    ]
    assert [line.account for line in outcome.posting.lines] == ["", "3000"]


def test_mapping_without_a_rule_says_what_to_add():
    # given
    tenant = TenantFactory()

    # when
    outcome = posting_map(tenant=tenant, system="paypal", posting=posting(amount="12.00", currency="SEK"))

    # then
    assert outcome.rule is None
    assert outcome.problems == [
        "No active paypal mapping rule matches capture of 12.00 SEK: add a GL mapping rule for it, or approve with "
        "the accounts to use."
    ]


def test_a_correction_changes_accounts_dimensions_and_customer_but_never_amounts():
    # given
    the_posting = posting(fee="3.40")
    for line, account in zip(the_posting.lines, ("1920", "7770", "3000"), strict=True):
        line.account = account

    # when
    corrected = posting_apply_correction(
        the_posting, {"accounts": {"account": "3010"}, "dimensions": {1: 100}, "customer": "10001"}
    )

    # then
    assert [(line.account, line.debit, line.credit, line.dimensions) for line in corrected.lines] == [
        ("1920", Decimal("96.60"), Decimal("0"), {"1": "100"}),
        ("7770", Decimal("3.40"), Decimal("0"), {"1": "100"}),
        ("3010", Decimal("0"), Decimal("100.00"), {"1": "100"}),
    ]
    assert corrected.customer == "10001"


def test_a_posting_survives_the_round_trip_through_json():
    # given
    the_posting = posting(fee="3.40", customer="10001")
    the_posting.lines[0].dimensions = {"1": "100"}

    # when
    again = Posting.from_json(the_posting.to_json())

    # then
    assert again == the_posting
    assert the_posting.to_json()["lines"][1]["debit"] == "3.40"


# --- validating a posting --------------------------------------------------------------------------------------


def mapped(tenant, **kwargs) -> Posting:
    the_posting = posting(**kwargs)
    for line in the_posting.lines:
        line.account = {"clearing": "1920", "fee": "7770", "account": "3000"}[line.role]
    return the_posting


def mirror(tenant, *numbers, inactive=()):
    for number in numbers:
        GLAccountFactory(tenant=tenant, number=number, active=number not in inactive)


def test_a_valid_posting_has_no_problems():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920", "7770", "3000")

    # then
    assert posting_validate(tenant=tenant, posting=mapped(tenant, fee="3.40")) == []


def test_a_journal_line_on_an_ar_or_ap_control_account_is_refused_naming_the_account_and_line():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920", "7770")
    GLAccountFactory(tenant=tenant, number="1510", control_account_module="AR")
    GLMappingRuleFactory(tenant=tenant, name="captures", gl_account="1510", fee_account="7770",
                         clearing_account="1920")
    the_posting = posting(fee="3.40")
    posting_map(tenant=tenant, system="paypal", posting=the_posting)

    # when
    problems = posting_validate(tenant=tenant, posting=the_posting)

    # then
    assert problems == [
        "Line 3 (account): GL account 1510 is a control account of the AR ledger in Visma (chosen by mapping rule "
        "'captures'): a journal must not post to it (only AR documents do); a payment of an invoice is a customer "
        "payment, and the rule must point this line at another account."
    ]


def test_a_customer_payment_may_settle_the_receivable_but_its_fee_journal_stays_off_control_accounts():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920")
    GLAccountFactory(tenant=tenant, number="1510", control_account_module="AR")
    GLAccountFactory(tenant=tenant, number="2440", control_account_module="AP")
    GLMappingRuleFactory(tenant=tenant, name="invoice payments", gl_account="1510", fee_account="2440",
                         clearing_account="1920")
    the_posting = posting(fee="3.40", customer="")
    the_posting.document = "customer_payment"
    posting_map(tenant=tenant, system="paypal", posting=the_posting)

    # when
    problems = posting_validate(tenant=tenant, posting=the_posting)

    # then
    assert [problem.split(":")[0] for problem in problems] == ["Line 2 (fee)"]
    assert "GL account 2440 is a control account of the AP ledger" in problems[0]


def test_an_unbalanced_journal_and_a_negative_line_are_problems():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920", "3000")
    the_posting = mapped(tenant)
    the_posting.lines[0].debit = Decimal("-100.00")

    # when
    problems = posting_validate(tenant=tenant, posting=the_posting)

    # then
    assert problems == [
        "Line 1 (clearing): debit -100.00 is negative",
        f"Journal {hand_marker('P-1')} does not balance: debit -100.00 ≠ credit 100.00",
    ]


def test_an_amount_that_is_not_a_number_is_a_problem_not_a_crash():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920", "3000")
    the_posting = mapped(tenant)
    the_posting.lines[0].debit = Decimal("NaN")

    # when
    problems = posting_validate(tenant=tenant, posting=the_posting)

    # then
    assert problems == [
        "Line 1 (clearing): debit Decimal('NaN') is not an amount",
        f"Journal {hand_marker('P-1')} does not balance: debit NaN ≠ credit 100.00",
    ]


def test_a_currency_that_is_not_iso_is_the_only_problem_reported():
    # given
    tenant = TenantFactory()

    # then
    assert posting_validate(tenant=tenant, posting=mapped(tenant, currency="EURO")) == [
        f"Posting {hand_marker('P-1')}: currency 'EURO' is not an ISO 4217 code"
    ]


def test_an_unknown_and_an_inactive_account_are_told_apart():
    # given
    tenant = TenantFactory()
    mirror(tenant, "3000", inactive=("3000",))

    # when
    problems = posting_validate(tenant=tenant, posting=mapped(tenant))

    # then
    assert problems == [
        "GL account 1920 on line 1 (clearing) is unknown in Visma: create it in Visma or correct the account on the "
        "rule.",
        "GL account 3000 on line 2 (account) is inactive in Visma: activate it in Visma or point the rule at an "
        "active account.",
    ]


def test_an_inactive_dimension_value_is_a_problem():
    # given
    tenant = TenantFactory()
    mirror(tenant, "1920", "3000")
    DimensionValueFactory(tenant=tenant, segment_id=1, value="100", active=False)
    the_posting = mapped(tenant)
    the_posting.lines[1].dimensions = {"1": "100"}

    # then
    assert posting_validate(tenant=tenant, posting=the_posting) == [
        "Dimension value 100 of segment 1 on line 2 is inactive in Visma: fix the rule's dimensions or the value in "
        "Visma."
    ]


def test_each_unknown_value_is_checked_live_once_however_many_lines_carry_it():
    # given
    tenant = TenantFactory()
    asked = []
    the_posting = mapped(tenant)
    for line in the_posting.lines:
        line.account = "3000"
    the_posting.customer = "10001"

    def live_check(kind, key):
        asked.append((kind, key))
        return False

    # when
    problems = posting_validate(tenant=tenant, posting=the_posting, live_check=live_check)

    # then
    assert asked == [("account", "3000"), ("customer", "10001")]
    assert len(problems) == 3
    assert problems[2] == "Customer 10001 is unknown or inactive in Visma: map the payer to a customer."


def test_a_live_check_that_finds_the_value_clears_the_problem():
    # given a mirror without the account, and a live check that answers without refreshing the mirror
    tenant = TenantFactory()
    mirror(tenant, "1920")

    # when
    problems = posting_validate(tenant=tenant, posting=mapped(tenant), live_check=lambda kind, key: True)

    # then
    assert problems == []


# --- validating a rule -----------------------------------------------------------------------------------------


def test_a_rule_pointing_at_inactive_or_unknown_values_is_marked_invalid_with_each_problem(time_machine):
    # given
    time_machine.move_to(NOON, tick=False)
    tenant = TenantFactory()
    mirror(tenant, "3000", "7770", inactive=("3000",))
    DimensionValueFactory(tenant=tenant, segment_id=1, value="100")
    rule = GLMappingRuleFactory(tenant=tenant, gl_account="3000", fee_account="7770", clearing_account="1920",
                                dimensions={"1": "100", "2": "P-42"})

    # when
    mapping_rule_validate(rule)

    # then
    stored = GLMappingRule.objects.get(pk=rule.pk)
    assert stored.validation_state == "invalid"
    assert stored.validation_problems == [
        "GL account 3000 is inactive in Visma",
        "clearing account 1920 is unknown in Visma",
        "dimension segment 2 value P-42 is unknown in Visma",
    ]
    assert stored.validated_at == NOON
    # the verdict is not an edit of the rule: no history row for it
    assert stored.history.count() == 1


def test_a_rule_on_active_values_is_marked_valid():
    # given
    tenant = TenantFactory()
    mirror(tenant, "3000", "7770", "1920")
    DimensionValueFactory(tenant=tenant, segment_id=1, value="100")
    rule = GLMappingRuleFactory(tenant=tenant, dimensions={"1": "100"})

    # when
    mapping_rule_validate(rule)

    # then
    stored = GLMappingRule.objects.get(pk=rule.pk)
    assert (stored.validation_state, stored.validation_problems) == ("valid", [])


def test_a_rule_mapping_a_journal_role_onto_a_control_account_is_marked_invalid():
    # given
    tenant = TenantFactory()
    mirror(tenant, "3000", "1920")
    GLAccountFactory(tenant=tenant, number="1510", control_account_module="AR")
    journal_rule = GLMappingRuleFactory(tenant=tenant, name="captures", transaction_type="capture",
                                        gl_account="1510", fee_account="", clearing_account="1920")
    payment_rule = GLMappingRuleFactory(tenant=tenant, name="invoice payments", transaction_type="invoice_payment",
                                        gl_account="1510", fee_account="", clearing_account="1920")

    # when
    mapping_rule_validate(journal_rule)
    mapping_rule_validate(payment_rule)

    # then
    assert GLMappingRule.objects.get(pk=journal_rule.pk).validation_problems == [
        "GL account 1510 is a control account of the AR ledger in Visma: a journal line cannot post to it"]
    assert GLMappingRule.objects.get(pk=payment_rule.pk).validation_state == "valid"


def test_revalidating_a_tenants_rules_counts_the_invalid_ones():
    # given
    tenant = TenantFactory()
    mirror(tenant, "3000", "7770", "1920")
    GLMappingRuleFactory(tenant=tenant, name="good")
    GLMappingRuleFactory(tenant=tenant, name="bad", gl_account="3999")
    GLMappingRuleFactory(tenant=TenantFactory(), name="elsewhere", gl_account="3999")

    # when
    invalid = mapping_rules_revalidate(tenant)

    # then
    assert invalid == 1
    assert dict(GLMappingRule.objects.filter(tenant=tenant).values_list("name", "validation_state")) == {
        "good": "valid", "bad": "invalid"
    }
    assert GLMappingRule.objects.get(name="elsewhere").validation_state == "unchecked"
