"""What one posted record costs: database queries and Visma calls, per kind of PayPal capture, warm reference data.

Both emulators (Visma, PayPal) run in this process behind a threaded WSGI server on 127.0.0.1 (a fresh SQLite file,
or DATABASE_URL); every call goes over real HTTP through the connector's clients. Each capture's webhook is
delivered signed, then processed here as a worker does: the inbox broker claims the stored event
(`inbox_claim`), the task processes it (`connectors.tasks.inbound_event_process`). The queries counted are this
process's (the worker's), from claiming the event to the record being posted; the emulators' and the webhook
intake's own queries run on the server's threads and are not counted. Visma calls are counted from the exchange
log.

Cases: captures found by a poll of Transaction Search (no webhook; a journal each); then, each from its webhook:
plain captures (a journal); captures naming an invoice reference Visma lacks (a journal); captures paying a Visma
invoice (a customer payment applied to it, and its fee journal; each capture pays an invoice of its own, created
and released in the emulated Visma beforehand). `--release on` (the tenant default) releases every document after it
is created and stores Visma's status; `--release off` leaves them on hold. The last two lines are the figures for webhook
captures (plain and naming an unknown invoice, together): queries per posted record and Visma calls per posted
record.
Prints figures; asserts nothing.

Usage: .venv/bin/python bench/posting_costs.py [--captures 40] [--release on|off] [--database-url URL]
"""
import argparse
import os
import statistics
from collections import Counter
from decimal import Decimal

from in_process_sandbox import serve, setup_django


class QueryCounter:
    """Counts this thread's queries (Django's execute wrapper), by the statement's first word and table."""

    def __init__(self):
        self.count = 0
        self.kinds: Counter = Counter()

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        words = sql.split()
        table = next((word.strip('"') for before, word in zip(words, words[1:])
                      if before.upper() in ("FROM", "INTO", "UPDATE")), "?")
        self.kinds[f"{words[0].upper()} {table}"] += 1
        return execute(sql, params, many, context)


