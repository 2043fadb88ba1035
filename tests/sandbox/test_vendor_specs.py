"""The vendor documents ship with the repository, unchanged, and a missing or broken one stops the sandbox by name."""
import hashlib

import pytest
from django.core.checks import run_checks
from django.test import Client

from sandbox import openapi_index
from sandbox.checks import vendor_specs_check, vendor_specs_read_by_sandbox
from sandbox.models import StripeAccount, StripeObject
from sandbox.openapi import visma_openapi
from sandbox.openapi_index import VENDOR_SPECS_DIR, VendorSpecUnreadable
from sandbox.stripe_openapi import stripe_request_problems
from tests.stripe.conftest import SECRET_KEY

RESTORE_HINT = (  # written out: the message an operator reads
    "The vendor documents ship with the repository (sandbox/vendor_specs/README.md); "
    "restore them with `git checkout -- sandbox/vendor_specs`."
)


def _recorded_sums() -> dict[str, str]:
    """SHA256SUMS as `sha256sum -c` reads it: digest, two spaces, path."""
    sums = {}
    for line in (VENDOR_SPECS_DIR / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name] = digest
    return sums


@pytest.fixture
def specs_dir(tmp_path, monkeypatch):
    """An empty vendor_specs folder in place of the repository's, and no document loaded yet in this process."""
    monkeypatch.setattr(openapi_index, "VENDOR_SPECS_DIR", tmp_path)
    monkeypatch.setattr(openapi_index, "_indexes", {})
    return tmp_path


def test_every_vendor_document_is_the_published_one_its_sources_name():
    # given
    documents = sorted(
        str(path.relative_to(VENDOR_SPECS_DIR)) for path in VENDOR_SPECS_DIR.glob("*/*") if path.suffix != ".md"
    )

    # when
    sums = _recorded_sums()

    # then
    assert sorted(sums) == documents
    for name, digest in sums.items():
        assert hashlib.sha256((VENDOR_SPECS_DIR / name).read_bytes()).hexdigest() == digest, name
        vendor, _, file_name = name.partition("/")
        assert f"{file_name}" in (VENDOR_SPECS_DIR / vendor / "SOURCES.md").read_text(), name


def test_the_documents_the_sandbox_reads_are_all_in_the_repository():
    # when
    read = vendor_specs_read_by_sandbox()

    # then
    assert read == [
        "visma-net-erp/swagger.json",
        "stripe/spec3.yaml",
        "paypal/payments_payment_v2.json",
        "paypal/checkout_orders_v2.json",
        "paypal/reporting_transactions_v1.json",
        "paypal/invoicing_v2.json",
    ]
    assert set(read) <= set(_recorded_sums())
    assert vendor_specs_check() == []
    assert [message.id for message in run_checks() if message.id.startswith("sandbox.")] == []


def test_the_start_up_check_names_each_missing_document(specs_dir):
    # given
    (specs_dir / "stripe").mkdir()
    (specs_dir / "stripe/spec3.yaml").write_bytes(b"")
    (specs_dir / "visma-net-erp").mkdir()
    (specs_dir / "visma-net-erp/swagger.json").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:c3a55456\nsize 4073134\n"
    )

    # when
    errors = vendor_specs_check()

    # then
    assert [(error.id, error.msg, error.hint) for error in errors] == [
        ("sandbox.E001", f"{specs_dir}/visma-net-erp/swagger.json is a Git LFS pointer, not the document",
         RESTORE_HINT),
        ("sandbox.E001", f"{specs_dir}/stripe/spec3.yaml is empty", RESTORE_HINT),
        ("sandbox.E001", f"{specs_dir}/paypal/payments_payment_v2.json cannot be read (No such file or directory)",
         RESTORE_HINT),
        ("sandbox.E001", f"{specs_dir}/paypal/checkout_orders_v2.json cannot be read (No such file or directory)",
         RESTORE_HINT),
        ("sandbox.E001",
         f"{specs_dir}/paypal/reporting_transactions_v1.json cannot be read (No such file or directory)",
         RESTORE_HINT),
        ("sandbox.E001", f"{specs_dir}/paypal/invoicing_v2.json cannot be read (No such file or directory)",
         RESTORE_HINT),
    ]


@pytest.mark.django_db
def test_a_sandbox_call_with_its_document_missing_fails_naming_the_file_and_creates_nothing(specs_dir):
    # given
    StripeAccount.objects.create(secret_key=SECRET_KEY, name="Nordlys AS", default_currency="nok")
    client = Client()

    # when
    with pytest.raises(VendorSpecUnreadable) as failure:
        client.post("/sandbox/stripe/v1/customers", "name=Fjellsport+AS",
                    content_type="application/x-www-form-urlencoded", headers={"Authorization": f"Bearer {SECRET_KEY}"})

    # then
    assert str(failure.value) == (
        f"The sandbox cannot read Stripe API from {specs_dir}/stripe/spec3.yaml: FileNotFoundError: [Errno 2] No "
        f"such file or directory: '{specs_dir}/stripe/spec3.yaml'. {RESTORE_HINT}"
    )
    assert StripeObject.objects.count() == 0
    assert openapi_index._indexes == {}


def test_a_truncated_document_fails_naming_the_file_and_is_read_again_once_restored(specs_dir, monkeypatch):
    # given
    (specs_dir / "visma-net-erp").mkdir()
    (specs_dir / "visma-net-erp/swagger.json").write_text('{"openapi": "3.0.4", "paths": {"/v1/acc')

    # when
    with pytest.raises(VendorSpecUnreadable) as failure:
        visma_openapi()
    monkeypatch.setattr(openapi_index, "VENDOR_SPECS_DIR", VENDOR_SPECS_DIR)
    restored = visma_openapi()

    # then
    assert str(failure.value).startswith(
        f"The sandbox cannot read Visma.net ERP API from {specs_dir}/visma-net-erp/swagger.json: JSONDecodeError: "
    )
    assert len(restored.document["paths"]) == 383


def test_a_document_that_is_not_openapi_is_refused_by_name(specs_dir):
    # given
    (specs_dir / "stripe").mkdir()
    (specs_dir / "stripe/spec3.yaml").write_text("- just\n- a list\n")

    # when
    with pytest.raises(VendorSpecUnreadable) as failure:
        stripe_request_problems("GET", "/v1/customers", {})

    # then
    assert str(failure.value) == (
        f"The sandbox cannot read Stripe API from {specs_dir}/stripe/spec3.yaml: it is not an OpenAPI document "
        f"(no paths). {RESTORE_HINT}"
    )


def test_inside_the_repository_the_file_is_named_from_the_repository_root():
    # when
    shown = openapi_index.vendor_spec_shown(VENDOR_SPECS_DIR / "stripe/spec3.yaml")

    # then
    assert shown == "sandbox/vendor_specs/stripe/spec3.yaml"
