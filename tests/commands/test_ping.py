import pytest

from connectors import registry
from connectors.errors import AuthenticationError
from tests.factories import ConnectionFactory, TenantFactory

from .helpers import run, run_refused

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_clients(monkeypatch):
    """No system has a ping unless a test registers one: nothing here may call a real vendor."""
    for spec in registry.KINDS.values():
        monkeypatch.setattr(spec, "ping", None)


@pytest.fixture
def tenant():
    """Nordlys with Visma, PayPal (its client secret missing) and Stripe connections."""
    tenant = TenantFactory(slug="nordlys-friluft")
    ConnectionFactory(tenant=tenant, system="visma")
    ConnectionFactory(tenant=tenant, system="paypal", credentials={"client_id": "pp-client", "webhook_id": "WH-1"})
    ConnectionFactory(tenant=tenant, system="stripe")
    return tenant


def test_missing_credentials_fail_and_systems_without_a_client_are_not_checked(tenant):
    # when
    error, stdout, _ = run_refused("ping", "nordlys-friluft")

    # then
    assert stdout.splitlines() == [
        "visma: NOT CHECKED — no client for visma in this version",
        "paypal: FAILED — credentials lack client_secret",
        "stripe: NOT CHECKED — no client for stripe in this version",
    ]
    assert str(error) == "1 of 3 connection check(s) failed: paypal."


def test_a_kind_checks_only_visma_and_that_system(tenant):
    # when
    stdout, _ = run("ping", "nordlys-friluft", "stripe")

    # then
    assert stdout.splitlines() == [
        "visma: NOT CHECKED — no client for visma in this version",
        "stripe: NOT CHECKED — no client for stripe in this version",
    ]


def test_a_registered_ping_reports_ok_or_why_it_failed_without_the_secret(tenant, monkeypatch):
    # given
    calls = []

    def visma_ping(connection):
        calls.append(connection.system)
        return f"company {connection.credentials['company_id']} answered"

    def stripe_ping(connection):
        calls.append(connection.system)
        raise AuthenticationError(f"Invalid API Key provided: {connection.credentials['secret_key']}", status_code=401)

    monkeypatch.setattr(registry.KINDS["visma"], "ping", visma_ping)
    monkeypatch.setattr(registry.KINDS["stripe"], "ping", stripe_ping)

    # when
    error, stdout, _ = run_refused("ping", "nordlys-friluft", "stripe")

    # then
    assert stdout.splitlines() == [
        "visma: OK — company 1234567 answered",
        "stripe: FAILED — AuthenticationError: Invalid API Key provided: ***",
    ]
    assert str(error) == "1 of 2 connection check(s) failed: stripe."
    assert calls == ["visma", "stripe"]


def test_a_connection_missing_credentials_is_not_pinged(tenant, monkeypatch):
    # given
    calls = []
    monkeypatch.setattr(registry.KINDS["paypal"], "ping", lambda connection: calls.append(connection) or "fine")

    # when
    _, stdout, _ = run_refused("ping", "nordlys-friluft", "paypal")

    # then
    assert stdout.splitlines()[1] == "paypal: FAILED — credentials lack client_secret"
    assert calls == []


@pytest.mark.parametrize(("args", "message"), [
    (("nobody",), "No tenant with slug 'nobody'."),
    (("nordlys-friluft", "square"), "Tenant nordlys-friluft has no square connection."),
])
def test_an_unknown_tenant_or_connection_is_refused(tenant, args, message):
    # when
    error, stdout, _ = run_refused("ping", *args)

    # then
    assert str(error) == message
    assert stdout == ""
