import json
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from django.db import connection as db
from django_q.models import Schedule

from connectors import registry
from connectors.models import Connection, Integration, Tenant
from mappings.models import GLMappingRule, VatCodeMapping

from .helpers import EXAMPLE_TENANT, example_document, run, write_document

pytestmark = pytest.mark.django_db

SECRETS = [
    "sandbox-client-secret", "replace-with-the-paypal-client-secret",
    "sk_test_replace_with_the_stripe_secret_key", "whsec_replace_with_the_endpoint_secret",
]


def _raw_credentials(connection_id: int) -> bytes:
    with db.cursor() as cursor:
        cursor.execute("SELECT credentials FROM connectors_connection WHERE id = %s", [connection_id])
        return bytes(cursor.fetchone()[0])


def _poll_schedules(integration: Integration) -> list[tuple[str, int]]:
    return list(
        Schedule.objects.filter(name__startswith=f"poll {integration.pk} ").values_list("name", "minutes")
    )


def test_the_example_file_loads_as_is_and_prints_the_webhook_urls():
    # when
    stdout, stderr = run("load_tenant", str(EXAMPLE_TENANT))

    # then
    tenant = Tenant.objects.get()
    paypal = Integration.objects.get(kind="paypal")
    stripe = Integration.objects.get(kind="stripe")
    square = Integration.objects.get(kind="square")
    assert json.loads(stdout) == {
        "tenant": "nordlys-friluft",
        "integrations": {
            "paypal": {"id": str(paypal.pk), "webhook_url": f"/webhooks/paypal/{paypal.pk}/"},
            "stripe": {"id": str(stripe.pk), "webhook_url": f"/webhooks/stripe/{stripe.pk}/"},
            "square": {"id": str(square.pk), "webhook_url": f"/webhooks/square/{square.pk}/"},
        },
    }
    assert (tenant.slug, tenant.name) == ("nordlys-friluft", "Nordlys Friluft AS")
    visma = Connection.objects.get(system="visma")
    assert (visma.base_url, visma.token_url, visma.hourly_call_budget) == (
        "http://sandbox/visma", "http://sandbox/visma/connect/token", 15000
    )
    assert visma.credentials == {
        "client_id": "ml-connector-sandbox", "client_secret": "sandbox-client-secret",
        "tenant_id": "5c1a4d3e-8f2b-4e6a-9d7c-0b1e2f3a4b5c", "company_id": "1234567",
    }
    assert Connection.objects.get(system="paypal").credentials == {
        "client_id": "replace-with-the-paypal-client-id", "client_secret": "replace-with-the-paypal-client-secret",
        "webhook_id": "8PT597110X687430LKGECATA",
    }
    assert Connection.objects.get(system="stripe").credentials == {
        "secret_key": "sk_test_replace_with_the_stripe_secret_key",
        "webhook_secrets": ["whsec_replace_with_the_endpoint_secret"],
    }
    assert Connection.objects.get(system="square").credentials == {
        "access_token": "replace-with-the-square-access-token",
        "webhook_signature_key": "replace-with-the-square-webhook-signature-key",
    }
    assert list(VatCodeMapping.objects.values_list("system", "tax_name", "percent", "vat_code")) == [
        ("square", "", Decimal("0.000"), "5"), ("square", "", Decimal("15.000"), "31"),
        ("square", "", Decimal("25.000"), "3")]
    assert (paypal.visma_connection, paypal.partner_connection.system, paypal.enabled) == (visma, "paypal", True)
    assert list(
        GLMappingRule.objects.order_by("system", "priority", "id").values_list(
            "system", "name", "transaction_type", "currency", "payment_method", "gl_account", "fee_account",
            "clearing_account", "dimensions", "validation_state",
        )
    ) == [
        ("paypal", "PayPal captures in NOK", "capture", "NOK", "", "3000", "7770", "1580", {"1": "100"}, "invalid"),
        ("paypal", "PayPal captures in EUR", "capture", "EUR", "", "3010", "7770", "1580", {"1": "100"}, "invalid"),
        ("paypal", "PayPal refunds", "refund", "", "", "3000", "7770", "1580", {"1": "100"}, "invalid"),
        ("paypal", "PayPal invoices", "invoice", "", "", "3010", "", "", {"1": "100"}, "invalid"),
        ("paypal", "PayPal payments of invoices", "invoice_payment", "", "", "1510", "7770", "1580", {"1": "100"},
         "invalid"),
        ("paypal", "PayPal reversals", "reversal", "", "", "3000", "7770", "1580", {"1": "100"}, "invalid"),
        ("square", "Square invoices", "invoice", "", "", "3000", "", "", {"1": "330"}, "invalid"),
        ("square", "Square invoice payments", "invoice_payment", "", "", "1510", "7770", "1582", {"1": "330"},
         "invalid"),
        ("square", "Square invoice refunds", "refund", "", "", "1510", "7770", "1582", {"1": "330"}, "invalid"),
        ("square", "Square sales, Oslo Sentrum", "payment", "", "", "3020", "7770", "1582", {"1": "310"}, "invalid"),
        ("square", "Square sales, Bergen", "payment", "", "", "3020", "7770", "1582", {"1": "320"}, "invalid"),
        ("square", "Square sales, web shop", "payment", "", "", "3000", "7770", "1582", {"1": "330"}, "invalid"),
        ("stripe", "Stripe payments of invoices", "invoice_payment", "", "", "1510", "7770", "1581", {"1": "100"},
         "invalid"),
        ("stripe", "Stripe refunds", "refund", "", "", "3000", "7770", "1581", {"1": "100"}, "invalid"),
        ("stripe", "Stripe disputes", "dispute", "", "", "3000", "7770", "1581", {"1": "100"}, "invalid"),
    ]
    assert list(GLMappingRule.objects.filter(system="square", transaction_type="payment").order_by("id")
                .values_list("location", "tip_account")) == [
        ("LNORDLYSOSLO1", "2960"), ("LNORDLYSBERG1", "2960"), ("LNORDLYSWEB01", "2960")]
    assert stderr.splitlines() == [
        "Tenant nordlys-friluft created; 3 integration(s); mapping rules: 15 created, 0 updated, 0 unchanged.",
        "The Visma reference data of nordlys-friluft is not mirrored yet: its mapping rules are checked against it "
        "when it is refreshed.",
    ]


