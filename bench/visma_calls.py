"""Visma API calls per posted record: a batch of journals through the pipeline into the sandbox Visma, warm and cold.

Starts the sandbox in a real server (manage.py runserver on a free loopback port, a temporary SQLite file shared
with this process), posts `--records` PayPal-like captures as journals with the reference mirror refreshed first
(warm) and with an empty mirror (cold: live checks fill it), and prints calls per posted record, token requests,
429 answers and the busiest hour against the sandbox's budget. Asserts nothing about time.
Usage: .venv/bin/python bench/visma_calls.py [--records 1000] [--budget 10000]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
WARM_GOAL = 1.05  # Visma API calls per posted record with the mirror current


def environment_set(workdir: str) -> dict:
    """This process and the server share one SQLite file, the tests' fixed keys and the sandbox."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.test_settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
    os.environ["SANDBOX_ENABLED"] = "true"
    os.environ["HTTP_LOG_EXCHANGES"] = "true"  # the calls are counted from the exchange log
    os.environ["LOG_LEVEL"] = "WARNING"
    return dict(os.environ)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_start(env: dict, port: int, log_path: Path) -> subprocess.Popen:
    log = log_path.open("w")
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the sandbox server exited ({server.returncode}); see {log_path}")
        try:
            requests.get(f"http://127.0.0.1:{port}/sandbox/visma/_state/balances", timeout=2)
            return server
        except requests.ConnectionError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit(f"the sandbox server did not answer within 60 s; see {log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=10_000, help="the sandbox client's hourly call budget")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="ml-visma-bench-")
    env = environment_set(workdir)

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    port = free_port()
    server = server_start(env, port, Path(workdir) / "server.log")
    try:
        run(args, base_url=f"http://127.0.0.1:{port}/sandbox/visma")
    finally:
        server.terminate()
        server.wait(timeout=30)


def run(args, *, base_url: str) -> None:
    from datetime import date

    from audit.models import SyncRecord
    from connectors import registry
    from connectors.models import HttpExchange
    from connectors.pipeline import SourceObject, Stream, stream_poll
    from connectors.visma.target import VismaTarget
    from mappings.documents import MatchFacts, Posting, PostingLine
    from mappings.reference import reference_data_refresh
    from sandbox.models import VismaCallWindow
    from sandbox.services import (
        VISMA_SANDBOX_CLIENT_ID, VISMA_SANDBOX_CLIENT_SECRET, VISMA_SANDBOX_COMPANY_ID, VISMA_SANDBOX_TENANT_ID,
        visma_client_configure, visma_sandbox_seed,
    )
    from tests.factories import ConnectionFactory, GLMappingRuleFactory, IntegrationFactory, TenantFactory

    class BenchCaptures(VismaTarget, Stream):
        """`count` captures (gross, fee) → balanced journals on 1580 / 7770 / 3000, department 100."""

        name = "bench_captures"
        kind = "paypal"
        target_kind = "journal"
        count = 0
        prefix = ""

        def read_window(self, start, end):
            for number in range(self.count):
                yield self.read_one(f"{self.prefix}-{number:05d}")

        def read_one(self, source_id):
            number = int(source_id.rsplit("-", 1)[1])
            gross = Decimal(100 + number % 900) + Decimal("0.25")
            return SourceObject(source_id=source_id, payload={"gross": str(gross), "fee": "3.10"}, amount=gross,
                                currency="SEK")

        def transform(self, source):
            gross, fee = Decimal(source.payload["gross"]), Decimal(source.payload["fee"])
            return Posting(
                document="journal", marker=self.marker(source.source_id), currency="SEK", date=date(2026, 3, 10),
                description=f"PayPal capture {source.source_id}",
                facts=MatchFacts(transaction_type="capture", amount=gross, currency="SEK"),
                lines=[PostingLine(role="clearing", debit=gross - fee), PostingLine(role="fee", debit=fee),
                       PostingLine(role="account", credit=gross)],
            )

    visma_sandbox_seed()
    visma_client_configure(hourly_call_budget=args.budget)
    registry.kind_spec("paypal").streams[BenchCaptures.name] = BenchCaptures
    print(f"sandbox at {base_url}; {args.records} journals per pass; sandbox budget {args.budget} calls/hour")

    results = []
    for label, warm in (("warm", True), ("cold", False)):
        tenant = TenantFactory(slug=f"bench-{label}")
        connection = ConnectionFactory(
            tenant=tenant, system="visma", base_url=base_url, token_url=f"{base_url}/connect/token",
            credentials={"client_id": VISMA_SANDBOX_CLIENT_ID, "client_secret": VISMA_SANDBOX_CLIENT_SECRET,
                         "tenant_id": VISMA_SANDBOX_TENANT_ID, "company_id": VISMA_SANDBOX_COMPANY_ID},
        )
        integration = IntegrationFactory(tenant=tenant, kind="paypal")
        GLMappingRuleFactory(tenant=tenant, system="paypal", name="PayPal captures", gl_account="3000",
                             fee_account="7770", clearing_account="1580", dimensions={"1": "100"})
        refresh_calls = 0
        if warm:
            reference_data_refresh(tenant)
            refresh_calls = _api_calls(HttpExchange, connection).count()
        first_exchange = HttpExchange.objects.order_by("-id").values_list("id", flat=True).first() or 0
        BenchCaptures.count, BenchCaptures.prefix = args.records, f"CAP-{label}"
        started = time.perf_counter()
        stream_poll(integration, BenchCaptures.name)
        elapsed = time.perf_counter() - started
        api = _api_calls(HttpExchange, connection).filter(id__gt=first_exchange)
        # A connection per pass: its token requests (the refresh's included) are the pass's.
        tokens = HttpExchange.objects.filter(connection=connection, url__contains="/connect/token").count()
        posted = SyncRecord.objects.filter(integration=integration, status="posted").count()
        by_kind = {
            "journal POSTs": api.filter(method="POST", url__contains="/v2/journaltransaction").count(),
            "journal lookups": api.filter(method="GET", url__contains="/v2/journaltransaction").count(),
            "reference reads": api.filter(method="GET").exclude(url__contains="/v2/journaltransaction").count(),
        }
        results.append((label, posted, api.count(), tokens,
                        api.filter(status_code=429).count(), refresh_calls, by_kind, elapsed))

    print()
    print(f"{'pass':<6} {'posted':>6} {'API calls':>9} {'per record':>10} {'tokens':>6} {'429s':>5}  "
          f"{'breakdown':<60} {'seconds':>7}")
    for label, posted, calls, tokens, throttled, refresh_calls, by_kind, elapsed in results:
        per_record = calls / posted if posted else float("nan")
        breakdown = ", ".join(f"{count} {name}" for name, count in by_kind.items())
        print(f"{label:<6} {posted:>6} {calls:>9} {per_record:>10.3f} {tokens:>6} {throttled:>5}  {breakdown:<60} "
              f"{elapsed:>7.1f}")
        if refresh_calls:
            print(f"       (the warm pass's mirror refresh before it: {refresh_calls} API calls, not counted above)")
    warm_per_record = results[0][2] / results[0][1] if results[0][1] else float("nan")
    verdict = "met" if warm_per_record <= WARM_GOAL else "NOT met"
    print(f"goal: at most {WARM_GOAL} API calls per record warm: {verdict} ({warm_per_record:.3f})")
    windows = list(VismaCallWindow.objects.order_by("window_start").values_list("window_start", "calls"))
    busiest = max((calls for _, calls in windows), default=0)
    throttled = sum(result[4] for result in results)
    exceeded = "yes" if throttled or busiest > args.budget else "no"
    print(f"hourly budget exceeded: {exceeded} (busiest clock hour {busiest} of {args.budget} calls in the sandbox, "
          f"{throttled} answers 429)")


def _api_calls(model, connection):
    """The ERP API calls of a connection: its exchanges less the token requests to Visma Connect."""
    return model.objects.filter(connection=connection).exclude(url__contains="/connect/token")


if __name__ == "__main__":
    main()
