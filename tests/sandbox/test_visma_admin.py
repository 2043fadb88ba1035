"""The emulator's state in the admin: read-only, GL balance per account included."""
import pytest

from sandbox.models import VismaDocument

pytestmark = pytest.mark.django_db


def test_the_gl_balance_per_account_is_shown_read_only(visma_company, admin_client):
    # when
    listing = admin_client.get("/admin/sandbox/vismaglbalance/")
    adding = admin_client.get("/admin/sandbox/vismaglbalance/add/")

    # then
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "Share capital" in page and "50000.00" in page and "-50000.00" in page
    assert adding.status_code == 403


def test_a_document_shows_its_read_dto_pretty_printed(visma_company, admin_client):
    # given
    customer = VismaDocument.objects.get(collection="customer", key="10001")

    # when
    response = admin_client.get(f"/admin/sandbox/vismadocument/{customer.pk}/change/")

    # then
    assert response.status_code == 200
    assert "&quot;name&quot;: &quot;Nordic Outdoor AB&quot;" in response.content.decode()
