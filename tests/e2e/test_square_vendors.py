"""Square vendors (beta) → Visma suppliers over real HTTP, both emulators live: each vendor once, also when synced
twice and when its webhook comes too; one named like an existing Visma supplier is linked, not duplicated; an
inactive vendor becomes an inactive supplier, never an active one."""
from __future__ import annotations

import pytest

from audit.models import AuditEntry, RecordStatus, SyncRecord
from connectors.services import inbox_process
from mappings.models import ExternalReference
from sandbox import square_api
from sandbox.models import VismaDocument
from sandbox.services import VISMA_SANDBOX_COMPANY_ID
from sandbox.square_webhooks import square_events_deliver
from tests.e2e.test_square_payments import SquareWorld
from tests.paypal.world import live_connections_close

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(live_server):
    yield SquareWorld(live_server.url)
    live_connections_close()


def suppliers() -> dict[str, dict]:
    return {document.key: document.body for document in VismaDocument.objects.filter(
        company_id=VISMA_SANDBOX_COMPANY_ID, collection="supplier")}


def test_vendors_become_suppliers_once_an_existing_one_by_name_and_an_inactive_one_inactive(world):
    # given: Visma has "Oslo Cloud Hosting AS" (20002); Square has it in other case and spacing, a new coffee
    # roaster with a contact, and a closed-down cup maker
    before = suppliers()
    hosting = square_api.square_vendor_create(world.merchant, "OSLO CLOUD  hosting AS")
    roaster = square_api.square_vendor_create(world.merchant, "Nordic Coffee Roasters AS", account_number="K-1001",
                                              contact_name="Kari", contact_email="kari@roasters.example")
    cups = square_api.square_vendor_create(world.merchant, "Gamle Kopper AS", status="INACTIVE")
    # when: polled twice, and the vendor.created webhooks delivered too
    first = world.poll("vendors")
    second = world.poll("vendors")
    square_events_deliver(world.merchant)
    inbox_process()
    # then: two suppliers created, none twice; the existing one linked
    assert (first.fetched, first.posted, second.fetched) == (3, 3, 0)
    created = {number: body for number, body in suppliers().items() if number not in before}
    assert sorted((body["name"], body["status"]) for body in created.values()) == [
        ("Gamle Kopper AS", "Inactive"), ("Nordic Coffee Roasters AS", "Active")]
    targets = dict(SyncRecord.objects.filter(stream="vendors").values_list("source_id", "target_id"))
    assert targets[hosting["id"]] == "20002"
    assert {targets[roaster["id"]], targets[cups["id"]]} == set(created)
    assert set(SyncRecord.objects.filter(stream="vendors").values_list("status", flat=True)) == {RecordStatus.POSTED}
    assert dict(ExternalReference.objects.filter(system="square", external_kind="vendor").values_list(
        "external_id", "visma_id")) == targets
    # each creation audited with both ids
    record = SyncRecord.objects.get(stream="vendors", source_id=roaster["id"])
    [posted] = AuditEntry.objects.filter(sync_record=record, to_status=RecordStatus.POSTED)
    assert (posted.source_id, posted.target_id) == (roaster["id"], targets[roaster["id"]])
    assert square_api.square_requests_unfit() == []


def test_a_vendor_renamed_after_it_was_linked_is_not_created_again(world):
    # given: linked once
    vendor = square_api.square_vendor_create(world.merchant, "Nordic Coffee Roasters AS")
    world.poll("vendors")
    count = len(suppliers())
    # when: renamed in Square, its webhook delivered, polled again
    square_api.square_vendor_update(world.merchant, vendor["id"], name="Nordic Coffee Roasters & Co AS")
    square_events_deliver(world.merchant)
    inbox_process()
    world.poll("vendors")
    # then
    assert len(suppliers()) == count
    assert SyncRecord.objects.filter(stream="vendors").count() == 1


def test_a_vendor_made_inactive_after_it_was_linked_makes_its_supplier_inactive_once(world):
    # given: created as an active supplier
    vendor = square_api.square_vendor_create(world.merchant, "Nordic Coffee Roasters AS")
    world.poll("vendors")
    number = SyncRecord.objects.get(stream="vendors", source_id=vendor["id"]).target_id
    assert suppliers()[number]["status"] == "Active"
    # when: Square makes it INACTIVE; its webhook delivered twice, and polled twice
    square_api.square_vendor_update(world.merchant, vendor["id"], status="INACTIVE")
    square_events_deliver(world.merchant, duplicate=True)
    inbox_process()
    world.poll("vendors")
    world.poll("vendors")
    # then: the supplier is Inactive, by one record
    assert suppliers()[number]["status"] == "Inactive"
    notice = SyncRecord.objects.get(stream="vendors", source_id=f"{vendor['id']}:inactive")
    assert (notice.status, notice.target_id) == (RecordStatus.POSTED, number)
    assert SyncRecord.objects.filter(stream="vendors").count() == 2
