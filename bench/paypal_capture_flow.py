"""PayPal → Visma capture figures in the sandbox: Visma (and PayPal) calls per capture, by kind of capture, and the
time from a PayPal webhook arriving to its journal being posted.

Both emulators run in this process behind a threaded WSGI server on 127.0.0.1 (a fresh SQLite file, or
DATABASE_URL); every call goes over real HTTP through the connector's clients. Each webhook is processed as soon as
it is acknowledged, as a worker with an empty queue would (django-q2's ORM broker adds its own poll, 1 s by default).
Prints figures; asserts nothing about time.

Usage: .venv/bin/python bench/paypal_capture_flow.py [--captures 40] [--database-url URL]
(DATABASE_URL in the environment is used when --database-url is not given; the database is migrated, and should be
an empty one of its own.)
"""
import argparse
import os
import statistics
import time
from collections import Counter

from in_process_sandbox import serve, setup_django


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def endpoint(url: str) -> str:
    """An exchange's method-less path with ids folded, e.g. /v2/journaltransaction, /v1/customerinvoice."""
    path = url.split("?", 1)[0].split("/sandbox/", 1)[-1]
    parts = path.split("/")[1:]
    return "/" + "/".join(part if not any(char.isdigit() for char in part) or part in ("v1", "v2") else "{id}"
                          for part in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captures", type=int, default=40, help="captures per kind (default 40)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_django(args.database_url, prefix="ml-paypal-bench-")

    from decimal import Decimal

    from audit.models import AuditEntry, RecordStatus
    from connectors.models import HttpExchange, InboundEvent
    from connectors.pipeline import stream_poll
    from sandbox.paypal import paypal_capture_create
    from sandbox.paypal_webhooks import paypal_delivery_build, paypal_delivery_send
    from tests.paypal.world import ANNA, MIKKO, hours_ago, world_build

    url = serve()
    world = world_build(url)
    visma, paypal = world.integration.visma_connection, world.integration.partner_connection
    kinds = {
        "plain capture (journal)": dict(payer=ANNA),
        "capture naming a reference Visma lacks (lookup + journal)": dict(payer=ANNA, invoice_id="WEB-9999"),
        "capture paying Visma invoice WEB-1002 (customer payment + fee journal)": dict(payer=MIKKO,
                                                                                     invoice_id="WEB-1002"),
    }
    print(f"PayPal → Visma capture flow, sandbox at {url}, {args.captures} captures per kind "
          f"({os.environ['DATABASE_URL'].split(':', 1)[0]})")
    acks, arrival_to_posted = [], []
    for label, options in kinds.items():
        visma_calls, paypal_calls, visma_endpoints = [], [], Counter()
        for number in range(args.captures):
            # The webshop invoice is paid in full each time (the emulated Visma keeps its balance).
            amount = Decimal("120.00") if options.get("invoice_id") == "WEB-1002" else Decimal("100.00") + number
            paypal_capture_create(amount=amount, currency="EUR", at=hours_ago(0), notify=False, **options)
            event = world.last_event("PAYMENT.CAPTURE.COMPLETED")
            last_visma = HttpExchange.objects.filter(connection=visma).order_by("-id").values_list(
                "id", flat=True).first() or 0
            paypal_before = HttpExchange.objects.filter(connection=paypal).count()
            delivery = paypal_delivery_build(event, webhook_id=world.subscription.webhook_id)
            started = time.perf_counter()
            response = paypal_delivery_send(delivery, f"{url}{world.integration.webhook_path}")
            acks.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.content
            world.process_inbox()
            inbound = InboundEvent.objects.get(event_id=event.event_id)
            record = world.record("captures", event.body["resource"]["id"])
            assert record.status == RecordStatus.POSTED, (record.status, record.reasons, record.last_error)
            posted_at = AuditEntry.objects.filter(sync_record=record, to_status=RecordStatus.POSTED).get().created_at
            arrival_to_posted.append((posted_at - inbound.received_at).total_seconds() * 1000)
            exchanges = HttpExchange.objects.filter(connection=visma, id__gt=last_visma)
            visma_calls.append(exchanges.count())
            visma_endpoints.update(f"{exchange.method} {endpoint(exchange.url)}" for exchange in exchanges)
            paypal_calls.append(HttpExchange.objects.filter(connection=paypal).count() - paypal_before)
        print(f"\n{label}:")
        print(f"  Visma calls per capture: mean {statistics.mean(visma_calls):.2f} "
              f"(min {min(visma_calls)}, max {max(visma_calls)}); PayPal calls per capture: mean "
              f"{statistics.mean(paypal_calls):.2f}")
        for name, count in sorted(visma_endpoints.items()):
            print(f"    {name}: {count / args.captures:.2f} per capture")

    print(f"\nwebhook acknowledged (verify + store, certificate cached): p50 {statistics.median(acks):.1f} ms, "
          f"p95 {percentile(acks, 0.95):.1f} ms, max {max(acks):.1f} ms")
    print(f"webhook arrived → journal/payment posted in Visma: p50 {statistics.median(arrival_to_posted):.1f} ms, "
          f"p95 {percentile(arrival_to_posted, 0.95):.1f} ms, max {max(arrival_to_posted):.1f} ms "
          f"({len(arrival_to_posted)} captures)")

    # The poll path: captures whose webhook never came, found by Transaction Search.
    for number in range(args.captures):
        paypal_capture_create(amount=Decimal("10.00") + number, currency="EUR", payer=ANNA, at=hours_ago(4),
                              notify=False)
    visma_before = HttpExchange.objects.filter(connection=visma).count()
    paypal_before = HttpExchange.objects.filter(connection=paypal).count()
    started = time.perf_counter()
    run = stream_poll(world.integration, "captures")
    seconds = time.perf_counter() - started
    print(f"\npoll of {run.fetched} captures ({run.posted} posted, {run.skipped} already posted): {seconds:.2f} s; "
          f"Visma calls {HttpExchange.objects.filter(connection=visma).count() - visma_before}, PayPal calls "
          f"{HttpExchange.objects.filter(connection=paypal).count() - paypal_before}")


if __name__ == "__main__":
    main()
