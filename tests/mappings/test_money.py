"""Money helpers: ISO 4217 minor units, Decimal only, and exact conversion to and from minor units."""
from decimal import Decimal

import pytest

from mappings.money import MoneyError, from_minor, is_exact, minor_units, quantize, to_decimal, to_minor


@pytest.mark.parametrize(
    ("currency", "units"),
    [("JPY", 0), ("KRW", 0), ("ISK", 0), ("KWD", 3), ("BHD", 3), ("TND", 3), ("EUR", 2), ("USD", 2), ("NOK", 2),
     ("CLF", 4), ("jpy", 0), ("eur", 2)],
)
def test_minor_units_follow_iso_4217(currency, units):
    # then
    assert minor_units(currency) == units


@pytest.mark.parametrize("currency", ["", "EU", "EURO", "E1R", None])
def test_a_code_that_is_not_iso_4217_is_refused(currency):
    # when
    with pytest.raises(MoneyError) as refused:
        minor_units(currency)

    # then
    assert str(refused.value) == f"currency {currency!r} is not an ISO 4217 code"


@pytest.mark.parametrize(
    ("value", "amount"),
    [("12.50", Decimal("12.50")), ("-3.40", Decimal("-3.40")), (1250, Decimal("1250")), ("0", Decimal("0")),
     (Decimal("7.1"), Decimal("7.1"))],
)
def test_to_decimal_reads_strings_and_integers_exactly(value, amount):
    # when
    read = to_decimal(value)

    # then
    assert read == amount
    assert str(read) == str(amount)


def test_to_decimal_refuses_a_float():
    # when
    with pytest.raises(MoneyError) as refused:
        to_decimal(12.5, field="fee")

    # then
    assert str(refused.value) == "fee: 12.5 is a float; money must come as a string or an integer"


@pytest.mark.parametrize("value", ["twelve", "", None, "NaN", "Infinity", "-inf", "sNaN"])
def test_to_decimal_refuses_what_is_not_a_finite_number(value):
    # when
    with pytest.raises(MoneyError) as refused:
        to_decimal(value)

    # then
    assert str(refused.value) == f"amount: {value!r} is not a number"


@pytest.mark.parametrize(
    ("amount", "currency", "rounded"),
    [
        # banker's rounding: half to even
        (Decimal("0.125"), "EUR", Decimal("0.12")),
        (Decimal("0.135"), "EUR", Decimal("0.14")),
        (Decimal("2.5"), "JPY", Decimal("2")),
        (Decimal("3.5"), "JPY", Decimal("4")),
        (Decimal("1.2345"), "KWD", Decimal("1.234")),
        (Decimal("10"), "EUR", Decimal("10.00")),
    ],
)
def test_quantize_rounds_half_to_even_at_the_minor_unit(amount, currency, rounded):
    # when
    result = quantize(amount, currency)

    # then
    assert (result, str(result)) == (rounded, str(rounded))


@pytest.mark.parametrize(
    ("amount", "currency", "exact"),
    [
        (Decimal("1000"), "JPY", True), (Decimal("1000.00"), "JPY", True), (Decimal("1000.50"), "JPY", False),
        (Decimal("1.234"), "KWD", True), (Decimal("1.2345"), "KWD", False),
        (Decimal("12.5"), "EUR", True), (Decimal("12.505"), "EUR", False),
    ],
)
def test_is_exact_says_whether_the_currency_can_hold_the_amount(amount, currency, exact):
    # then
    assert is_exact(amount, currency) is exact


@pytest.mark.parametrize(
    ("minor", "currency", "amount"),
    [(500, "JPY", "500"), (1250, "EUR", "12.50"), (1234, "KWD", "1.234"), (-995, "USD", "-9.95"), (0, "EUR", "0.00")],
)
def test_from_minor_converts_integer_minor_units(minor, currency, amount):
    # when
    result = from_minor(minor, currency)

    # then
    assert (result, str(result)) == (Decimal(amount), amount)


@pytest.mark.parametrize("minor", [12.5, "1250", True, None])
def test_from_minor_refuses_what_is_not_an_integer(minor):
    # when
    with pytest.raises(MoneyError) as refused:
        from_minor(minor, "EUR")

    # then
    assert str(refused.value) == f"amount {minor!r} in minor units must be an integer"


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [(Decimal("500"), "JPY", 500), (Decimal("12.50"), "EUR", 1250), (Decimal("12.5"), "EUR", 1250),
     (Decimal("1.234"), "KWD", 1234), (Decimal("-9.95"), "USD", -995), (Decimal("7"), "EUR", 700), (7, "JPY", 7)],
)
def test_to_minor_converts_exact_amounts(amount, currency, minor):
    # then
    assert to_minor(amount, currency) == minor


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        (Decimal("12.345"), "EUR", "12.345 EUR has more decimals than EUR allows (2)"),
        (Decimal("1.5"), "JPY", "1.5 JPY has more decimals than JPY allows (0)"),
        (Decimal("1.2345"), "KWD", "1.2345 KWD has more decimals than KWD allows (3)"),
    ],
)
def test_to_minor_refuses_extra_decimals(amount, currency, message):
    # when
    with pytest.raises(MoneyError) as refused:
        to_minor(amount, currency)

    # then
    assert str(refused.value) == message


def test_to_minor_refuses_a_float():
    # when
    with pytest.raises(MoneyError) as refused:
        to_minor(12.5, "EUR")

    # then
    assert str(refused.value) == "12.5 is a float; money must be a Decimal"


def test_an_amount_with_more_digits_than_any_ledger_holds_is_refused():
    # when
    with pytest.raises(MoneyError) as refused:
        to_minor(Decimal("1E+30"), "EUR")

    # then
    assert str(refused.value) == "1E+30 EUR cannot be booked (not finite, or too many digits)"
