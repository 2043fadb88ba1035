"""Markers: 15 characters of [A-Z2-7] by construction, the same for the same object, different for another."""
import re
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

import connectors.paypal  # noqa: F401  (registers the kind's streams)
import connectors.stripe  # noqa: F401
from connectors import registry
from connectors.pipeline import stream_for
from mappings.documents import MarkerError, MatchFacts, Posting, posting_marker, posting_marker_part
from tests.factories import IntegrationFactory

SHAPE = re.compile(r"^ML[A-Z2-7]{13}$")
# The longest vendor ids the flows see: a Stripe charge (27), a PayPal capture (17), a dispute with its status, a
# dispute with one of its balance transactions.
VENDOR_IDS = ["ch_3PqRsTuVwXyZ0123456789AB", "2GG279541U471931P", "du_1MtJUT2eZvKYlo2CkBuz0WaB:needs_response",
              "INV2-Z56S-5LLA-Q52L-CPZ5", "re_3PqRsTuVwXyZ0123456789AB",
              "du_1MtJUT2eZvKYlo2CkBuz0WaB:txn_1MtJUT2eZvKYlo2CkBuz0WaB"]


def test_a_marker_is_ml_and_13_base32_letters_for_every_stream_of_every_kind(db):
    # given
    integrations = {kind: IntegrationFactory(kind=kind) for kind in ("paypal", "stripe")}

    # when
    markers = {
        (kind, name, vendor_id): stream_for(integration, name).marker(vendor_id)
        for kind, integration in integrations.items()
        for name in registry.kind_spec(kind).streams
        for vendor_id in VENDOR_IDS
    }

    # then
    # PayPal: invoices, captures, refunds, reversals, dispute_funds, disputes, unhandled; Stripe: charges, disputes,
    # refunds, unhandled, visma_invoices
    assert len(markers) == (7 + 5) * len(VENDOR_IDS)
    assert {len(marker) for marker in markers.values()} == {15}
    assert all(SHAPE.fullmatch(marker) for marker in markers.values())
    assert len(set(markers.values())) == len(markers)  # no two objects share one


def test_the_fee_part_of_a_marker_has_the_same_shape_and_differs_from_it():
    # given
    marker = posting_marker(tenant_id=7, system="stripe", stream="charges", source_id="ch_3PqRsTuVwXyZ0123456789AB")

    # when
    fee = posting_marker_part(marker, "fee")

    # then
    assert (len(fee), bool(SHAPE.fullmatch(fee))) == (15, True)
    assert fee != marker
    assert posting_marker_part(marker, "fee") == fee


def test_a_marker_is_the_same_every_time_for_the_same_object_and_pinned_to_its_encoding():
    # when
    marker = posting_marker(tenant_id=1, system="paypal", stream="captures", source_id="2GG279541U471931P")

    # then: stored markers must keep finding their documents, so the encoding never changes silently
    assert marker == posting_marker(tenant_id=1, system="paypal", stream="captures", source_id="2GG279541U471931P")
    # ML + base32(sha256(b'["posting",1,"paypal","captures","2GG279541U471931P"]'))[:13]
    assert marker == "MLFILPRWVIIEOGK"


def test_values_that_would_run_together_make_different_markers():
    # when
    joined_one_way = posting_marker(tenant_id=1, system="paypal", stream="captures:x", source_id="y")
    joined_another = posting_marker(tenant_id=1, system="paypal", stream="captures", source_id="x:y")

    # then
    assert joined_one_way != joined_another


@given(tenant_id=st.integers(min_value=1, max_value=2**31), system=st.text(max_size=40),
       stream=st.text(max_size=40), source_id=st.text(max_size=300))
def test_any_object_s_marker_fits_every_visma_reference_field(tenant_id, system, stream, source_id):
    # when
    marker = posting_marker(tenant_id=tenant_id, system=system, stream=stream, source_id=source_id)

    # then
    assert SHAPE.fullmatch(marker)
    assert marker == marker.upper().strip()  # neither case folding nor trimming changes it
    assert SHAPE.fullmatch(posting_marker_part(marker, "fee"))


@pytest.mark.parametrize("marker", ["pay:P-1", "ch_3PqRsTuVwXyZ0123456789AB", "MLabcdefghijklm", "ML0000000000000",
                                    "MLAAAAAAAAAAAAAA", ""])
def test_a_posting_with_a_marker_of_another_shape_cannot_exist(marker):
    # when
    with pytest.raises(MarkerError) as refused:
        Posting(document="journal", marker=marker, currency="EUR", date=date(2026, 3, 2), description="",
                facts=MatchFacts(transaction_type="capture", amount=Decimal("1"), currency="EUR"))

    # then
    assert "ML + 13 base32 letters" in str(refused.value)