def test_loading_twice_keeps_the_same_rows_and_one_schedule_per_stream(payments_stream, tmp_path):
    # given
    document = example_document()
    document["integrations"]["paypal"]["poll_minutes"] = {"payments": 5}
    path = write_document(tmp_path / "tenant.json", document)
    first, _ = run("load_tenant", path)

    # when
    second, stderr = run("load_tenant", path)

    # then
    assert second == first
    paypal = Integration.objects.get(kind="paypal")
    assert json.loads(second)["integrations"]["paypal"]["id"] == str(paypal.pk)
    assert (Tenant.objects.count(), Connection.objects.count(), Integration.objects.count(),
            GLMappingRule.objects.count(), GLMappingRule.history.count()) == (1, 4, 3, 15, 15)
    for integration in Integration.objects.all():
        streams = registry.kind_spec(integration.kind).streams
        assert sorted(_poll_schedules(integration)) == sorted(
            (f"poll {integration.pk} {name}",
             5 if (integration.kind, name) == ("paypal", "payments") else stream.default_poll_minutes)
            for name, stream in streams.items()
        )
    assert (f"poll {paypal.pk} payments", 5) in _poll_schedules(paypal)
    assert stderr.splitlines()[0] == (
        "Tenant nordlys-friluft updated; 3 integration(s); mapping rules: 0 created, 0 updated, 15 unchanged."
    )


