"""Money helpers: ISO 4217 minor units, and conversion between major units and a vendor's minor units."""
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

import pycountry

# Currencies whose minor unit is not 2 (ISO 4217 list one, 2024 edition); every other code has 2.
_MINOR_UNITS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV",
         "XAF", "XOF", "XPF"],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


class MoneyError(ValueError):
    """An amount or currency that cannot be booked as given."""


def currency_is_iso(code: str) -> bool:
    """True for a code on ISO 4217's list (pycountry's copy of it, from Debian's iso-codes), in any letter case."""
    return isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha() and (
        pycountry.currencies.get(alpha_3=code.upper()) is not None)


def minor_units(currency: str) -> int:
    code = (currency or "").upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"currency {currency!r} is not an ISO 4217 code")
    return _MINOR_UNITS.get(code, 2)


def to_decimal(value, *, field: str = "amount") -> Decimal:
    """A Decimal from a vendor's string or int; floats are refused (they cannot hold money exactly)."""
    if isinstance(value, float):
        raise MoneyError(f"{field}: {value!r} is a float; money must come as a string or an integer")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, TypeError) as exc:
        raise MoneyError(f"{field}: {value!r} is not a number") from exc
    # Decimal reads "NaN" and "Infinity" too; neither can be booked.
    if not amount.is_finite():
        raise MoneyError(f"{field}: {value!r} is not a number")
    return amount


def quantize(amount: Decimal, currency: str) -> Decimal:
    """Round to the currency's minor unit (banker's rounding, as ledgers do)."""
    if isinstance(amount, bool) or not isinstance(amount, (Decimal, int)):
        raise MoneyError(f"{amount!r} is a {type(amount).__name__}; money must be a Decimal")
    try:
        return Decimal(amount).quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise MoneyError(f"{amount} {currency} cannot be booked (not finite, or too many digits)") from exc


def is_exact(amount: Decimal, currency: str) -> bool:
    """True when the amount has no more decimals than the currency allows."""
    return quantize(amount, currency) == amount


def from_minor(amount_minor: int, currency: str) -> Decimal:
    """Stripe/Square style integer minor units → Decimal major units (JPY 500 → 500, EUR 1250 → 12.50)."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise MoneyError(f"amount {amount_minor!r} in minor units must be an integer")
    return Decimal(amount_minor).scaleb(-minor_units(currency))


def to_minor(amount: Decimal, currency: str) -> int:
    """Decimal major units → integer minor units; refuses an amount finer than the currency allows."""
    if not is_exact(amount, currency):
        raise MoneyError(f"{amount} {currency} has more decimals than {currency} allows ({minor_units(currency)})")
    return int(Decimal(amount).scaleb(minor_units(currency)))
