"""The Square emulator's state in the admin: read-only, secrets left out, objects pretty-printed, the request log."""
import pytest

from sandbox.models import SquareObject
from sandbox.square_seed import SQUARE_SANDBOX_APPLICATION_SECRET, SQUARE_SANDBOX_SIGNATURE_KEY, square_sandbox_seed
from tests.sandbox.square_helpers import SquareSession

pytestmark = pytest.mark.django_db


def test_the_seller_is_shown_without_its_secrets_and_cannot_be_added(admin_client):
    # given
    merchant, _ = square_sandbox_seed(demo=False)

    # when
    listing = admin_client.get("/admin/sandbox/squaremerchant/")
    detail = admin_client.get(f"/admin/sandbox/squaremerchant/{merchant.pk}/change/")
    adding = admin_client.get("/admin/sandbox/squaremerchant/add/")

    # then
    assert listing.status_code == detail.status_code == 200
    assert "Nordlys Friluft" in listing.content.decode()
    assert SQUARE_SANDBOX_APPLICATION_SECRET not in detail.content.decode()
    assert SQUARE_SANDBOX_SIGNATURE_KEY not in detail.content.decode()
    assert adding.status_code == 403


def test_an_object_shows_its_json_and_the_request_log_lists_each_call(admin_client, client):
    # given
    merchant, _ = square_sandbox_seed()
    location = SquareObject.objects.get(object_type="location", square_id=merchant.main_location_id)
    SquareSession(client, "").get("/v2/locations", authorization=None)

    # when
    detail = admin_client.get(f"/admin/sandbox/squareobject/{location.pk}/change/")
    log = admin_client.get("/admin/sandbox/squarerequest/")

    # then
    assert detail.status_code == log.status_code == 200
    assert "&quot;name&quot;: &quot;Oslo Sentrum&quot;" in detail.content.decode()
    assert "/v2/locations" in log.content.decode()
