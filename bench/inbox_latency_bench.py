"""Webhook → processed: how soon a stored event is taken from the inbox by a real django-q2 cluster.

Starts gunicorn (production settings) and `manage.py qcluster` against a fresh database (SQLite in WAL with
synchronous=FULL, or --database-url postgres://...), on the ORM broker or, with --redis-url, on Redis; sends signed
Stripe events at a steady rate; and reads each event's received_at and processed_at (both stamped by the server's
clock). The events are of a type no stream reads (customer.created), so what is measured is the hand-over, not a
vendor API. Prints p50/p90/p99/max; asserts nothing about time.

    .venv/bin/python bench/inbox_latency_bench.py
    .venv/bin/python bench/inbox_latency_bench.py --redis-url redis://127.0.0.1:6379/0
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stripe_webhook_load import stripe_signature
from webhook_intake_bench import (
    PYTHON,
    ROOT,
    free_port,
    gunicorn_start,
    postgres_database,
    postgres_drop,
    prepare,
)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * q // 100) - 1)]


def event_times(environment: dict[str, str]) -> list[tuple[str, float | None]]:
    script = """
import django, json
django.setup()
from connectors.models import InboundEvent
rows = InboundEvent.objects.values_list("event_id", "received_at", "processed_at", "status")
print(json.dumps([[event_id, (processed - received).total_seconds() if processed else None, status]
                  for event_id, received, processed, status in rows]))
"""
    done = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=environment, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="events sent per second (default 20)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--database-name", default="ml_bench_inbox")
    parser.add_argument("--redis-url", default=None, help="run the cluster on Redis instead of the ORM broker")
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    workdir = Path(tempfile.mkdtemp(prefix="ml-inbox-bench-"))
    if args.database_url:
        database_url = postgres_database(args.database_url, args.database_name)
    else:
        database_url = f"sqlite:///{workdir}/bench.sqlite3"
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "DATABASE_", "REDIS_"))},
        "DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "FERNET_KEYS": Fernet.generate_key().decode(), "DATABASE_URL": database_url, "ML_VAR_DIR": str(workdir),
        "SANDBOX_ENABLED": "false", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
        # The platform's own schedules run too; a call to the (absent) Visma fails at once instead of retrying.
        "HTTP_MAX_RETRIES": "0", "HTTP_CONNECT_TIMEOUT": "0.5",
        "Q_CLUSTER_NAME": f"bench-{secrets.token_hex(3)}",
        **({"REDIS_URL": args.redis_url} if args.redis_url else {}),
    }
    secret = "whsec_" + secrets.token_hex(16)
    server = cluster = None
    try:
        path = prepare(environment, secret)
        port = free_port()
        server = gunicorn_start(environment, port, 2, workdir / "gunicorn.log")
        with open(workdir / "qcluster.log", "ab") as log:
            cluster = subprocess.Popen([PYTHON, "manage.py", "qcluster"], cwd=ROOT, env=environment, stdout=log,
                                       stderr=log, start_new_session=True)
        time.sleep(5)  # the cluster's workers and pusher are up
        broker = "Redis" if args.redis_url else "ORM"
        print(f"inbox latency bench: {'PostgreSQL' if args.database_url else 'SQLite'}, django-q2 on {broker} "
              f"(+ inbox), {args.events} events at {args.rate:g}/s")
        connection = None
        started = time.monotonic()
        for n in range(args.events):
            body = json.dumps({"id": f"evt_latency_{n:06d}", "object": "event", "type": "customer.created",
                               "data": {"object": {"id": f"cus_{n:06d}", "object": "customer"}}}).encode()
            headers = {"Content-Type": "application/json",
                       "Stripe-Signature": stripe_signature(body, secret, int(time.time()))}
            connection = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.will_close:
                connection.close()
                connection = None
            assert response.status == 200, response.status
            time.sleep(max(0.0, started + (n + 1) / args.rate - time.monotonic()))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            rows = event_times(environment)
            if all(latency is not None for _, latency, _ in rows):
                break
            time.sleep(1)
        latencies = [latency for _, latency, _ in rows if latency is not None]
        statuses = {}
        for _, _, status in rows:
            statuses[status] = statuses.get(status, 0) + 1
        if latencies:
            print(f"webhook stored → processed: p50 {percentile(latencies, 50) * 1000:.0f} ms, "
                  f"p90 {percentile(latencies, 90) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms; {len(latencies)}/{len(rows)} processed; {statuses}")
        else:
            print(f"nothing processed within two minutes; see {workdir}/qcluster.log")
    finally:
        for process in (cluster, server):
            if process is None:
                continue
            if process is cluster:
                os.killpg(process.pid, signal.SIGTERM)
            else:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if args.database_url:
            postgres_drop(args.database_url, args.database_name)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
