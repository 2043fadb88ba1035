"""What every Square stream shares: Square's money and times, the integration's settings and begin time."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connectors.pipeline import SourceDataError
from connectors.square.sources import square_money, square_time

from .conftest import LedgerPayments

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("money", "expected"), [
    ({"amount": 12345, "currency": "NOK"}, Decimal("123.45")),
    ({"amount": 500, "currency": "JPY"}, Decimal("500")),      # zero-decimal (ISO 4217 exponent 0)
    ({"amount": 1234, "currency": "KWD"}, Decimal("1.234")),   # three decimals
    (None, Decimal(0)),                                        # Square leaves out a zero tip
])
def test_square_money_reads_minor_units_by_the_iso_4217_exponent(money, expected):
    assert square_money(money, field="amount_money", what="payment P") == expected


def test_square_money_refuses_a_negative_unsigned_field_a_float_and_another_currency():
    with pytest.raises(SourceDataError, match="payment P: amount_money is negative"):
        square_money({"amount": -100, "currency": "NOK"}, field="amount_money", what="payment P")
    assert square_money({"amount": -100, "currency": "NOK"}, field="fee", what="payment P",
                        signed=True) == Decimal("-1.00")
    with pytest.raises(SourceDataError, match="must be an integer"):
        square_money({"amount": 1.5, "currency": "NOK"}, field="amount_money", what="payment P")
    with pytest.raises(SourceDataError, match="tip_money is in EUR, not NOK"):
        square_money({"amount": 100, "currency": "EUR"}, field="tip_money", what="payment P", currency="NOK")


def test_square_time_reads_rfc_3339_and_refuses_a_time_without_offset():
    assert square_time("2026-12-06T20:07:03.123Z") == datetime(2026, 12, 6, 20, 7, 3, 123000, tzinfo=UTC)
    assert square_time(None) is None
    with pytest.raises(SourceDataError, match="has no time zone offset"):
        square_time("2026-12-06T20:07:03")


def test_settings_fall_back_to_the_schema_defaults_and_begin_time_to_the_integration_s_creation(world):
    world.integration.settings = {"page_size": 5}
    stream = LedgerPayments(world.integration)
    assert (stream.page_size, stream.settings["fee_wait_minutes"], stream.settings["refund_wait_hours"]) == (5, 120, 72)
    # Not a month before: what was taken before the integration existed was keyed by hand (review finding 3).
    assert stream.begin_time == world.integration.created_at
    assert stream.before_go_live(world.integration.created_at - timedelta(seconds=1))
    assert not stream.before_go_live(world.integration.created_at)
    assert not stream.before_go_live(None)
    assert stream.before_go_live("2020-01-01T00:00:00Z")
    world.integration.settings = {**world.integration.settings, "begin_time": "2026-01-01"}
    assert LedgerPayments(world.integration).begin_time == datetime(2026, 1, 1, tzinfo=UTC)
