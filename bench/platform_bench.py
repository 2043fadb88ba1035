"""Platform figures: webhook acknowledgement latency, records posted per second, queries per record, poll memory.

Runs the engine with the tests' payments stream against a fresh SQLite file (or DATABASE_URL), prints figures,
asserts nothing about time. Usage: .venv/bin/python bench/platform_bench.py [--events 500] [--poll 2000]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import resource
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database_url: str | None) -> None:
    workdir = tempfile.mkdtemp(prefix="ml-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ["HTTP_LOG_EXCHANGES"] = "false"
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--poll", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_django(args.database_url)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from audit.models import SyncRecord
    from connectors import registry
    from connectors.models import InboundEvent
    from connectors.pipeline import stream_poll
    from connectors.services import inbox_process
    from tests import ledger_stream
    from tests.factories import ConnectionFactory, GLAccountFactory, GLMappingRuleFactory, IntegrationFactory

    spec = registry.kind_spec("paypal")
    spec.streams["payments"] = ledger_stream.PaymentsStream
    spec.verifier = ledger_stream.TestHmacVerifier()
    integration = IntegrationFactory(
        partner_connection=ConnectionFactory(
            system="paypal", credentials={"client_id": "c", "client_secret": "s", "webhook_secret": "bench"}
        )
    )
    for number in ("3000", "7770", "1920"):
        GLAccountFactory(tenant=integration.tenant, number=number)
    GLMappingRuleFactory(tenant=integration.tenant)

    # 1. webhook intake: verify + store + acknowledge (processing happens later, in workers)
    client = Client()
    latencies = []
    for n in range(args.events):
        ledger_stream.SOURCE[f"W-{n}"] = {"amount": f"{100 + n}.25", "fee": "3.10", "currency": "EUR"}
        body = json.dumps({"id": f"EVT-{n}", "type": "payment.completed", "resource_id": f"W-{n}"}).encode()
        started = time.perf_counter()
        response = client.post(integration.webhook_path, data=body, content_type="application/json",
                               HTTP_X_TEST_SIGNATURE=ledger_stream.sign("bench", body))
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.content
    latencies.sort()
    print(f"webhook ack: {args.events} events, p50 {statistics.median(latencies):.1f} ms, "
          f"p95 {latencies[int(len(latencies) * 0.95) - 1]:.1f} ms, max {latencies[-1]:.1f} ms; "
          f"stored {InboundEvent.objects.count()}")

    # 2. processing the inbox: each event re-read, recorded, mapped, validated, posted
    started = time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        processed = inbox_process()
    elapsed = time.perf_counter() - started
    posted = SyncRecord.objects.filter(status="posted").count()
    print(f"inbox: {processed} events → {posted} posted in {elapsed:.2f} s ({posted / elapsed:.0f} records/s), "
          f"{len(queries) / max(processed, 1):.1f} queries per event, ledger writes {ledger_stream.LEDGER.writes}")

    # 3. a poll over many objects: streamed, memory bounded
    ledger_stream.SOURCE.clear()
    for n in range(args.poll):
        ledger_stream.SOURCE[f"P-{n:06d}"] = {"amount": f"{10 + n % 90}.50", "fee": "0.80", "currency": "EUR"}
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    run = stream_poll(integration, "payments", trigger="manual")
    elapsed = time.perf_counter() - started
    rss_growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    print(f"poll: {run.fetched} fetched, {run.posted} posted, {run.skipped} skipped in {elapsed:.2f} s "
          f"({run.fetched / elapsed:.0f} records/s), peak RSS growth {rss_growth / 1024:.1f} MB")

    # 4. the same window again: everything recognised, nothing written twice
    writes_before = ledger_stream.LEDGER.writes
    started = time.perf_counter()
    rerun = stream_poll(integration, "payments", trigger="manual")
    elapsed = time.perf_counter() - started
    print(f"re-poll: {rerun.fetched} fetched, {rerun.skipped} skipped, "
          f"{ledger_stream.LEDGER.writes - writes_before} new writes in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
