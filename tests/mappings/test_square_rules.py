"""Rules for Square: matched on location (a rule naming the store wins over any-store rules) and source type; the
tip line takes the rule's tip account, which the rule check covers too."""
from datetime import date
from decimal import Decimal

import pytest

from mappings.documents import MatchFacts, Posting, PostingLine
from mappings.models import GLMappingRule, SquareLocation
from mappings.services import mapping_rule_resolve, mapping_rule_validate, posting_map
from tests.factories import DimensionValueFactory, GLAccountFactory, GLMappingRuleFactory, TenantFactory, hand_marker

pytestmark = pytest.mark.django_db


def sale(*, location="LBERGEN", method="CARD", tip="0") -> Posting:
    tip = Decimal(tip)
    lines = [PostingLine(role="clearing", debit=Decimal("100") + tip), PostingLine(role="account", credit=Decimal(100))]
    if tip:
        lines.append(PostingLine(role="tip", credit=tip))
    return Posting(document="journal", marker=hand_marker("SQ-1", system="square"), currency="NOK",
                   date=date(2026, 12, 6), description="Square payment SQ-1",
                   facts=MatchFacts(transaction_type="payment", amount=Decimal(100) + tip, currency="NOK",
                                    payment_method=method, location=location), lines=lines)


def rule(tenant, name, **fields):
    return GLMappingRuleFactory(tenant=tenant, system="square", name=name, transaction_type="payment", **fields)


def test_a_rule_naming_the_location_wins_over_a_rule_for_any_location_whatever_the_priority():
    tenant = TenantFactory()
    rule(tenant, "any store", priority=1)
    rule(tenant, "Bergen", priority=500, location="LBERGEN")
    rule(tenant, "Oslo", priority=2, location="LOSLO")
    assert mapping_rule_resolve(tenant=tenant, system="square", posting=sale()).name == "Bergen"
    assert mapping_rule_resolve(tenant=tenant, system="square", posting=sale(location="LTRONDHEIM")).name == "any store"


def test_a_source_type_is_matched_through_the_payment_method_and_an_unknown_one_only_by_a_rule_without_one():
    tenant = TenantFactory()
    rule(tenant, "cards in Bergen", priority=10, location="LBERGEN", payment_method="CARD")
    rule(tenant, "cash in Bergen", priority=10, location="LBERGEN", payment_method="CASH")
    assert mapping_rule_resolve(tenant=tenant, system="square", posting=sale(method="CASH")).name == "cash in Bergen"
    assert mapping_rule_resolve(tenant=tenant, system="square", posting=sale(method="CRYPTO")) is None
    rule(tenant, "anything in Bergen", priority=99, location="LBERGEN")
    assert mapping_rule_resolve(tenant=tenant, system="square",
                                posting=sale(method="CRYPTO")).name == "anything in Bergen"


def test_the_tip_line_takes_the_tip_account_and_a_rule_without_one_says_so():
    tenant = TenantFactory()
    with_tips = rule(tenant, "Bergen", location="LBERGEN", tip_account="2960", dimensions={"1": "320"})
    outcome = posting_map(tenant=tenant, system="square", posting=sale(tip="15"))
    assert [(line.role, line.account, line.dimensions) for line in outcome.posting.lines] == [
        ("clearing", "1920", {"1": "320"}), ("account", "3000", {"1": "320"}), ("tip", "2960", {"1": "320"})]
    with_tips.tip_account = ""
    with_tips.save()
    outcome = posting_map(tenant=tenant, system="square", posting=sale(tip="15"))
    assert outcome.problems == ["Mapping rule 'Bergen' has no tip account but the posting has a tip line: set the tip "
                                "account on the rule."]


def test_no_rule_names_the_store_by_its_name():
    tenant = TenantFactory()
    SquareLocation.objects.create(tenant=tenant, location_id="LBERGEN", name="Store Bergen", currency="NOK")
    outcome = posting_map(tenant=tenant, system="square", posting=sale())
    assert outcome.problems == ["No active square mapping rule matches payment of 100 NOK paid by CARD at location "
                                "Store Bergen (LBERGEN): add a GL mapping rule for it, or approve with the accounts "
                                "to use."]


def test_the_rule_check_covers_the_tip_account():
    tenant = TenantFactory()
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=tenant, number=number)
    GLAccountFactory(tenant=tenant, number="2960", active=False)
    DimensionValueFactory(tenant=tenant, segment_id=1, value="320")
    checked = mapping_rule_validate(rule(tenant, "Bergen", location="LBERGEN", tip_account="2960",
                                         dimensions={"1": "320"}))
    assert checked.validation_state == GLMappingRule.ValidationState.INVALID
    assert checked.validation_problems == ["tip account 2960 is inactive in Visma"]


def test_match_facts_keep_the_location_through_json():
    posting = sale()
    assert Posting.from_json(posting.to_json()).facts.location == "LBERGEN"
