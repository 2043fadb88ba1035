"""Every 4 hours, each tenant's Visma is checked for documents that share a marker (possible duplicates)."""
from django.db import migrations

NAME = "visma: check for documents that share a marker"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=NAME, defaults={"func": "connectors.tasks.visma_duplicates_check_all", "schedule_type": "I",
                             "minutes": 240, "repeats": -1},
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("connectors", "0006_waiting_claims_sweep")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
