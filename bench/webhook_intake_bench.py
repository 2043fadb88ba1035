"""Webhook intake under load: signed Stripe events against gunicorn, events/s, p50/p99 and server CPU per event.

Starts gunicorn (2 sync workers, production settings) on a free loopback port against a fresh database: a SQLite
file in WAL mode with synchronous=FULL (the settings' init command), or, with --database-url postgres://..., a
database of its own on that server (created and dropped here). It creates a tenant with a Stripe integration and a
signing secret, then runs bench/stripe_webhook_load.py at 8 requests in flight and at 1, and a flood of refused
deliveries (wrong secret). Server CPU is read from /proc/<pid>/stat of the gunicorn master and its workers before
and after each run. Prints figures; asserts nothing about time.

    .venv/bin/python bench/webhook_intake_bench.py
    .venv/bin/python bench/webhook_intake_bench.py --database-url postgres://postgres@127.0.0.1:5432/postgres

BENCH_GUNICORN_CONFIG=<file> adds a gunicorn config file (e.g. one whose post_fork starts cProfile in each worker).
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOAD = ROOT / "bench" / "stripe_webhook_load.py"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def process_cpu_seconds(pid: int, *, with_reaped_children: bool = False) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (and of its children already reaped, for the master), from
    /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # After the ")" of comm: fields[11] utime, [12] stime, [13] cutime, [14] cstime (stat fields 14-17).
    user, system = int(fields[11]), int(fields[12])
    if with_reaped_children:
        user, system = user + int(fields[13]), system + int(fields[14])
    return user / CLOCK_TICKS, system / CLOCK_TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if parent == pid:
            found.append(int(entry))
    return found


def server_cpu_seconds(master: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the gunicorn master, its live workers, and workers it has reaped."""
    user, system = process_cpu_seconds(master, with_reaped_children=True)
    for worker in children_of(master):
        try:
            worker_user, worker_system = process_cpu_seconds(worker)
        except FileNotFoundError:
            continue
        user, system = user + worker_user, system + worker_system
    return user, system


def postgres_database(url: str, name: str) -> str:
    """A fresh database `name` on the server of `url`; returns its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def postgres_drop(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def prepare(environment: dict[str, str], secret: str) -> str:
    """Migrate and create a tenant with a Stripe integration; returns the integration's webhook path."""
    script = f"""
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from connectors.models import Connection, Integration, Tenant
from connectors.services import integration_save
tenant = Tenant.objects.create(slug="bench", name="Bench AS")
visma = Connection.objects.create(tenant=tenant, system="visma", base_url="http://127.0.0.1:9/visma",
    credentials={{"client_id": "c", "client_secret": "s", "tenant_id": "t", "company_id": "1"}})
stripe = Connection.objects.create(tenant=tenant, system="stripe", base_url="http://127.0.0.1:9/stripe",
    credentials={{"secret_key": "sk_test_bench", "webhook_secrets": [{secret!r}]}})
integration = integration_save(Integration(tenant=tenant, kind="stripe", visma_connection=visma,
    partner_connection=stripe))
print(integration.webhook_path)
"""
    done = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=environment, check=True, capture_output=True,
                          text=True)
    return done.stdout.strip().splitlines()[-1]


