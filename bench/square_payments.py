"""Square payments delivered by webhook → posted Visma journals: Visma calls and Square calls per posted payment, and
the time from the webhook's delivery to the journal being posted (median, p95).

Both emulators (Visma, Square) run in this process behind a threaded WSGI server on 127.0.0.1 (a fresh SQLite file,
or DATABASE_URL); every call goes over real HTTP through the connector's clients. Each payment is taken at one of
two stores (Oslo, the main location, and Bergen), its payment.created event is delivered signed as Square signs it
(to the integration's notification URL), and processed here as a worker does: the inbox broker claims the stored
event (`inbox_claim`), the task processes it (`connectors.tasks.inbound_event_process`), which re-reads the payment
from Square and posts its journal. The time runs from the delivery's start to the record being posted.

Cases: "fee at once" (Square reported processing_fee with the payment); "fee later" (the payment waits for its fee;
the time runs from the delivery of the payment.updated that brings it). Prints figures; asserts nothing.

Usage: .venv/bin/python bench/square_payments.py [--payments 40] [--database-url URL]
"""
import argparse
import statistics
import time
from collections import Counter

from in_process_sandbox import serve, setup_django


def endpoint(url: str, system: str = "visma") -> str:
    """An exchange's path with ids (numbers, markers used as own numbers) folded, e.g. /v2/journaltransaction/{id}."""
    path = url.split("?", 1)[0].split(f"/sandbox/{system}", 1)[-1]
    parts = path.split("/")[1:]
    # Square's action paths (/v2/invoices/search, /v2/locations/main) are not ids.
    actions = {"search", "main", "batch-retrieve"}
    return "/" + "/".join("{id}" if index >= 2 and part not in actions else part for index, part in enumerate(parts))


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=40, help="payments per case (default 40)")
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    setup_django(args.database_url, prefix="ml-square-payments-")

    from audit.models import RecordStatus, SyncRecord
    from connectors.models import HttpExchange
    from connectors.services import inbox_claim
    from connectors.tasks import inbound_event_process as inbound_event_task
    from sandbox import square_api
    from sandbox.square_webhooks import square_events_deliver
    from tests.e2e.test_square_payments import SquareWorld

    url = serve()
    world = SquareWorld(url)
    visma = world.integration.visma_connection
    square = world.integration.partner_connection

    def work_off() -> None:
        while True:
            claimed = inbox_claim(limit=10)
            if not claimed:
                return
            for event_id in claimed:
                inbound_event_task(event_id)

    print(f"Square payments by webhook, sandbox at {url}, {args.payments} payments per case, two stores")
    totals_calls, totals_posted = 0, 0
    for case in ("fee at once", "fee later"):
        latencies, calls, square_calls, posted = [], 0, 0, 0
        endpoints: Counter = Counter()
        square_endpoints: Counter = Counter()
        for number in range(args.payments):
            store = "Bergen" if number % 2 else "Oslo"
            payment = world.payment(store, 10000 + number * 100, tip=500 if number % 3 == 0 else 0,
                                    fee=290 + number, fee_later=case == "fee later")
            if case == "fee later":
                square_events_deliver(world.merchant)
                work_off()  # the payment waits for its fee
                square_api.square_payment_fee_add(world.merchant, payment["id"])
            last = HttpExchange.objects.order_by("-id").values_list("id", flat=True).first()
            started = time.perf_counter()
            square_events_deliver(world.merchant)
            work_off()
            latencies.append(time.perf_counter() - started)
            record = SyncRecord.objects.get(integration=world.integration, stream="payments", source_id=payment["id"])
            if record.status != RecordStatus.POSTED:
                raise SystemExit(f"{case}: payment {number} not posted ({record.status}: "
                                 f"{record.reasons or record.last_error})")
            posted += 1
            exchanges = HttpExchange.objects.filter(connection=visma, id__gt=last or 0)
            calls += exchanges.count()
            endpoints.update(f"{exchange.method} {endpoint(exchange.url)}" for exchange in exchanges)
            # What the webhook's processing asked Square (the re-read of the payment, the look for its invoice).
            asked = HttpExchange.objects.filter(connection=square, id__gt=last or 0)
            square_calls += asked.count()
            square_endpoints.update(f"{exchange.method} {endpoint(exchange.url, 'square')}" for exchange in asked)
        totals_calls, totals_posted = totals_calls + calls, totals_posted + posted
        print(f"\n{case}: {posted} posted")
        print(f"  Visma calls per posted payment: {calls / posted:.2f}")
        for name, count in sorted(endpoints.items()):
            print(f"    {name}: {count / posted:.2f} per payment")
        print(f"  Square calls per posted payment: {square_calls / posted:.2f}")
        for name, count in sorted(square_endpoints.items()):
            print(f"    {name}: {count / posted:.2f} per payment")
        print(f"  webhook → posted: median {statistics.median(latencies) * 1000:.0f} ms, "
              f"p95 {p95(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
    print(f"\nVisma calls per posted payment: {totals_calls / totals_posted:.2f}")


if __name__ == "__main__":
    main()