def test_a_changed_file_updates_the_same_rows_and_drops_the_cached_token(tmp_path):
    # given
    document = example_document()
    path = write_document(tmp_path / "tenant.json", document)
    run("load_tenant", path)
    paypal_id = Integration.objects.get(kind="paypal").pk
    Connection.objects.filter(system="paypal").update(access_token="A21AAF-cached-token")
    Connection.objects.filter(system="stripe").update(access_token="kept-token")
    document["name"] = "Nordlys Friluft ASA"
    document["integrations"]["paypal"]["client_secret"] = "the-new-paypal-secret"
    document["mapping_rules"][2]["gl_account"] = "3010"
    write_document(tmp_path / "tenant.json", document)

    # when
    stdout, stderr = run("load_tenant", path)

    # then
    assert json.loads(stdout)["integrations"]["paypal"]["id"] == str(paypal_id)
    assert Tenant.objects.get().name == "Nordlys Friluft ASA"
    paypal = Connection.objects.get(system="paypal")
    assert (paypal.credentials["client_secret"], paypal.access_token) == ("the-new-paypal-secret", None)
    assert Connection.objects.get(system="stripe").access_token == "kept-token"
    assert GLMappingRule.objects.get(name="PayPal refunds").gl_account == "3010"
    assert list(GLMappingRule.history.filter(name="PayPal refunds").values_list("history_type", "gl_account",
                                                                              "history_change_reason")) == [
        ("~", "3010", "loaded from a tenant file"), ("+", "3000", "loaded from a tenant file"),
    ]
    assert "mapping rules: 0 created, 1 updated, 14 unchanged." in stderr


def test_a_bad_mapping_rule_at_the_end_changes_nothing_and_names_the_key(payments_stream, tmp_path):
    # given
    document = example_document()
    document["mapping_rules"].append({"system": "paypal", "name": "PayPal disputes", "transaction_type": "dispute"})
    path = write_document(tmp_path / "tenant.json", document)

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", path)

    # then
    assert str(raised.value) == f"{path} was not loaded; nothing was changed:\nmapping_rules[15].gl_account: required"
    assert (Tenant.objects.count(), Connection.objects.count(), Integration.objects.count(),
            GLMappingRule.objects.count(), Schedule.objects.filter(name__startswith="poll ").count()) == (0, 0, 0, 0, 0)


def test_a_bad_file_leaves_an_existing_tenant_as_it_was(tmp_path):
    # given
    document = example_document()
    path = write_document(tmp_path / "tenant.json", document)
    run("load_tenant", path)
    document["name"] = "Renamed AS"
    document["integrations"]["paypal"]["client_secret"] = "a-new-secret"
    document["mapping_rules"][0]["gl_account"] = "3001"
    document["mapping_rules"][3]["dimensions"] = ["100"]
    write_document(tmp_path / "tenant.json", document)

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", path)

    # then
    assert str(raised.value).splitlines()[1:] == [
        'mapping_rules[3].dimensions: must be an object of at most 20 segment id → value, e.g. {"1": "100"}'
    ]
    assert Tenant.objects.get().name == "Nordlys Friluft AS"
    assert Connection.objects.get(system="paypal").credentials["client_secret"] == "replace-with-the-paypal-client-secret"
    assert GLMappingRule.objects.get(name="PayPal captures in NOK").gl_account == "3000"


@pytest.fixture
def bare_registry(monkeypatch):
    """Kinds without streams or settings, so that the messages below do not depend on what vendors register."""
    for spec in registry.KINDS.values():
        monkeypatch.setattr(spec, "streams", {})
        monkeypatch.setattr(spec, "settings_schema", {})


