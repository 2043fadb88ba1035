"""Stripe's own minor units (not ISO 4217's) and the amounts Stripe refuses, per docs.stripe.com/currencies
(see docs/stripe-api.md, "Stripe's minor units"): every Stripe amount is converted here, in both directions."""
from __future__ import annotations

from decimal import Decimal

from connectors.pipeline import SourceDataError
from mappings.money import MoneyError, minor_units

# docs.stripe.com/currencies "Zero-decimal currencies": the amount is in whole units. MGA is zero-decimal at Stripe
# although ISO 4217 gives it 2 (the iraimbilanja, 1/5); UGX is zero-decimal in both.
ZERO_DECIMAL = frozenset({"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
                          "XAF", "XOF", "XPF"})
# docs.stripe.com/currencies "Three-decimal currencies": three decimals, but the last digit must be 0.
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})
# docs.stripe.com/currencies "Special cases" and support.stripe.com "Deprecation of fractional ISK charges and
# refunds": ISK stays two-decimal in the API (100 = 1 króna) but every amount must be divisible by 100.
WHOLE_UNITS_ALWAYS = frozenset({"ISK"})
# "Special cases": HUF and TWD are two-decimal for charges, zero-decimal for payouts (amount divisible by 100).
WHOLE_UNITS_IN_PAYOUTS = frozenset({"HUF", "TWD"})


def stripe_minor_units(currency: str) -> int:
    """How many decimals a Stripe API amount in `currency` carries: 0, 2 or 3 by Stripe's table (ISK: 2)."""
    code = str(currency or "").upper()
    if len(code) != 3 or not code.isalpha():
        raise MoneyError(f"currency {currency!r} is not a currency code")
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def stripe_amount(minor: object, currency: str, *, field: str) -> Decimal:
    """Stripe's integer amount → Decimal in the currency as the books keep it (ISO 4217's decimals): JPY 5000 → 5000,
    NOK 125000 → 1250.00, ISK 50000 → 500, MGA 5000 → 5000.00; one the books cannot hold is refused."""
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise SourceDataError(f"{field} {minor!r} is not an integer amount")
    amount = Decimal(minor).scaleb(-stripe_minor_units(currency))
    booked = amount.quantize(Decimal(1).scaleb(-minor_units(currency)))
    if booked != amount:
        raise SourceDataError(f"{field} {minor} is {amount} {currency.upper()}: finer than {currency.upper()} is "
                              f"booked ({minor_units(currency)} decimals)")
    return booked


def stripe_minor(amount: Decimal, currency: str, *, field: str, payout: bool = False) -> int:
    """Decimal → Stripe's integer amount, refusing what Stripe refuses: more decimals than Stripe's table allows,
    fractional ISK (and HUF/TWD in a payout), a three-decimal amount whose last digit is not 0."""
    code = str(currency or "").upper()
    places = stripe_minor_units(code)
    minor = Decimal(amount).scaleb(places)
    if minor != minor.to_integral_value():
        raise SourceDataError(f"{field} {amount} {code} has more decimals than Stripe takes for {code} ({places})")
    minor = int(minor)
    if code in WHOLE_UNITS_ALWAYS or (payout and code in WHOLE_UNITS_IN_PAYOUTS):
        if minor % 100:
            raise SourceDataError(f"{field} {amount} {code}: Stripe takes {code} "
                                  f"{'payouts ' if code not in WHOLE_UNITS_ALWAYS else ''}in whole units only "
                                  "(amount divisible by 100)")
    if code in THREE_DECIMAL and minor % 10:
        raise SourceDataError(f"{field} {amount} {code}: Stripe takes {code} amounts with a last digit of 0 only")
    return minor


__all__ = ["stripe_amount", "stripe_minor", "stripe_minor_units"]
