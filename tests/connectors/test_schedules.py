"""Poll schedules: one django-q2 schedule per stream of an enabled integration, kept in step by integration_save."""
import ast

import pytest
from django.core.exceptions import ValidationError
from django_q.models import Schedule

from connectors import registry, tasks
from connectors.models import Integration
from connectors.services import integration_save
from tests.factories import IntegrationFactory, TenantFactory
from tests.ledger_stream import PaymentsStream

pytestmark = pytest.mark.django_db


class RefundsStream(PaymentsStream):
    name = "refunds"
    default_poll_minutes = 60


@pytest.fixture
def paypal_streams(payments_stream):
    """The paypal kind with exactly two streams and one setting, whatever the vendor package registers."""
    spec = registry.kind_spec("paypal")
    saved = spec.streams, spec.settings_schema
    spec.streams = {"payments": PaymentsStream, "refunds": RefundsStream}
    spec.settings_schema = {"fee_split": (bool, True)}
    yield spec
    spec.streams, spec.settings_schema = saved


def poll_schedules(integration) -> dict[str, tuple]:
    return {
        schedule.name: (schedule.func, schedule.args, schedule.schedule_type, schedule.minutes, schedule.repeats)
        for schedule in Schedule.objects.filter(name__startswith=f"poll {integration.pk} ")
    }


def test_saving_an_integration_creates_one_schedule_per_stream(paypal_streams):
    # given
    integration = IntegrationFactory(poll_minutes={"payments": 5})

    # when
    integration_save(integration)

    # then
    pk = str(integration.pk)
    assert poll_schedules(integration) == {
        f"poll {pk} payments": ("connectors.tasks.stream_poll", repr((pk, "payments")), "I", 5, -1),
        f"poll {pk} refunds": ("connectors.tasks.stream_poll", repr((pk, "refunds")), "I", 60, -1),
    }
    assert Integration.objects.get(pk=integration.pk).settings == {"fee_split": True}


def test_a_schedules_arguments_run_the_poll_task(paypal_streams, payments_stream):
    # given
    integration = integration_save(IntegrationFactory())
    schedule = Schedule.objects.get(name=f"poll {integration.pk} payments")

    # when (as the django-q2 scheduler reads them)
    outcome = getattr(tasks, schedule.func.rsplit(".", 1)[1])(*ast.literal_eval(schedule.args))

    # then
    assert outcome == "fetched 0, posted 0, flagged 0, failed 0"
    assert integration.sync_runs.get().status == "completed"


def test_saving_ten_times_leaves_exactly_one_schedule_per_stream(paypal_streams):
    # given
    integration = IntegrationFactory()

    # when
    for _ in range(10):
        integration_save(integration)

    # then
    assert Schedule.objects.filter(name__startswith=f"poll {integration.pk} ").count() == 2
    assert sorted(poll_schedules(integration)) == [f"poll {integration.pk} payments", f"poll {integration.pk} refunds"]


def test_changing_the_poll_minutes_updates_the_schedule_in_place(paypal_streams):
    # given
    integration = integration_save(IntegrationFactory())
    before = Schedule.objects.get(name=f"poll {integration.pk} payments")

    # when
    integration.poll_minutes = {"payments": 30}
    integration_save(integration)

    # then
    after = Schedule.objects.get(name=f"poll {integration.pk} payments")
    assert (after.pk, before.minutes, after.minutes) == (before.pk, 15, 30)
    assert Schedule.objects.get(name=f"poll {integration.pk} refunds").minutes == 60


def test_disabling_removes_the_schedules_and_enabling_brings_them_back(paypal_streams):
    # given
    integration = integration_save(IntegrationFactory())
    other = integration_save(IntegrationFactory(tenant=TenantFactory(slug="other")))

    # when
    integration.enabled = False
    integration_save(integration)

    # then only this integration's schedules went
    assert poll_schedules(integration) == {}
    assert len(poll_schedules(other)) == 2

    # when
    integration.enabled = True
    integration_save(integration)

    # then
    assert [minutes for *_, minutes, _ in sorted(poll_schedules(integration).values())] == [15, 60]