def test_every_problem_is_reported_with_its_key_path(bare_registry, tmp_path):
    # given
    document = example_document()
    del document["visma"]["client_secret"]
    document["visma"]["company_id"] = 5012345
    document["visma"]["base_url"] = "sandbox/visma"
    document["integrations"]["paypal"]["client_secet"] = "typo"
    document["integrations"]["paypal"]["poll_minutes"] = {"captures": 15}
    document["integrations"]["stripe"]["settings"] = {"foo": 1}
    document["integrations"]["stripe"]["hourly_call_budget"] = 0
    document["integrations"]["klarna"] = {"base_url": "https://api.klarna.com"}
    document["mapping_rules"][1]["currency"] = "NOKK"
    document["mapping_rules"][1]["min_amount"] = "500"
    document["mapping_rules"][1]["max_amount"] = "100"
    del document["mapping_rules"][2]["system"]
    del document["mapping_rules"][2]["gl_account"]
    document["mapping_rules"][3]["name"] = document["mapping_rules"][0]["name"]
    document["mapping_rules"][3]["system"] = "paypal"
    path = write_document(tmp_path / "tenant.json", document)

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", path)

    # then
    assert str(raised.value).splitlines() == [
        f"{path} was not loaded; nothing was changed:",
        "visma.base_url: must be an http(s) URL of at most 500 characters",
        "visma.company_id: must be a string (or a list of at most 10 strings)",
        "visma.client_secret: required",
        "integrations.paypal.client_secet: unknown key; known: base_url, token_url, hourly_call_budget, settings, "
        "poll_minutes, enabled, client_id, client_secret, webhook_id, webhook_secret, webhook_secrets, "
        "webhook_signature_key",
        "integrations.paypal.poll_minutes.captures: paypal has no stream 'captures'; its streams: none yet",
        "integrations.stripe.hourly_call_budget: must be a whole number from 1 to 1000000, or null for no budget",
        "integrations.stripe.settings.foo: unknown setting; stripe settings are: none",
        "integrations.klarna: unknown integration kind; known: paypal, stripe, square, airbase, adobe_commerce",
        "mapping_rules[1].currency: 'NOKK' is not an ISO 4217 currency code (e.g. NOK, EUR)",
        "mapping_rules[2].system: required (the file does not have exactly one integration: paypal, stripe, "
        "square, klarna)",
        "mapping_rules[2].gl_account: required",
        "mapping_rules[3].name: paypal rule 'PayPal captures in NOK' is already mapping_rules[0]",
    ]
    assert Tenant.objects.count() == 0


def test_a_rule_without_a_system_belongs_to_the_only_integration(tmp_path):
    # given
    document = example_document()
    del document["integrations"]["stripe"]
    del document["integrations"]["square"]
    del document["vat_codes"]
    document["mapping_rules"] = [{"name": "All PayPal captures", "transaction_type": "capture",
                                  "gl_account": "3000", "min_amount": 0.5}]
    path = tmp_path / "tenant.json"
    path.write_text(json.dumps(document).replace("0.5", "0.50"))

    # when
    run("load_tenant", str(path))

    # then
    rule = GLMappingRule.objects.get()
    assert (rule.system, rule.name, str(rule.min_amount)) == ("paypal", "All PayPal captures", "0.5000")


def test_secrets_are_stored_encrypted_and_never_printed(tmp_path):
    # given
    document = example_document()
    bad = example_document()
    bad["integrations"]["stripe"]["secret_key"] = ["sk_test_replace_with_the_stripe_secret_key", 7]

    # when
    stdout, stderr = run("load_tenant", write_document(tmp_path / "tenant.json", document))
    with pytest.raises(CommandError) as raised:
        run("load_tenant", write_document(tmp_path / "bad.json", bad))

    # then
    raw = b"".join(_raw_credentials(pk) for pk in Connection.objects.values_list("pk", flat=True))
    assert raw.startswith(b"gAAAAA")
    for secret in SECRETS:
        assert secret.encode() not in raw
        assert secret not in stdout + stderr + str(raised.value)
    assert str(raised.value).splitlines()[1:] == [
        "integrations.stripe.secret_key: must be a string (or a list of at most 10 strings)"
    ]


def test_a_file_that_is_not_json_is_refused(tmp_path):
    # given
    path = tmp_path / "tenant.json"
    path.write_text('{"slug": "nordlys-friluft",\n "name": }')

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", str(path))

    # then
    assert str(raised.value) == (
        f"{path} was not loaded; nothing was changed:\n{path}: not valid JSON (Expecting value at line 2, column 10)"
    )
    assert Tenant.objects.count() == 0


