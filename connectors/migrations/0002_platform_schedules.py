"""The platform's own schedules: the retry/recovery sweep and the inbox sweep (pollers are per integration)."""
from django.db import migrations

PLATFORM_SCHEDULES = [
    ("records: advance due retries and interrupted writes", "connectors.tasks.records_advance_due", 1),
    ("inbox: process events the queue missed", "connectors.tasks.inbox_sweep", 5),
]


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func, minutes in PLATFORM_SCHEDULES:
        Schedule.objects.update_or_create(
            name=name, defaults={"func": func, "schedule_type": "I", "minutes": minutes, "repeats": -1}
        )


def remove_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.filter(name__in=[name for name, _, _ in PLATFORM_SCHEDULES]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("connectors", "0001_initial"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_schedules, remove_schedules)]