def endpoint(url: str) -> str:
    """An exchange's path with ids folded, e.g. /v2/journaltransaction, /v1/customerinvoice."""
    path = url.split("?", 1)[0].split("/sandbox/visma", 1)[-1]
    parts = path.split("/")[1:]
    return "/" + "/".join(part if not any(char.isdigit() for char in part) or part in ("v1", "v2") else "{id}"
                          for part in parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captures", type=int, default=40, help="captures per case (default 40)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--release", choices=("on", "off"), default="on",
                        help="release documents after create (the tenant default) or leave them on hold")
    parser.add_argument("--queries", action="store_true", help="also print the queries of each case by table")
    args = parser.parse_args()
    setup_django(args.database_url, prefix="ml-posting-costs-")

    from django.db import connection

    from audit.models import RecordStatus
    from connectors.models import HttpExchange
    from connectors.pipeline import stream_poll
    from connectors.services import inbox_claim
    from connectors.tasks import inbound_event_process as inbound_event_task
    from sandbox.paypal import paypal_capture_create
    from sandbox.paypal_webhooks import paypal_delivery_build, paypal_delivery_send
    from tests.paypal.world import ANNA, MIKKO, hours_ago, world_build

    from mappings.reference import reference_data_refresh
    from sandbox.services import VISMA_SANDBOX_COMPANY_ID
    from sandbox.visma_erp import customer_invoice_create, customer_invoice_release

    url = serve()
    world = world_build(url)
    world.tenant.visma_release = args.release == "on"
    world.tenant.save(update_fields=["visma_release"])
    visma = world.integration.visma_connection
    cases = {
        "webhook: plain captures (journal)": dict(payer=ANNA),
        "webhook: captures naming an invoice Visma lacks (journal)": dict(payer=ANNA, invoice_id="WEB-9999"),
        "webhook: invoice payments (customer payment + fee journal)": dict(payer=MIKKO, invoice_id="WEB-2"),
    }
    print(f"Posting costs, sandbox at {url}, {args.captures} captures per case, warm reference data, release "
          f"{args.release} ({os.environ['DATABASE_URL'].split(':', 1)[0]})")

    def webshop_invoice(reference: str) -> None:
        """A released EUR 120.00 invoice of customer 10004 carrying `reference`, as a webshop would have made it."""
        value = lambda v: {"value": v}  # noqa: E731
        created = customer_invoice_create(VISMA_SANDBOX_COMPANY_ID, {
            "customerNumber": value("10004"), "currencyId": value("EUR"), "externalReference": value(reference),
            "invoiceLines": [{"operation": "Insert", "description": value("Tent"), "quantity": value(1),
                              "unitPriceInCurrency": value(120.0), "accountNumber": value("3010")}]})
        customer_invoice_release(VISMA_SANDBOX_COMPANY_ID, created.key)

    # The poll path first, while the window holds only its own captures.
    for number in range(args.captures):
        paypal_capture_create(amount=Decimal("10.00") + number, currency="EUR", payer=ANNA, at=hours_ago(4),
                              notify=False)
    counter = QueryCounter()
    before = HttpExchange.objects.filter(connection=visma).count()
    with connection.execute_wrapper(counter):
        run = stream_poll(world.integration, "captures")
    calls = HttpExchange.objects.filter(connection=visma).count() - before
    print(f"\npoll: captures found by Transaction Search (journal): {run.posted} posted of {run.fetched} read")
    print(f"  queries per posted record: {counter.count / run.posted:.1f} (the window's reads included)")
    print(f"  Visma calls per posted record: {calls / run.posted:.2f}")
    if args.queries:
        for name, count in counter.kinds.most_common():
            print(f"    {count / run.posted:5.1f}  {name}")

    # The webshop's invoices were written in Visma before they are paid (and the mirror has read them).
    for number in range(args.captures):
        webshop_invoice(f"WEB-2{number:03d}")
    reference_data_refresh(world.tenant, kinds=["customer_invoices"], revalidate_rules=False)

    totals = {}
    for label, options in cases.items():
        counter = QueryCounter()
        visma_calls, posted = 0, 0
        per_record_queries = []
        endpoints: Counter = Counter()
        for number in range(args.captures):
            capture = dict(options)
            if options.get("invoice_id") == "WEB-2":
                # Each payment settles a webshop invoice of its own (a paid invoice takes no second payment).
                capture["invoice_id"] = f"WEB-2{number:03d}"
            amount = Decimal("120.00") if options.get("invoice_id") == "WEB-2" else Decimal("100.00") + number
            paypal_capture_create(amount=amount, currency="EUR", at=hours_ago(0), notify=False, **capture)
            event = world.last_event("PAYMENT.CAPTURE.COMPLETED")
            delivery = paypal_delivery_build(event, webhook_id=world.subscription.webhook_id)
            response = paypal_delivery_send(delivery, f"{url}{world.integration.webhook_path}")
            if response.status_code != 200:
                raise SystemExit(f"webhook answered {response.status_code}: {response.content[:300]!r}")
            last_visma = HttpExchange.objects.filter(connection=visma).order_by("-id").values_list(
                "id", flat=True).first() or 0
            before = counter.count
            with connection.execute_wrapper(counter):
                for event_id in inbox_claim(limit=1):
                    inbound_event_task(event_id)
            per_record_queries.append(counter.count - before)
            record = world.record("captures", event.body["resource"]["id"])
            if record.status != RecordStatus.POSTED:
                raise SystemExit(f"{label}: capture {number} ({capture}) not posted ({record.status}: {record.reasons or record.last_error})")
            posted += 1
            exchanges = HttpExchange.objects.filter(connection=visma, id__gt=last_visma)
            visma_calls += exchanges.count()
            endpoints.update(f"{exchange.method} {endpoint(exchange.url)}" for exchange in exchanges)
        totals[label] = (counter.count, visma_calls, posted)
        print(f"\n{label}: {posted} posted")
        print(f"  queries per posted record: {counter.count / posted:.1f} "
              f"(median {statistics.median(per_record_queries)}, max {max(per_record_queries)})")
        print(f"  Visma calls per posted record: {visma_calls / posted:.2f}")
        for name, count in sorted(endpoints.items()):
            print(f"    {name}: {count / posted:.2f} per record")
        if args.queries:
            for name, count in counter.kinds.most_common():
                print(f"    {count / posted:5.1f}  {name}")

    captures = [totals[label] for label in list(cases)[:2]]
    queries = sum(case[0] for case in captures)
    calls = sum(case[1] for case in captures)
    posted = sum(case[2] for case in captures)
    print()
    print(f"queries per posted record: {queries / posted:.1f}")
    print(f"Visma calls per posted record: {calls / posted:.2f}")


if __name__ == "__main__":
    main()
