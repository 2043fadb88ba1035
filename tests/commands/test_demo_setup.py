import stat

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from connectors.models import Connection, Integration, Tenant
from mappings.models import GLMappingRule

from .helpers import run

pytestmark = pytest.mark.django_db

BASE_URL = "http://127.0.0.1:8000"


@pytest.fixture
def var_dir(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    return tmp_path


def _logins() -> list[tuple[str, bool, bool, list[str]]]:
    return [
        (user.username, user.is_staff, user.is_superuser, [group.name for group in user.groups.all()])
        for user in get_user_model().objects.order_by("username")
    ]


def test_demo_setup_creates_the_logins_and_the_sandbox_tenant(var_dir):
    # when
    stdout, _ = run("demo_setup", "--base-url", BASE_URL + "/")

    # then
    password_file = var_dir / "admin-password"
    password = password_file.read_text().strip()
    assert len(password) == 16
    assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
    assert stdout.splitlines() == [
        f"Demo tenant nordlys-friluft (paypal, stripe, square) loaded against {BASE_URL}/sandbox/.",
        f"Log in at {BASE_URL}/admin/",
        "  users: admin, accountant, finance, operator",
        f"  password: {password} (kept in {password_file})",
    ]
    assert _logins() == [
        ("accountant", True, False, ["Accountant"]),
        ("admin", True, True, []),
        ("finance", True, False, ["Finance"]),
        ("operator", True, False, ["Operator"]),
    ]
    assert all(user.check_password(password) for user in get_user_model().objects.all())
    assert list(Connection.objects.order_by("system").values_list("system", "base_url", "token_url")) == [
        ("paypal", f"{BASE_URL}/sandbox/paypal", ""),
        ("square", f"{BASE_URL}/sandbox/square", ""),
        ("stripe", f"{BASE_URL}/sandbox/stripe", ""),
        ("visma", f"{BASE_URL}/sandbox/visma", f"{BASE_URL}/sandbox/visma/connect/token"),
    ]
    assert GLMappingRule.objects.count() == 15


def test_the_demo_square_integration_verifies_over_this_installations_notification_url(var_dir):
    # when
    run("demo_setup", "--base-url", BASE_URL + "/")

    # then: Square signs over the URL its subscription was given (docs/square.md §4); the demo's is this host's
    square = Integration.objects.get(kind="square")
    assert square.settings["webhook_notification_url"] == f"{BASE_URL}/webhooks/square/{square.pk}/"


def test_the_demo_paypal_integration_accepts_certificates_from_paypal_and_this_host_only(var_dir):
    # when
    run("demo_setup", "--base-url", BASE_URL + "/")

    # then
    paypal = Integration.objects.get(kind="paypal")
    assert paypal.settings["cert_hosts"] == [
        "api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com", "127.0.0.1:8000",
    ]
    assert Integration.objects.get(kind="stripe").settings.get("cert_hosts") is None


def test_demo_setup_run_again_keeps_the_password_and_the_rows(var_dir):
    # given
    first, _ = run("demo_setup", "--base-url", BASE_URL)
    integration_ids = sorted(Integration.objects.values_list("pk", flat=True))
    get_user_model().objects.filter(username="finance").update(first_name="Kari")

    # when
    second, _ = run("demo_setup", "--base-url", BASE_URL)

    # then
    assert second == first
    assert sorted(Integration.objects.values_list("pk", flat=True)) == integration_ids
    assert (get_user_model().objects.count(), Tenant.objects.count(), Connection.objects.count(),
            GLMappingRule.objects.count()) == (4, 1, 4, 15)
    assert get_user_model().objects.get(username="finance").first_name == "Kari"


def test_a_password_changed_in_the_admin_survives_a_restart(var_dir):
    # given
    run("demo_setup", "--base-url", BASE_URL)
    admin = get_user_model().objects.get(username="admin")
    admin.set_password("chosen-by-the-admin-42")
    admin.save()

    # when
    run("demo_setup", "--base-url", BASE_URL)

    # then
    assert get_user_model().objects.get(username="admin").check_password("chosen-by-the-admin-42")


def test_a_new_password_file_is_given_to_every_demo_user(var_dir):
    # given: the password file was deleted after a first run
    run("demo_setup", "--base-url", BASE_URL)
    old = (var_dir / "admin-password").read_text().strip()
    (var_dir / "admin-password").unlink()

    # when
    run("demo_setup", "--base-url", BASE_URL)

    # then
    new = (var_dir / "admin-password").read_text().strip()
    assert new != old
    assert all(user.check_password(new) for user in get_user_model().objects.all())


def test_without_the_sandbox_the_demo_tenant_is_not_loaded(var_dir):
    # when
    with override_settings(SANDBOX_ENABLED=False):
        stdout, _ = run("demo_setup", "--base-url", BASE_URL)

    # then
    assert stdout.splitlines()[0] == "Sandbox is off (SANDBOX_ENABLED=false): the demo tenant was not loaded."
    assert (Tenant.objects.count(), Connection.objects.count(), Integration.objects.count()) == (0, 0, 0)
    assert [login[0] for login in _logins()] == ["accountant", "admin", "finance", "operator"]
