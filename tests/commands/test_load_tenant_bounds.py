"""A tenant file is bounded everywhere: every number and string, and the file itself; each refusal names its key and
changes nothing. The last test throws generated documents at it (hypothesis) and accepts only a load or a refusal."""
import json
from decimal import Decimal

import pytest
from django.core.management.base import CommandError
from hypothesis import example, given
from hypothesis import strategies as st

from connectors.models import Connection, Integration, Tenant
from connectors.provisioning import TenantFileError, tenant_load
from mappings.models import GLMappingRule

from .helpers import example_document, run, write_document

pytestmark = pytest.mark.django_db


def refused(tmp_path, document=None, *, raw: bytes | None = None) -> list[str]:
    """The problems load_tenant names for a file (without the first line), after checking nothing was written."""
    path = tmp_path / "tenant.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        write_document(path, document)
    with pytest.raises(CommandError) as raised:
        run("load_tenant", str(path))
    lines = str(raised.value).splitlines()
    assert lines[0] == f"{path} was not loaded; nothing was changed:"
    assert (Tenant.objects.count(), Connection.objects.count(), Integration.objects.count(),
            GLMappingRule.objects.count()) == (0, 0, 0, 0)
    return [line.replace(str(path), "FILE") for line in lines[1:]]


def test_a_call_budget_of_two_to_the_seventieth_is_refused_naming_the_key(tmp_path):
    # given
    document = example_document()
    document["visma"]["hourly_call_budget"] = 2**70

    # then
    assert refused(tmp_path, document) == [
        "visma.hourly_call_budget: must be a whole number from 1 to 1000000, or null for no budget"]


@pytest.mark.parametrize("budget", [True, 1.5, "100", 0, -1, 1_000_001])
def test_a_call_budget_that_is_not_a_whole_number_in_range_is_refused(tmp_path, budget):
    # given
    document = example_document()
    document["integrations"]["stripe"]["hourly_call_budget"] = budget

    # then
    assert refused(tmp_path, document) == [
        "integrations.stripe.hourly_call_budget: must be a whole number from 1 to 1000000, or null for no budget"]


def test_a_ten_megabyte_secret_is_refused_without_echoing_it(tmp_path):
    # given
    document = example_document()
    document["integrations"]["paypal"]["client_secret"] = "s" * (10 * 1024 * 1024)

    # then
    assert refused(tmp_path, document) == [
        "integrations.paypal.client_secret: must be at most 4096 characters (it has 10485760)"]


def test_a_file_larger_than_sixteen_megabytes_is_refused_before_it_is_parsed(tmp_path):
    # then
    assert refused(tmp_path, raw=b" " * (16 * 1024 * 1024 + 1)) == [
        "FILE: larger than 16 MB; a tenant file is a few KB"]


@pytest.mark.parametrize("currency", ["XYZ", "EURO", "€", "N0K"])
def test_an_unknown_currency_is_refused(tmp_path, currency):
    # given
    document = example_document()
    document["mapping_rules"][0]["currency"] = currency

    # then
    assert refused(tmp_path, document) == [
        f"mapping_rules[0].currency: {ascii(currency)} is not an ISO 4217 currency code (e.g. NOK, EUR)"]


def test_a_known_currency_is_taken_in_any_letter_case(tmp_path):
    # given
    document = example_document()
    document["mapping_rules"][0]["currency"] = "nok"

    # when
    run("load_tenant", write_document(tmp_path / "tenant.json", document))

    # then
    assert GLMappingRule.objects.get(name=document["mapping_rules"][0]["name"]).currency == "nok"


@pytest.mark.parametrize("amount", [True, False, ["100"], {"value": "100"}, "", " "])
def test_true_or_a_container_as_an_amount_is_refused(tmp_path, amount):
    # given
    document = example_document()
    document["mapping_rules"][0]["min_amount"] = amount

    # then
    assert refused(tmp_path, document) == [
        'mapping_rules[0].min_amount: must be an amount: a number or a string such as "100.00"']


def test_true_as_a_number_of_seconds_is_refused(tmp_path):
    # given
    document = example_document()
    document["integrations"]["stripe"]["settings"] = {"webhook_tolerance_seconds": True}

    # then
    assert refused(tmp_path, document) == [
        "integrations.stripe.settings.webhook_tolerance_seconds: must be int, got true"]


@pytest.mark.parametrize("setting, value, problem", [
    ("webhook_tolerance_seconds", 2**70, "must be a whole number from 0 to 1000000, got 1180591620717411303424"),
    ("days_until_due", -1, "must be a whole number from 0 to 1000000, got -1"),
    ("collect_currencies", ["NOK", "XYZ"], 'item 1 ("XYZ") is not an ISO 4217 currency code'),
    ("collect_currencies", ["NOK", 7], "item 1 must be printable text of 1 to 500 characters"),
    ("payment_method", "x" * 501, "must be printable text of at most 500 characters"),
])
def test_settings_are_bounded_and_checked_item_by_item(tmp_path, setting, value, problem):
    # given
    document = example_document()
    document["integrations"]["stripe"]["settings"] = {setting: value}

    # then
    assert refused(tmp_path, document) == [f"integrations.stripe.settings.{setting}: {problem}"]