def test_an_inactive_tenant_has_no_schedules(paypal_streams):
    # given
    integration = IntegrationFactory(tenant=TenantFactory(is_active=False))

    # when
    integration_save(integration)

    # then
    assert poll_schedules(integration) == {}


def test_a_stream_gone_from_the_kind_loses_its_schedule(paypal_streams):
    # given
    integration = integration_save(IntegrationFactory())

    # when
    paypal_streams.streams.pop("refunds")
    integration_save(integration)

    # then
    assert list(poll_schedules(integration)) == [f"poll {integration.pk} payments"]


@pytest.mark.parametrize(
    ("poll_minutes", "message"),
    [
        ({"payments": 0}, "payments: minutes must be a whole number from 1 to 10080, got 0"),
        ({"payments": "15"}, "payments: minutes must be a whole number from 1 to 10080, got '15'"),
        ({"payments": True}, "payments: minutes must be a whole number from 1 to 10080, got True"),
        ({"payments": 2.5}, "payments: minutes must be a whole number from 1 to 10080, got 2.5"),
        ({"payments": 40000}, "payments: minutes must be a whole number from 1 to 10080, got 40000"),
        ({"captures": 15}, "paypal has no stream 'captures'; its streams: payments, refunds"),
    ],
)
def test_a_bad_poll_cadence_is_refused_naming_the_key_and_nothing_changes(paypal_streams, poll_minutes, message):
    # given
    integration = integration_save(IntegrationFactory())
    schedules_before = poll_schedules(integration)

    # when
    integration.poll_minutes = poll_minutes
    with pytest.raises(ValidationError) as refused:
        integration_save(integration)

    # then
    assert refused.value.message_dict == {"poll_minutes": [message]}
    assert Integration.objects.get(pk=integration.pk).poll_minutes == {}
    assert poll_schedules(integration) == schedules_before


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"fee_split": True, "colour": "red"}, "unknown paypal setting(s): colour; known: fee_split"),
        ({"fee_split": "yes"}, 'fee_split must be bool, got "yes"'),
    ],
)
def test_a_bad_setting_is_refused_naming_the_key(paypal_streams, settings, message):
    # given
    integration = IntegrationFactory()

    # when
    integration.settings = settings
    with pytest.raises(ValidationError) as refused:
        integration_save(integration)

    # then
    assert refused.value.message_dict == {"settings": [message]}
    assert Integration.objects.get(pk=integration.pk).settings == {}
    assert poll_schedules(integration) == {}


def test_the_platform_schedules_exist_after_migrate():
    # then
    assert {
        schedule.name: (schedule.func, schedule.schedule_type, schedule.minutes, schedule.repeats)
        for schedule in Schedule.objects.exclude(name__startswith="poll ")
    } == {
        "records: advance due retries and interrupted writes": ("connectors.tasks.records_advance_due", "I", 1, -1),
        "inbox: process events the queue missed": ("connectors.tasks.inbox_sweep", "I", 5, -1),
        "visma: check for documents that share a marker": ("connectors.tasks.visma_duplicates_check_all", "I", 240,
                                                           -1),
        "reference data: delta refresh of every tenant": ("connectors.tasks.reference_data_refresh_all", "I", 60, -1),
        "reference data: full refresh of every tenant": ("connectors.tasks.reference_data_refresh_all", "D", None, -1),
        "square locations: refresh of every Square integration": (
            "connectors.square.locations.square_locations_refresh_all", "I", 60, -1),
    }


def test_a_setting_outside_its_allowed_values_is_refused_when_the_integration_is_saved():
    # given
    from connectors.services import integration_settings_clean

    # when
    with pytest.raises(ValidationError) as refused:
        integration_settings_clean("stripe", {"customer_match": "email"})

    # then
    assert refused.value.message_dict == {
        "settings": ['customer_match must be one of metadata, description, got "email"'],
    }
    assert integration_settings_clean("stripe", {"customer_match": "description"})["customer_match"] == "description"
