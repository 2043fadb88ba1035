"""The Square emulator over real HTTP through Square's own SDK (squareup, pointed at the sandbox by base_url): its
answers parse, its pager walks the cursors to the end, every request is logged as fitting api.json with a
Square-Version."""
from datetime import timedelta

import pytest
import requests
from square import Square
from square.core.api_error import ApiError

from sandbox import square_api
from sandbox.models import SquareRequest


@pytest.fixture
def merchant(transactional_db):
    return square_api.square_merchant_create(locations=(("Oslo Sentrum", "ACTIVE"), ("Bergen", "ACTIVE")),
                                             fee_later=False)


def _sdk(live_server, token):
    return Square(base_url=f"{live_server.url}/sandbox/square", token=token, version="2025-08-20", timeout=10)


def test_the_sdk_walks_13_payments_at_two_locations_5_a_page_and_every_request_fits(live_server, merchant):
    # given
    bergen = square_api.square_locations(merchant)["Bergen"]["id"]
    made = {merchant.main_location_id: [], bergen: []}
    for index in range(13):
        location_id = merchant.main_location_id if index % 2 else bergen
        made[location_id].append(square_api.square_payment_create(merchant, location_id, 1000 + index)["id"])
    sdk = _sdk(live_server, square_api.square_personal_token(merchant))

    # when
    locations = sdk.locations.list().locations
    seen = {location.id: [payment.id for payment in sdk.payments.list(
        location_id=location.id, sort_field="UPDATED_AT", sort_order="ASC", limit=5,
        begin_time="2000-01-01T00:00:00Z")] for location in locations}

    # then
    assert seen == made
    assert [row.status for row in SquareRequest.objects.filter(path="/v2/payments")] == [200] * 4
    assert square_api.square_requests_unfit() == []


def test_the_sdk_sees_an_expired_token_as_a_401_access_token_expired(live_server, merchant):
    # given
    access, _, _ = square_api.square_oauth_tokens_issue(merchant)
    square_api.square_clock_advance(merchant, timedelta(days=31))

    # when
    with pytest.raises(ApiError) as raised:
        _sdk(live_server, access).locations.list()

    # then
    assert raised.value.status_code == 401
    assert raised.value.errors[0].code == "ACCESS_TOKEN_EXPIRED"


def test_a_request_without_square_version_is_logged_as_unfit(live_server, merchant):
    # when
    response = requests.get(f"{live_server.url}/sandbox/square/v2/locations", timeout=10,
                            headers={"Authorization": f"Bearer {square_api.square_personal_token(merchant)}"})

    # then
    assert response.status_code == 400
    assert square_api.square_requests_unfit() == ["GET /v2/locations? → 400: no Square-Version"]
