"""Visma reference data is mirrored on a schedule: a delta every hour, a full pass (catches deletions) nightly."""
from datetime import timedelta

from django.db import migrations
from django.utils import timezone

SCHEDULES = [
    # name, kwargs, schedule type, minutes
    ("reference data: delta refresh of every tenant", "{}", "I", 60),
    ("reference data: full refresh of every tenant", "{'full': True}", "D", None),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    tonight = (timezone.now() + timedelta(days=1)).replace(hour=2, minute=30, second=0, microsecond=0)
    for name, kwargs, schedule_type, minutes in SCHEDULES:
        Schedule.objects.update_or_create(
            name=name,
            defaults={"func": "connectors.tasks.reference_data_refresh_all", "kwargs": kwargs,
                      "schedule_type": schedule_type, "minutes": minutes, "repeats": -1,
                      **({"next_run": tonight} if schedule_type == "D" else {})},
        )


def remove_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=[name for name, *_ in SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [("connectors", "0003_inbound_event_kind")]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
