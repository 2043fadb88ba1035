"""The admin in a real browser (the system Chromium, headless): finance approves with a correction; an accountant
edits a mapping rule and reads its history."""
from pathlib import Path

import pytest
from django.db import connections
from playwright.sync_api import expect, sync_playwright

from audit.models import AuditEntry
from tests.admin.factories import books_create, flagged_record_create
from tests.factories import GLMappingRuleFactory, IntegrationFactory, UserFactory

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
PASSWORD = "pw-for-tests-1"  # what tests.factories.UserFactory sets

pytestmark = [
    pytest.mark.browser,
    # The live server needs committed rows; serialized_rollback brings back the groups the migration made.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="the system Chromium (/usr/bin/chromium) is not installed"),
]


@pytest.fixture
def browser_page(monkeypatch):
    # Playwright's sync API runs an event loop in this thread; the ORM calls of the test are still synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(15_000)
        # Chromium reports what the Content-Security-Policy blocked on the console.
        refused = []
        page.on("console", lambda message: refused.append(message.text)
                if "Content Security Policy" in message.text else None)
        yield page
        browser.close()
        # With Playwright's loop running, Django keeps this test's database connection in a context of its own,
        # which the test teardown does not see: close it here, or it outlives the test database.
        connections.close_all()
    assert refused == []


def log_in(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")


def test_finance_opens_the_flagged_record_and_approves_it_with_a_corrected_account(live_server, browser_page):
    # given
    integration = IntegrationFactory(tenant__slug="nordlys", tenant__name="Nordlys AS")
    books_create(integration.tenant)
    record = flagged_record_create(integration, "5TY05013RG002845M")
    UserFactory(username="frank.finance", groups=["Finance"])
    page = browser_page

    # when
    log_in(page, live_server.url, "frank.finance")
    expect(page.locator("#flagged-callout .figure")).to_have_text("1")
    page.click("text=Open the review queue")
    page.click("text=5TY05013RG002845M")
    expect(page.locator("#review-reasons")).to_contain_text("GL account 9999 on line 3 (account) is unknown")
    page.click("text=Approve…")
    page.fill("#id_account_account", "3010")
    page.fill("#id_note", "revenue goes to 3010")
    page.click("input[type=submit][value=Approve]")

    # then
    expect(page.locator("ul.messagelist")).to_contain_text("5TY05013RG002845M: approved with corrections")
    expect(page.locator(".field-status_display .record-status")).to_have_text("Approved")
    expect(page.locator("#corrected-posting")).to_contain_text("3010")
    record.refresh_from_db()
    assert record.status == "approved"
    assert record.corrected_posting == {"accounts": {"account": "3010"}}
    assert list(AuditEntry.objects.filter(sync_record=record, to_status="approved").values_list(
        "actor", "reason")) == [("frank.finance", "revenue goes to 3010")]


def test_an_accountant_edits_a_mapping_rule_and_sees_its_history(live_server, browser_page):
    # given
    integration = IntegrationFactory(tenant__slug="nordlys", tenant__name="Nordlys AS")
    books_create(integration.tenant)
    rule = GLMappingRuleFactory(tenant=integration.tenant, name="PayPal captures", gl_account="3000",
                                dimensions={"1": "100"})
    UserFactory(username="anna.accountant", groups=["Accountant"])
    page = browser_page

    # when
    log_in(page, live_server.url, "anna.accountant")
    page.goto(f"{live_server.url}/admin/mappings/glmappingrule/")
    page.click("text=PayPal captures")
    page.fill("#id_gl_account", "3010")
    page.fill("#id_change_reason", "revenue moves to 3010 from 1 March")
    page.click("input[name=_continue]")
    expect(page.locator(".field-validation")).to_contain_text("Valid")
    page.click("a.historylink")

    # then
    history = page.locator("#change-history")
    expect(history).to_contain_text("revenue moves to 3010 from 1 March")
    expect(history).to_contain_text("anna.accountant")
    expect(history).to_contain_text("GL account:")
    rule.refresh_from_db()
    assert rule.gl_account == "3010"
    assert rule.history.first().history_change_reason == "revenue moves to 3010 from 1 March"
