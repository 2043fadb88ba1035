"""The Square locations mirror: every location ListLocations gives (inactive ones marked), refreshed on a schedule and
on demand; read-only in the admin."""
import pytest
from django.urls import reverse

from connectors.square.locations import square_locations_refresh, square_locations_refresh_all
from mappings.models import SquareLocation
from tests.factories import IntegrationFactory, UserFactory

from .conftest import BERGEN, OSLO, TRONDHEIM, FakeSquare, square_location

pytestmark = pytest.mark.django_db


def mirrored(tenant):
    return list(SquareLocation.objects.filter(tenant=tenant).order_by("location_id").values_list(
        "location_id", "name", "status", "currency", "timezone", "is_main"))


def test_every_location_is_mirrored_inactive_ones_marked_and_the_main_one_as_square_names_it():
    integration = IntegrationFactory(kind="square")
    square = FakeSquare([square_location(OSLO, "Store Oslo Sentrum"), square_location(BERGEN, "Store Bergen"),
                         square_location(TRONDHEIM, "Store Trondheim", status="INACTIVE")])
    square_locations_refresh(integration.tenant, square)
    assert mirrored(integration.tenant) == [
        (OSLO, "Store Oslo Sentrum", "ACTIVE", "NOK", "Europe/Oslo", True),
        (BERGEN, "Store Bergen", "ACTIVE", "NOK", "Europe/Oslo", False),
        (TRONDHEIM, "Store Trondheim", "INACTIVE", "NOK", "Europe/Oslo", False),
    ]


def test_a_location_square_no_longer_lists_is_kept_as_inactive_and_a_renamed_one_is_updated():
    integration = IntegrationFactory(kind="square")
    square_locations_refresh(integration.tenant, FakeSquare())
    square_locations_refresh(integration.tenant, FakeSquare([square_location(BERGEN, "Bergen Torget"),
                                                             square_location(OSLO, "Store Oslo Sentrum")]))
    assert [(row[0], row[1], row[2]) for row in mirrored(integration.tenant)] == [
        (OSLO, "Store Oslo Sentrum", "ACTIVE"), (BERGEN, "Bergen Torget", "ACTIVE"),
        (TRONDHEIM, "Store Trondheim", "INACTIVE")]
    assert SquareLocation.objects.count() == 3


def test_the_scheduled_refresh_reads_each_square_integration_and_goes_on_past_one_that_fails(monkeypatch):
    good, bad = IntegrationFactory(kind="square"), IntegrationFactory(kind="square")

    class Api(FakeSquare):
        def __init__(self, connection, *, settings=None):
            super().__init__()
            self.connection = connection

        def locations(self):
            if self.connection == bad.partner_connection:
                raise RuntimeError("Square is down")
            return super().locations()

    monkeypatch.setattr("connectors.square.client.SquareApi", Api)
    assert square_locations_refresh_all() == f"refreshed 1, failed 1: {bad.tenant.slug}"
    assert len(mirrored(good.tenant)) == 3 and mirrored(bad.tenant) == []


def test_the_schedule_exists():
    from django_q.models import Schedule

    schedule = Schedule.objects.get(func="connectors.square.locations.square_locations_refresh_all")
    assert (schedule.schedule_type, schedule.minutes) == ("I", 60)


def test_the_admin_lists_locations_read_only_with_inactive_ones_marked(client):
    integration = IntegrationFactory(kind="square")
    square_locations_refresh(integration.tenant, FakeSquare())
    user = UserFactory(username="root", is_superuser=True)
    user.save()
    client.force_login(user)
    page = client.get(reverse("admin:mappings_squarelocation_changelist"))
    assert page.status_code == 200
    assert b"Store Trondheim" in page.content and b"Inactive" in page.content
    assert client.get(reverse("admin:mappings_squarelocation_add")).status_code == 403


def test_a_rule_for_a_store_shows_the_store_s_name_and_its_tip_account_in_the_admin(client):
    from mappings.models import GLMappingRule

    integration = IntegrationFactory(kind="square")
    square_locations_refresh(integration.tenant, FakeSquare())
    GLMappingRule.objects.create(tenant=integration.tenant, system="square", name="Square sales, Bergen",
                                 location=BERGEN, gl_account="3020", tip_account="2960", dimensions={"1": "320"})
    GLMappingRule.objects.create(tenant=integration.tenant, system="square", name="Square sales, Trondheim",
                                 location=TRONDHEIM, gl_account="3000")
    user = UserFactory(username="root", is_superuser=True)
    user.save()
    client.force_login(user)
    page = client.get(reverse("admin:mappings_glmappingrule_changelist")).content.decode()
    assert f"at Store Bergen ({BERGEN})" in page and "tips 2960" in page
    assert f"at Store Trondheim (inactive) ({TRONDHEIM})" in page