def database_counts(environment: dict[str, str]) -> dict:
    script = """
import django, json
django.setup()
from connectors.models import InboundEvent
from audit.models import AuditEntry
from django_q.models import OrmQ
print(json.dumps({"inbound_events": InboundEvent.objects.count(), "orm_queue": OrmQ.objects.count(),
                  "audit_entries": AuditEntry.objects.count()}))
"""
    done = subprocess.run([PYTHON, "-c", script], cwd=ROOT, env=environment, check=True, capture_output=True,
                          text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def gunicorn_start(environment: dict[str, str], port: int, workers: int, logfile: Path) -> subprocess.Popen:
    command = [PYTHON, "-m", "gunicorn", "config.wsgi:application", "--workers", str(workers),
               "--worker-class", "sync", "--bind", f"127.0.0.1:{port}", "--error-logfile", str(logfile),
               *(["--config", os.environ["BENCH_GUNICORN_CONFIG"]] if os.environ.get("BENCH_GUNICORN_CONFIG") else [])]
    # The server's own log (Django's warnings about refused deliveries included) goes to the file, not the report.
    with open(logfile, "ab") as log:
        server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/webhooks/", timeout=2)
        except urllib.error.HTTPError:
            break  # answered (404): up
        except OSError:
            time.sleep(0.2)
            continue
        break
    else:
        server.terminate()
        raise SystemExit(f"gunicorn did not answer on port {port}; see {logfile}")
    # Every worker answers before anything is measured.
    while len(children_of(server.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    return server


def load_run(url: str, secret: str, *, count: int, concurrency: int, prefix: str, start: int, workdir: Path,
             master: int, label: str) -> dict:
    out = workdir / f"{prefix}.json"
    before = server_cpu_seconds(master)
    subprocess.run([PYTHON, str(LOAD), "--url", url, "--secret", secret, "-n", str(count), "-c", str(concurrency),
                    "--event-prefix", prefix, "--start-index", str(start), "--label", label,
                    "--json-out", str(out)], check=True, stdout=subprocess.DEVNULL)
    after = server_cpu_seconds(master)
    result = json.loads(out.read_text())
    result["server_user_s"], result["server_system_s"] = after[0] - before[0], after[1] - before[1]
    result["server_cpu_s"] = result["server_user_s"] + result["server_system_s"]
    return result


def report(result: dict, count: int) -> str:
    latency = result["latency_ms"]
    answered = result["sent"]
    return (f"{result['label']:<24} {result['ok_2xx']:>5}/{count} 2xx  {result['responses_per_s']:>7.1f} req/s  "
            f"p50 {latency['p50'] if latency['p50'] is not None else '-':>6} ms  "
            f"p99 {latency['p99'] if latency['p99'] is not None else '-':>6} ms  "
            f"server CPU {result['server_cpu_s'] * 1000 / max(answered, 1):.2f} ms/request "
            f"(user {result['server_user_s'] * 1000 / max(answered, 1):.2f}, "
            f"system {result['server_system_s'] * 1000 / max(answered, 1):.2f})  status {result['status_counts']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000, help="measured events at 8 in flight (default 3000)")
    parser.add_argument("--serial-events", type=int, default=1000, help="measured events at 1 in flight")
    parser.add_argument("--refused", type=int, default=1000, help="deliveries signed with a wrong secret")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--database-url", default=None,
                        help="postgres://... of a server; the bench creates and drops its own database there")
    parser.add_argument("--database-name", default="ml_bench_intake")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (and its SQLite file)")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="ml-intake-bench-"))
    from cryptography.fernet import Fernet

    if args.database_url:
        database_url = postgres_database(args.database_url, args.database_name)
        database = f"PostgreSQL (database {args.database_name})"
    else:
        database_url = f"sqlite:///{workdir}/bench.sqlite3"
        database = "SQLite (WAL, synchronous from the settings' init command)"
    environment = {
        **{key: value for key, value in os.environ.items()
           if not key.startswith(("DJANGO_", "DATABASE_")) or key == "DATABASE_CONN_MAX_AGE"},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "DATABASE_URL": database_url,
        "ML_VAR_DIR": str(workdir),
        "SANDBOX_ENABLED": "false",
        # Plain http on loopback, as gunicorn sees it behind a TLS proxy: no redirect to https.
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    secret = "whsec_" + secrets.token_hex(16)
    server = None
    try:
        path = prepare(environment, secret)
        port = free_port()
        server = gunicorn_start(environment, port, args.workers, workdir / "gunicorn.log")
        url = f"http://127.0.0.1:{port}{path}"
        run = secrets.token_hex(3)
        print(f"webhook intake bench: {database}; gunicorn {args.workers} sync workers on 127.0.0.1:{port}; "
              f"{os.cpu_count()} CPUs")
        load_run(url, secret, count=args.warmup, concurrency=args.concurrency, prefix=f"{run}w", start=0,
                 workdir=workdir, master=server.pid, label="warm-up")
        results = [
            (load_run(url, secret, count=args.events, concurrency=args.concurrency, prefix=f"{run}c",
                      start=0, workdir=workdir, master=server.pid, label=f"signed, {args.concurrency} in flight"),
             args.events),
            (load_run(url, secret, count=args.serial_events, concurrency=1, prefix=f"{run}s", start=0,
                      workdir=workdir, master=server.pid, label="signed, 1 in flight"), args.serial_events),
        ]
        if args.refused:
            results.append((load_run(url, "whsec_wrong", count=args.refused, concurrency=args.concurrency,
                                     prefix=f"{run}r", start=0, workdir=workdir, master=server.pid,
                                     label=f"refused, {args.concurrency} in flight"), args.refused))
        for result, count in results:
            print(report(result, count))
        print(f"database afterwards: {database_counts(environment)}")
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        if args.database_url:
            postgres_drop(args.database_url, args.database_name)
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
