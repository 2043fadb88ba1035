"""What every Square stream shares (SquareSource): the client, the integration's settings, Square's times and money,
and the location (store) an object belongs to, from the locations mirror."""
from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import cached_property

from django.utils import timezone

from audit.models import RecordStatus, SyncRecord
from connectors import registry
from connectors.dates import tenant_date
from connectors.pipeline import SourceDataError, SourceObject, Stream
from mappings.documents import PostingLine
from mappings.models import SquareLocation
from mappings.money import MoneyError, from_minor, minor_units

from .client import SquareApi, SquareInvalidCursor

log = logging.getLogger(__name__)

SYSTEM = "square"
# The settings the streams read, with the contract's defaults (connectors/square/__init__.py SETTINGS_SCHEMA is the
# registered schema; these stand in when a key is absent from both).
SETTING_DEFAULTS: dict[str, object] = {
    "page_size": 100,
    "begin_time": None,
    "fee_wait_minutes": 120,
    "refund_wait_hours": 72,
    "create_customers": False,
    "customer_class": None,
    "supplier_class": None,
}


class SquareLocationUnknown(SourceDataError):
    """An object names a location Square does not list for this seller (even after re-reading the locations)."""


def square_time(value: str | None, *, field: str = "time") -> datetime | None:
    """An RFC 3339 timestamp of Square ("2025-08-20T10:11:12.345Z") as an aware datetime; None when absent."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise SourceDataError(f"{field} {value!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        # RFC 3339 always carries an offset; one without is refused rather than guessed.
        raise SourceDataError(f"{field} {value!r} has no time zone offset")
    return moment


def square_money(money: Mapping | None, *, field: str, what: str, currency: str | None = None,
                 signed: bool = False) -> Decimal:
    """A Square Money {amount: int in the smallest unit, currency} in major units (ISO 4217 exponent: NOK 12345 →
    123.45, JPY 500 → 500). Absent → 0 (Square leaves out a zero tip). `currency`: the one it must be in.
    A Money field is unsigned unless Square's description says it is signed (api.json `Money`): `signed` allows it."""
    if not money:
        return Decimal(0)
    amount = money.get("amount")
    found = str(money.get("currency") or "").upper()
    if currency and found and found != currency.upper():
        raise SourceDataError(f"{what}: {field} is in {found}, not {currency.upper()}")
    found = found or (currency or "").upper()
    try:
        minor_units(found)
        value = from_minor(amount, found)
    except MoneyError as exc:
        raise SourceDataError(f"{what}: {field} {dict(money)!r}: {exc}") from exc
    if value < 0 and not signed:
        raise SourceDataError(f"{what}: {field} is negative ({value} {found})")
    return value


