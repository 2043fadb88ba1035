"""Shared fixtures: the test stream and verifier registered on a kind, a ledger reset per test."""
import os

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from connectors import registry
from tests import ledger_stream

# Property-based tests: bounded for CI (HYPOTHESIS_PROFILE=thorough for a long run); no example database in the tree;
# one database per test function, so examples share it (each test checks what changed, not what exists).
hypothesis_settings.register_profile(
    "ci", max_examples=150, deadline=None, database=None, print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
hypothesis_settings.register_profile("thorough", parent=hypothesis_settings.get_profile("ci"), max_examples=3000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Every request a test sends to Visma is checked against the published OpenAPI file.
pytest_plugins = ["tests.visma_openapi_check"]


def pytest_collection_modifyitems(config, items):
    on_postgres = os.environ.get("DATABASE_URL", "").startswith(("postgres", "postgresql"))
    for item in items:
        if "postgres" in item.keywords and not on_postgres:
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL (DATABASE_URL=postgres://...)"))
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(pytest.mark.skip(reason="needs Redis (REDIS_URL=redis://...)"))
        if "start_script" in item.keywords and "start_script" not in (config.getoption("markexpr") or ""):
            item.add_marker(pytest.mark.skip(reason="slow: runs scripts/start (scripts/test -m start_script)"))


@pytest.fixture(autouse=True)
def _budget_memo_clear():
    """What a process remembers of call budgets and mirror reads belongs to one test's database."""
    from connectors.http import call_budget_memo_clear
    from mappings.reference import reference_memo_clear

    call_budget_memo_clear()
    reference_memo_clear()
    yield
    call_budget_memo_clear()
    reference_memo_clear()


@pytest.fixture
def payments_stream():
    """Register the tests' payments stream and HMAC verifier on the paypal kind for one test."""
    spec = registry.kind_spec("paypal")
    saved = (spec.streams, spec.verifier)
    spec.streams = {**saved[0], "payments": ledger_stream.PaymentsStream}
    spec.verifier = ledger_stream.TestHmacVerifier()
    ledger_stream.LEDGER.__init__()
    ledger_stream.SOURCE.reset()
    yield ledger_stream
    spec.streams, spec.verifier = saved
    ledger_stream.SOURCE.reset()


@pytest.fixture
def register_stream():
    """Register a stream class on a kind for one test; the kind's streams are as they were afterwards."""
    saved = {}

    def register(kind: str, stream_class) -> None:
        spec = registry.kind_spec(kind)
        saved.setdefault(kind, spec.streams)
        spec.streams = {**spec.streams, stream_class.name: stream_class}

    yield register
    for kind, streams in saved.items():
        registry.kind_spec(kind).streams = streams


@pytest.fixture(autouse=True)
def refusal_counts_of_this_test_only():
    """Refused-delivery counts wait in this process between flushes: none may reach another test's database."""
    from connectors import refusals

    yield
    with refusals._lock:
        refusals._pending.clear()
        refusals._written.clear()
        if refusals._timer is not None:
            refusals._timer.cancel()
            refusals._timer = None
