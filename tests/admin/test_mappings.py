"""The accountant's screens: mapping rules checked on save and versioned with who and why; the mirror read-only."""
import html
import re

import pytest
from django.urls import reverse

from mappings.models import GLAccount, GLMappingRule
from tests.admin.factories import books_create
from tests.factories import GLMappingRuleFactory, TenantFactory

pytestmark = pytest.mark.django_db


def text(response) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())))


@pytest.fixture
def tenant(db):
    tenant = TenantFactory(slug="nordlys")
    books_create(tenant)
    return tenant


def rule_post_data(tenant, **changes):
    return {
        "tenant": tenant.pk, "system": "paypal", "name": "PayPal captures", "priority": "100", "is_active": "on",
        "transaction_type": "capture", "currency": "EUR", "min_amount": "", "max_amount": "", "customer_group": "",
        "payment_method": "", "customer": "", "payer": "", "gl_account": "3000", "fee_account": "7770",
        "clearing_account": "1920", "dimensions": '{"1": "100"}', "change_reason": "", **changes,
    }


def test_saving_a_rule_with_an_unknown_account_shows_it_invalid_at_once(client, accountant, tenant):
    # given
    client.force_login(accountant)

    # when
    response = client.post(reverse("admin:mappings_glmappingrule_add"),
                           rule_post_data(tenant, gl_account="9999", clearing_account="3999"), follow=True)

    # then
    rule = GLMappingRule.objects.get(name="PayPal captures")
    assert rule.validation_state == "invalid"
    assert rule.validation_problems == ["GL account 9999 is unknown in Visma",
                                        "clearing account 3999 is inactive in Visma"]
    assert "PayPal captures is invalid: GL account 9999 is unknown in Visma; clearing account 3999 is inactive in " \
           "Visma. Records it maps will be flagged until it is fixed." in text(response)
    changelist = text(client.get(reverse("admin:mappings_glmappingrule_changelist")))
    assert "PayPal captures PayPal 100 capture · EUR 9999 · fee 7770 · clearing 3999 · 1=100 Invalid" in changelist
    change_page = text(client.get(reverse("admin:mappings_glmappingrule_change", args=[rule.pk])))
    assert "Problems: GL account 9999 is unknown in Visma clearing account 3999 is inactive in Visma" in change_page


def test_a_rule_pointed_at_known_accounts_is_valid(client, accountant, tenant):
    # given
    client.force_login(accountant)

    # when
    response = client.post(reverse("admin:mappings_glmappingrule_add"), rule_post_data(tenant))

    # then
    assert response.status_code == 302
    rule = GLMappingRule.objects.get(name="PayPal captures")
    assert (rule.validation_state, rule.validation_problems) == ("valid", [])


def test_changing_a_rule_needs_a_reason_and_changes_nothing_without_one(client, accountant, tenant):
    # given
    rule = GLMappingRuleFactory(tenant=tenant, name="PayPal captures", gl_account="3000")
    client.force_login(accountant)

    # when
    response = client.post(reverse("admin:mappings_glmappingrule_change", args=[rule.pk]),
                           rule_post_data(tenant, gl_account="3010"))

    # then
    assert response.status_code == 200
    assert "Say why you change the rule: the history keeps it for the auditors." in text(response)
    rule.refresh_from_db()
    assert rule.gl_account == "3000"
    assert rule.history.count() == 1


def test_the_history_shows_who_changed_the_rule_what_and_why(client, accountant, tenant):
    # given
    client.force_login(accountant)
    client.post(reverse("admin:mappings_glmappingrule_add"), rule_post_data(tenant))
    rule = GLMappingRule.objects.get(name="PayPal captures")

    # when
    client.post(reverse("admin:mappings_glmappingrule_change", args=[rule.pk]),
                rule_post_data(tenant, gl_account="3010", change_reason="revenue moves to 3010 from 1 March"))
    history = client.get(reverse("admin:mappings_glmappingrule_history", args=[rule.pk]))

    # then
    assert list(rule.history.order_by("history_id").values_list("history_user__username", "history_change_reason",
                                                                "gl_account")) == [
        ("anna.accountant", "created", "3000"), ("anna.accountant", "revenue moves to 3010 from 1 March", "3010"),
    ]
    page = text(history)
    assert "anna.accountant revenue moves to 3010 from 1 March GL account: 3000 → 3010" in page
    assert "anna.accountant created" in page


def test_the_visma_mirror_cannot_be_changed_in_the_admin(client, superuser, tenant):
    # given
    account = GLAccount.objects.get(tenant=tenant, number="3000")
    client.force_login(superuser)

    # when
    page = client.get(reverse("admin:mappings_glaccount_change", args=[account.pk]))
    posted = client.post(reverse("admin:mappings_glaccount_change", args=[account.pk]), {"description": "renamed"})
    searched = client.get(reverse("admin:mappings_glaccount_changelist"), {"q": "3010"})

    # then
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert posted.status_code == 403
    account.refresh_from_db()
    assert account.description == "Account 3000"
    assert searched.context["cl"].result_count == 1