def test_each_load_leaves_one_configuration_audit_entry_without_secret_values():
    # given
    from audit.models import AuditEntry

    # when the file is loaded twice
    run("load_tenant", str(EXAMPLE_TENANT))
    run("load_tenant", str(EXAMPLE_TENANT))

    # then
    entries = list(AuditEntry.objects.filter(action="configuration").order_by("id"))
    assert [entry.reason for entry in entries] == [
        "tenant created from a tenant file", "tenant updated from a tenant file",
    ]
    assert entries[1].details["rules"] == {"created": 0, "updated": 0, "unchanged": 15}
    assert not any(secret in json.dumps(entry.details) for entry in entries for secret in SECRETS)


def test_a_new_tenant_numbers_its_own_journals_payments_and_supplier_invoices_but_not_its_customer_invoices():
    # when
    run("load_tenant", str(EXAMPLE_TENANT))

    # then
    assert Tenant.objects.get().visma_own_numbers == [
        "journal", "customer_payment", "customer_refund", "supplier_invoice", "supplier_payment"]


def test_the_tenant_file_sets_own_numbers_and_a_later_file_without_the_key_keeps_them(tmp_path):
    # given
    document = example_document()
    document["visma_own_numbers"] = ["journal", "customer"]
    path = write_document(tmp_path / "tenant.json", document)
    run("load_tenant", path)
    del document["visma_own_numbers"]
    write_document(tmp_path / "tenant.json", document)

    # when
    run("load_tenant", path)

    # then
    assert Tenant.objects.get().visma_own_numbers == ["journal", "customer"]


def test_an_unknown_own_number_kind_is_refused_and_changes_nothing(tmp_path):
    # given
    document = example_document()
    document["visma_own_numbers"] = ["journal", "debit_note"]
    path = write_document(tmp_path / "tenant.json", document)

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", path)

    # then
    assert str(raised.value).splitlines()[1:] == [
        "visma_own_numbers: unknown document kind(s) debit_note; known: journal, customer_invoice, customer_payment, "
        "supplier_invoice, supplier_payment, customer, supplier, credit_note, customer_refund"]
    assert Tenant.objects.count() == 0


def test_the_tenant_file_sets_the_time_zone_and_release_and_refuses_a_zone_that_is_no_iana_name(tmp_path):
    # given
    document = example_document()
    document.update(time_zone="Europe/Helsinki", visma_release=False)
    path = write_document(tmp_path / "tenant.json", document)
    bad = write_document(tmp_path / "bad.json", {**document, "time_zone": "Helsinki", "visma_release": "no"})

    # when
    run("load_tenant", path)
    with pytest.raises(CommandError) as raised:
        run("load_tenant", bad)

    # then
    assert (Tenant.objects.get().time_zone, Tenant.objects.get().visma_release) == ("Europe/Helsinki", False)
    assert str(raised.value).splitlines()[1:] == [
        "time_zone: 'Helsinki' is not an IANA time zone name, e.g. Europe/Oslo",
        "visma_release: must be true (release documents after creating them) or false (leave them on hold)"]


def test_vat_codes_are_checked_with_their_key_paths_and_loaded_once(tmp_path):
    # given: a float percent (never exact), an unknown key, the same tax twice
    document = example_document()
    document["vat_codes"] = [{"system": "square", "percent": 25.0, "vat_code": "3"},
                             {"system": "square", "percent": "15", "vat_code": "31", "rate": "x"},
                             {"system": "square", "percent": "12", "vat_code": "33"},
                             {"system": "square", "percent": "12.000", "vat_code": "33"}]
    path = write_document(tmp_path / "tenant.json", document)

    # when
    with pytest.raises(CommandError) as raised:
        run("load_tenant", path)

    # then
    assert str(raised.value).splitlines()[1:] == [
        'vat_codes[0].percent: must be a string or a whole number, e.g. "25" (never a float)',
        "vat_codes[1].rate: unknown key; a VAT code mapping has: system, tax_name, percent, vat_code",
        "vat_codes[3]: square any tax at 12.000 % is mapped twice",
    ]
    assert Tenant.objects.count() == 0

    # when: the example's, loaded twice
    path = write_document(tmp_path / "tenant.json", example_document())
    run("load_tenant", path)
    run("load_tenant", path)

    # then: one row each, saved once (one history row each)
    assert VatCodeMapping.objects.count() == 3
    assert VatCodeMapping.history.count() == 3