@pytest.mark.parametrize("hosts, problem", [
    (["api.paypal.com", 443], "item 1 must be printable text of 1 to 500 characters"),
    (["https://api.paypal.com/"], 'item 0 ("https://api.paypal.com/") is not a host or host:port'),
    (["127.0.0.1:port"], 'item 0 ("127.0.0.1:port") is not a host or host:port'),
])
def test_certificate_hosts_must_be_hosts(tmp_path, hosts, problem):
    # given
    document = example_document()
    document["integrations"]["paypal"]["settings"] = {"cert_hosts": hosts}

    # then
    assert refused(tmp_path, document) == [f"integrations.paypal.settings.cert_hosts: {problem}"]


def test_a_file_that_is_not_utf8_is_refused_saying_so(tmp_path):
    # given: the example saved as Latin-1 by an old editor ("Nordlys Friluft ÅS")
    text = json.dumps(example_document(), ensure_ascii=False).replace("Nordlys Friluft AS", "Nordlys Friluft ÅS")

    # then
    assert refused(tmp_path, raw=text.encode("latin-1")) == [
        f"FILE: not UTF-8 text (byte {text.index('Å')} cannot be read); save it as UTF-8"]


def test_a_utf8_file_with_a_byte_order_mark_loads(tmp_path):
    # given
    path = tmp_path / "tenant.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(example_document()).encode())

    # when
    run("load_tenant", str(path))

    # then
    assert Tenant.objects.get().slug == "nordlys-friluft"


@pytest.mark.parametrize("raw, problem", [
    (b"[" * 100_000 + b"]" * 100_000, "FILE: nested deeper than JSON can be read"),
    (b'{"slug": ' + b"9" * 5000 + b"}", "FILE: not valid JSON (Exceeds the limit (4300 digits) for integer string "
                                        "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to "
                                        "increase the limit)"),
    (b'{"slug": NaN}', "FILE: not valid JSON (NaN is not a number JSON allows)"),
])
def test_json_no_parser_should_take_is_refused(tmp_path, raw, problem):
    # then
    assert refused(tmp_path, raw=raw) == [problem]


@pytest.mark.parametrize("key, value, problem", [
    ("name", "Nordlys\x00Friluft", "name: must not hold control characters (line breaks, tabs, NUL) or lone "
                                   "surrogates"),
    ("name", "Nordlys \ud800", "name: must not hold control characters (line breaks, tabs, NUL) or lone surrogates"),
    ("slug", ["a"] * 10_001, "slug: has more than 10000 items"),
])
def test_text_a_database_cannot_store_and_oversized_lists_are_refused(tmp_path, key, value, problem):
    # given
    document = example_document()
    document[key] = value

    # then
    assert refused(tmp_path, document) == [problem]


def test_nesting_inside_a_document_is_bounded():
    # given
    document = example_document()
    nested: dict = {}
    deepest = nested
    for _ in range(20):
        deepest["x"] = {}
        deepest = deepest["x"]
    document["integrations"]["stripe"]["settings"] = nested

    # when
    with pytest.raises(TenantFileError) as raised:
        tenant_load(document)

    # then
    assert raised.value.problems == [
        "integrations.stripe.settings" + ".x" * 14 + ": nested deeper than 16 levels"]


# --- generated documents ---------------------------------------------------------------------------------------

JSON_LEAVES = (st.none() | st.booleans() | st.integers(min_value=-(2**80), max_value=2**80)
               | st.decimals(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
               | st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=5))
JSON_VALUES = st.recursive(JSON_LEAVES, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=12), children, max_size=4), max_leaves=12)
KEY_PATHS = [
    ("slug",), ("name",), ("visma",), ("visma", "hourly_call_budget"), ("visma", "client_secret"),
    ("visma", "base_url"), ("integrations",), ("integrations", "stripe"), ("integrations", "stripe", "settings"),
    ("integrations", "stripe", "settings", "webhook_tolerance_seconds"),
    ("integrations", "stripe", "settings", "collect_currencies"), ("integrations", "paypal", "settings", "cert_hosts"),
    ("integrations", "paypal", "poll_minutes"), ("integrations", "paypal", "enabled"), ("mapping_rules",),
    ("mapping_rules", 0), ("mapping_rules", 0, "min_amount"), ("mapping_rules", 0, "currency"),
    ("mapping_rules", 0, "priority"), ("mapping_rules", 0, "dimensions"), ("mapping_rules", 1, "gl_account"),
]


def _replace(document, path, value):
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


@given(changes=st.lists(st.tuples(st.sampled_from(KEY_PATHS), JSON_VALUES), min_size=1, max_size=3))
@example(changes=[(("mapping_rules", 0, "min_amount"), "")])  # found by the thorough profile on PostgreSQL
def test_any_document_is_loaded_whole_or_refused_whole_with_named_problems(changes):
    # given the example with a few keys replaced by anything JSON can hold (or Python can hand over)
    document = example_document()
    for path, value in changes:
        try:
            _replace(document, path, value)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change replaced what this path goes through
    before = (Tenant.objects.count(), Connection.objects.count(), GLMappingRule.objects.count())

    # when
    try:
        result = tenant_load(document)
    except TenantFileError as error:
        # then every problem names where it is, and nothing was written
        assert error.problems
        assert all(": " in problem for problem in error.problems)
        assert (Tenant.objects.count(), Connection.objects.count(), GLMappingRule.objects.count()) == before
        return

    # then what was loaded reads back as it was given
    tenant = Tenant.objects.get(pk=result.tenant.pk)
    assert tenant.name == document["name"]
    for rule in GLMappingRule.objects.filter(tenant=tenant):
        assert rule.min_amount is None or isinstance(rule.min_amount, Decimal)
