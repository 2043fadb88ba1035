#!/usr/bin/env python3
# Copied from /work/shared/bench/stripe_webhook_load.py (the shared load generator, unchanged below this line)
# so the bench stands alone in the repo; bench/webhook_intake_bench.py runs it against gunicorn.
"""Signed Stripe webhook load generator (standard library only).

Sends N realistic Stripe events (charge.succeeded, invoice.paid, charge.dispute.created in turn, each with a unique
event id) to one webhook URL on this machine at concurrency C, each signed as Stripe signs them
(Stripe-Signature: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<raw body>")) keyed by the literal whsec_ secret, as
stripe.WebhookSignature computes it), and prints throughput, latency p50/p90/p99/max and the status-code counts.

    python load.py --url http://127.0.0.1:8001/djstripe/webhook/<uuid>/ --secret whsec_... -n 2000 -c 8 --warmup 100
    python load.py --url ... --secret ... --fixture run/fixture.json --event-prefix a1 --json-out result.json

The event objects come from --fixture (objects that exist in the Stripe API you point the receiver at, so a
receiver that calls the Stripe API finds them), or are synthesised in the same shape without one. Events go
charge.succeeded, invoice.paid, charge.dispute.created in turn; event k is about payment k//3 (charge.succeeded),
k//3 - 10 (invoice.paid) or k//3 - 20 (dispute), modulo the number of payments: a payment's charge.succeeded comes
first, its invoice.paid 30 events later and its dispute 60 events later (as Stripe would send them, only faster), so
at a concurrency below 30 no two events about one payment are in flight together. Each (type, payment) pair is used
once while N + warm-up <= 3 x payments.

Safety: only loopback targets (127.0.0.0/8, ::1, localhost); N <= 100000, C <= 64; stops by itself after
--max-seconds (default 600) even if events remain, and every request has a timeout.
Each worker thread keeps one HTTP/1.1 connection open and reconnects when the server closes it (gunicorn's sync
workers close after every response). Latency = from the first byte sent to the last byte of the response read.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import ipaddress
import json
import math
import random
import socket
import string
import sys
import threading
import time
import urllib.parse
from collections import Counter

TYPES = ("charge.succeeded", "invoice.paid", "charge.dispute.created")
API_VERSION = "2026-10-28.endive"
MAX_N, MAX_C, MAX_SECONDS = 100_000, 64, 1800
LAG = 10  # payments between a charge.succeeded and the invoice.paid about the same payment


# ---- signing, exactly as stripe.WebhookSignature computes it ---------------------------------------------------
def stripe_signature(body: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + body
    return f"t={timestamp},v1=" + hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


# ---- payloads ----------------------------------------------------------------------------------------------------
def _rid(rng: random.Random, prefix: str, n: int = 24) -> str:
    return prefix + "_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def synth_group(rng: random.Random, i: int, now: int) -> dict:
    """A paid invoice, its charge and a dispute on it, in the Stripe 2026 API shape (as the emulator renders them)."""
    cus, inv, ch, pi, txn, dp, pm = (_rid(rng, p) for p in ("cus", "in", "ch", "pi", "txn", "dp", "pm"))
    net = rng.randrange(19_00, 25_000_00)
    tax = round(net * 0.25)
    amount = net + tax
    email, name = f"kunde{i:05d}@example.no", f"Kunde {i:05d}"
    charge = {
        "id": ch, "object": "charge", "amount": amount, "amount_captured": amount, "amount_refunded": 0,
        "balance_transaction": txn, "billing_details": {"email": email, "name": name},
        "calculated_statement_descriptor": "HOLDOUT AS", "captured": True, "created": now - 60, "currency": "nok",
        "customer": cus, "description": f"Payment for Invoice ABCD{i:04d}-0001", "disputed": False,
        "failure_code": None, "failure_message": None, "livemode": False, "metadata": {},
        "outcome": {"network_status": "approved_by_network", "reason": None, "type": "authorized",
                    "seller_message": "Payment complete."},
        "paid": True, "payment_intent": pi, "payment_method": pm,
        "payment_method_details": {"type": "card", "card": {"brand": "visa", "last4": "4242", "exp_month": 12,
                                                             "exp_year": 2030}},
        "receipt_url": f"https://pay.stripe.com/receipts/{inv}", "refunded": False, "status": "succeeded"}
    invoice = {
        "id": inv, "object": "invoice", "account_country": "NO", "account_name": "Holdout AS", "amount_due": amount,
        "amount_overpaid": 0, "amount_paid": amount, "amount_remaining": 0, "amount_shipping": 0, "attempt_count": 1,
        "attempted": True, "auto_advance": False, "billing_reason": "manual", "collection_method": "send_invoice",
        "created": now - 3600, "currency": "nok", "customer": cus, "customer_email": email, "customer_name": name,
        "default_tax_rates": [], "description": None, "discounts": [], "due_date": now + 13 * 86400,
        "effective_at": now - 3500, "ending_balance": 0, "hosted_invoice_url": f"https://invoice.stripe.com/i/{inv}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/{inv}/pdf", "livemode": False,
        "metadata": {"visma_invoice_number": str(900000 + i)}, "number": f"ABCD{i:04d}-0001", "parent": None,
        "period_end": now - 3600, "period_start": now - 3600, "status": "paid",
        "status_transitions": {"finalized_at": now - 3500, "marked_uncollectible_at": None, "paid_at": now - 60,
                               "voided_at": None},
        "subtotal": net, "subtotal_excluding_tax": net, "total": amount, "total_excluding_tax": net,
        "lines": {"object": "list", "data": [{"id": _rid(rng, "il"), "object": "line_item", "amount": net,
                                              "currency": "nok", "description": "Konsulenttimer", "quantity": 1,
                                              "invoice": inv, "livemode": False, "metadata": {},
                                              "period": {"start": now - 3600, "end": now - 3600}}],
                  "has_more": False, "total_count": 1, "url": f"/v1/invoices/{inv}/lines"},
        "payments": {"object": "list", "data": [{"id": _rid(rng, "inpay"), "object": "invoice_payment",
                                                 "amount_paid": amount, "amount_requested": amount, "currency": "nok",
                                                 "invoice": inv, "is_default": True, "livemode": False,
                                                 "payment": {"type": "payment_intent", "payment_intent": pi},
                                                 "status": "paid"}],
                     "has_more": False, "url": f"/v1/invoice_payments?invoice={inv}"},
        "total_taxes": [{"amount": tax, "tax_behavior": "exclusive", "taxable_amount": net, "type": "tax_rate_details"}]}
    dispute = {
        "id": dp, "object": "dispute", "amount": amount, "balance_transactions": [], "charge": ch, "created": now,
        "currency": "nok", "evidence": {}, "evidence_details": {"due_by": now + 7 * 86400, "has_evidence": False,
                                                                "past_due": False, "submission_count": 0},
        "is_charge_refundable": False, "livemode": False, "metadata": {}, "payment_intent": pi,
        "reason": "fraudulent", "status": "needs_response"}
    return {"charge.succeeded": charge, "invoice.paid": invoice, "charge.dispute.created": dispute}


def build_events(count: int, start: int, groups: list[dict], prefix: str, api_version: str) -> list[tuple[str, bytes]]:
    g = len(groups)
    lag = max(0, min(LAG, (g - 1) // 2))
    shift = {TYPES[0]: 0, TYPES[1]: -lag, TYPES[2]: -2 * lag}
    out = []
    now = int(time.time())
    for k in range(start, start + count):
        etype = TYPES[k % 3]
        obj = groups[(k // 3 + shift[etype]) % g][etype]
        event = {"id": f"evt_{prefix}{k:0{max(6, 24 - len(prefix))}d}", "object": "event", "api_version": api_version,
                 "created": now, "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
                 "request": {"id": None, "idempotency_key": None}, "type": etype}
        out.append((etype, json.dumps(event, indent=2).encode("utf-8")))  # Stripe sends pretty-printed JSON
    return out


# ---- sending -----------------------------------------------------------------------------------------------------
def check_target(url: str) -> urllib.parse.SplitResult:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or not u.hostname:
        raise SystemExit(f"load.py: only http:// URLs on this machine are allowed, not {url!r}")
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(u.hostname, u.port or 80, proto=socket.IPPROTO_TCP)}
    except socket.gaierror as exc:
        raise SystemExit(f"load.py: cannot resolve {u.hostname}: {exc}")
    if not addrs or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs):
        raise SystemExit(f"load.py: refusing non-loopback target {u.hostname} ({', '.join(sorted(addrs))})")
    return u


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    idx = max(0, math.ceil(q / 100 * len(sorted_vals)) - 1)  # nearest rank
    return sorted_vals[idx]


def send_all(u: urllib.parse.SplitResult, secret: str, events: list[tuple[str, bytes]], concurrency: int,
             timeout: float, deadline: float) -> dict:
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    lock = threading.Lock()
    state = {"next": 0}
    lat: list[float] = []
    statuses: Counter = Counter()
    by_type: dict[str, list[float]] = {t: [] for t in TYPES}
    bodies_sample: dict[str, str] = {}

    def take() -> int | None:
        with lock:
            i = state["next"]
            if i >= len(events) or time.monotonic() > deadline:
                return None
            state["next"] = i + 1
            return i

    def worker() -> None:
        conn = None
        while True:
            i = take()
            if i is None:
                break
            etype, body = events[i]
            if conn is None:
                conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
            headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "*/*; q=0.5, application/xml",
                       "Cache-Control": "no-cache", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                       "Stripe-Signature": stripe_signature(body, secret, int(time.time()))}
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                dt = time.perf_counter() - t0
                key = str(resp.status)
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                dt = time.perf_counter() - t0
                key = f"ERR:{type(exc).__name__}"
                text = str(exc).encode()
                try:
                    conn.close()
                except Exception:
                    pass
                conn = None
            with lock:
                statuses[key] += 1
                if key.startswith("2"):
                    lat.append(dt)
                    by_type[etype].append(dt)
                elif key not in bodies_sample:
                    bodies_sample[key] = text[:300].decode("utf-8", "replace")
        if conn is not None:
            conn.close()

    t_start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t_start
    lat.sort()
    done = sum(statuses.values())
    ok = sum(v for k, v in statuses.items() if k.startswith("2"))
    ms = lambda v: None if v is None else round(v * 1000, 2)  # noqa: E731
    return {
        "sent": done, "ok_2xx": ok, "not_sent": len(events) - done, "wall_s": round(wall, 3),
        "throughput_per_s": round(ok / wall, 2) if wall else None,
        "responses_per_s": round(done / wall, 2) if wall else None,
        "latency_ms": {"p50": ms(percentile(lat, 50)), "p90": ms(percentile(lat, 90)), "p99": ms(percentile(lat, 99)),
                       "max": ms(lat[-1] if lat else None), "mean": ms(sum(lat) / len(lat) if lat else None),
                       "basis": "2xx responses"},
        "p50_ms_by_type": {t: ms(percentile(sorted(v), 50)) for t, v in by_type.items()},
        "status_counts": dict(sorted(statuses.items())),
        "error_samples": bodies_sample,
        "stopped_by_deadline": done < len(events),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="webhook URL on 127.0.0.1 / localhost")
    ap.add_argument("--secret", required=True, help="the endpoint's whsec_ signing secret")
    ap.add_argument("-n", "--count", type=int, default=2000, help="measured events (default 2000)")
    ap.add_argument("-c", "--concurrency", type=int, default=8, help="requests in flight (default 8)")
    ap.add_argument("--warmup", type=int, default=0, help="events sent first and not measured (default 0)")
    ap.add_argument("--start-index", type=int, default=0, help="number of the first event (to continue a sequence)")
    ap.add_argument("--fixture", help="JSON from stripe_emu.py with the event objects to use")
    ap.add_argument("--event-prefix", default=None, help="makes event ids unique across runs (default: random)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--max-seconds", type=float, default=600.0, help="stop sending after this long (default 600)")
    ap.add_argument("--label", default="")
    ap.add_argument("--json-out", help="write the result as JSON here")
    args = ap.parse_args(argv)

    if not 1 <= args.count <= MAX_N or not 0 <= args.warmup <= MAX_N:
        ap.error(f"--count must be 1..{MAX_N} and --warmup 0..{MAX_N}")
    if not 1 <= args.concurrency <= MAX_C:
        ap.error(f"--concurrency must be 1..{MAX_C}")
    if not 0 < args.max_seconds <= MAX_SECONDS:
        ap.error(f"--max-seconds must be in (0, {MAX_SECONDS}]")
    u = check_target(args.url)
    prefix = args.event_prefix or "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    total = args.warmup + args.count
    if args.fixture:
        with open(args.fixture, encoding="utf-8") as fh:
            fx = json.load(fh)
        groups, api_version, source = fx["groups"], fx.get("api_version", API_VERSION), "fixture"
    else:
        rng = random.Random(prefix)
        now = int(time.time())
        groups = [synth_group(rng, i, now) for i in range(max(1, math.ceil((args.start_index + total) / 3)))]
        api_version, source = API_VERSION, "synthesised"
    deadline = time.monotonic() + args.max_seconds
    result = {"label": args.label, "url_path": u.path, "concurrency": args.concurrency, "objects": source,
              "event_prefix": prefix, "groups": len(groups)}
    if args.warmup:
        warm = build_events(args.warmup, args.start_index, groups, prefix, api_version)
        w = send_all(u, args.secret, warm, args.concurrency, args.timeout, deadline)
        result["warmup"] = {k: w[k] for k in ("sent", "ok_2xx", "wall_s", "status_counts", "error_samples")}
    events = build_events(args.count, args.start_index + args.warmup, groups, prefix, api_version)
    result["body_bytes_mean"] = round(sum(len(b) for _, b in events) / len(events))
    cpu0 = time.process_time()
    result.update(send_all(u, args.secret, events, args.concurrency, args.timeout, deadline))
    result["loadgen_cpu_s"] = round(time.process_time() - cpu0, 3)
    result["requested"] = args.count

    lm = result["latency_ms"]
    print(f"{args.label or args.url}: {result['ok_2xx']}/{args.count} 2xx in {result['wall_s']} s at c={args.concurrency}"
          f" -> {result['throughput_per_s']} events/s; latency ms p50 {lm['p50']} p90 {lm['p90']} p99 {lm['p99']}"
          f" max {lm['max']}; status {result['status_counts']}")
    if result["error_samples"]:
        print("  first non-2xx bodies: " + json.dumps(result["error_samples"])[:600])
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