class SquareSource(Stream):
    """The Square side of a stream: reads through SquareApi (closed with the stream), settings with defaults, the
    begin time Square's created_at filters need, and the mirrored location an object was taken at."""

    kind = SYSTEM
    # ListPayments is "eventually consistent … might take several seconds to appear" (docs/square.md §5): a poll
    # re-reads a quarter of an hour before its cursor; a fee filled in later moves updated_at, so it is read again.
    overlap = timedelta(minutes=15)
    max_window = timedelta(days=31)
    initial_lookback = timedelta(days=30)
    default_poll_minutes = 15

    @cached_property
    def square(self) -> SquareApi:
        api = SquareApi(self.integration.partner_connection, settings=self.settings)
        weakref.finalize(self, api.close)
        return api

    @cached_property
    def settings(self) -> dict:
        """The integration's settings over the registered schema's defaults (and ours, for keys neither has)."""
        schema = registry.kind_spec(SYSTEM).settings_schema
        defaults = {**SETTING_DEFAULTS, **{name: spec[1] for name, spec in schema.items()}}
        return {**defaults, **{key: value for key, value in (self.integration.settings or {}).items()
                               if value is not None}}

    @property
    def page_size(self) -> int:
        return int(self.settings.get("page_size") or 100)

    @cached_property
    def begin_time(self) -> datetime:
        """Where the integration reads from on Square's created_at axis (ListPayments/ListPaymentRefunds
        `begin_time`, sent explicitly: Square's own default is "now minus one year", docs/square.md §5)."""
        configured = self.settings.get("begin_time")
        if configured:
            moment = datetime.fromisoformat(str(configured))
            return moment if moment.tzinfo else moment.replace(tzinfo=self.integration.created_at.tzinfo)
        # No begin_time set: the integration starts when it was created. What was taken before was keyed by hand
        # (review finding 3): reading a month back would book it twice.
        return self.integration.created_at

    def before_go_live(self, created_at: str | datetime | None) -> bool:
        """Whether a Square object created at `created_at` predates the integration's start (begin_time): such an
        object was booked by hand before, so it is never booked again, whatever way it reaches us (a poll, a
        webhook, a refund reading its payment). An object without a creation time is not judged here."""
        if isinstance(created_at, str):
            created_at = square_time(created_at, field="created_at")
        return created_at is not None and created_at < self.begin_time

    def go_live_text(self) -> str:
        """The integration's start as a person reads it (the tenant's date, and the UTC time)."""
        return f"{self.day(self.begin_time):%Y-%m-%d} ({self.begin_time.astimezone(UTC):%H:%M} UTC)"

    def walk(self, listing: Callable[[], Iterator[dict]], *, what: str) -> Iterator[dict]:
        """What a list call yields, page after page. Square refusing a page cursor (INVALID_CURSOR: the caller
        restarts its walk, connectors/square/client.py) restarts the walk once from the window's start: what was
        read already comes again and is taken as already settled (the records dedupe, as the poll's overlap does).
        Refused again: the run fails saying so, its cursor does not move, and the next poll reads the window again."""
        try:
            yield from listing()
            return
        except SquareInvalidCursor as exc:
            log.warning("%s: Square refused the page cursor (%s); the walk restarts from the window's start",
                        what, exc.system_message)
        try:
            yield from listing()
        except SquareInvalidCursor as exc:
            raise SquareInvalidCursor(
                f"{what}: Square refused the page cursor again after the walk was restarted from the window's start "
                f"({exc.system_message}); the poll stops here and reads this window again next time",
                status_code=exc.status_code, system_message=exc.system_message, errors=exc.errors) from exc

    def day(self, moment: str | datetime | None) -> date:
        """The booking date of a Square time: its date in the tenant's time zone."""
        if isinstance(moment, str):
            moment = square_time(moment)
        return tenant_date(self.tenant, moment)

    def fresh(self, source: SourceObject) -> SourceObject:
        """A source object just read from Square. A record of it that waits on Square itself (a fee not reported
        yet, a payment not completed) is due again at once when Square changed the object, not at its next look:
        the payment.updated that brings the fee posts the payment."""
        if source.updated_at is not None:
            SyncRecord.objects.filter(
                integration=self.integration, stream=self.name, source_id=source.source_id,
                status=RecordStatus.WAITING, waiting_on_stream="", source_updated_at__lt=source.updated_at,
            ).update(next_attempt_at=timezone.now())
        return source

    # --- locations -----------------------------------------------------------------------------------------

    @cached_property
    def _locations(self) -> dict[str, SquareLocation]:
        return {location.location_id: location for location in SquareLocation.objects.filter(tenant=self.tenant)}

    def locations(self) -> list[SquareLocation]:
        """Every mirrored location of the tenant, inactive ones included; read from Square first when none is."""
        if not self._locations:
            self.locations_refresh()
        return list(self._locations.values())

    def location(self, location_id: str) -> SquareLocation:
        """The mirrored location; one not mirrored yet is read from Square once (a store opened since the last
        refresh); SquareLocationUnknown when Square does not list it either."""
        if not location_id:
            raise SquareLocationUnknown("names no location")
        if location_id not in self._locations:
            self.locations_refresh()
        try:
            return self._locations[location_id]
        except KeyError:
            raise SquareLocationUnknown(f"location {location_id} is not one of this seller's Square locations")

    def locations_refresh(self) -> list[SquareLocation]:
        from .locations import square_locations_refresh

        refreshed = square_locations_refresh(self.tenant, self.square)
        self.__dict__["_locations"] = {location.location_id: location for location in refreshed}
        return refreshed


def square_fee_entries(payment: Mapping, *, currency: str, what: str) -> list[dict]:
    """Square's processing_fee[] as {key, effective_at, type, amount}; an amount may be negative (funds returned,
    api.json `ProcessingFee.amount_money`). The key names one entry in what a posting already booked."""
    entries = []
    for index, fee in enumerate(payment.get("processing_fee") or []):
        amount = square_money(fee.get("amount_money"), field=f"processing_fee[{index}].amount_money", what=what,
                              currency=currency, signed=True)
        effective_at = str(fee.get("effective_at") or "")
        entries.append({"key": f"{effective_at}|{fee.get('type') or ''}|{amount}", "effective_at": effective_at,
                        "type": str(fee.get("type") or ""), "amount": amount})
    return entries


def square_fee_change_lines(payment_id: str, new: list[dict]) -> tuple[Decimal, list[PostingLine]]:
    """The journal lines of fee entries Square added to a payment after it was booked (square_fee_entries): a fee
    charged moves from clearing to the fee account, a fee returned back; and their sum."""
    fee = sum((entry["amount"] for entry in new), Decimal(0))
    label = f"Square {payment_id} fee {'adjustment' if any(e['type'] == 'ADJUSTMENT' for e in new) else 'entry'}"
    if fee > 0:
        return fee, [PostingLine(role="fee", debit=fee, description=label),
                     PostingLine(role="clearing", credit=fee, description=f"{label} · clearing")]
    return fee, [PostingLine(role="clearing", debit=-fee, description=f"{label} · clearing"),
                 PostingLine(role="fee", credit=-fee, description=f"{label} returned")]
