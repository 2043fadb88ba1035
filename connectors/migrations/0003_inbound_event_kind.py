"""Inbound events say which system sent them: the partner, or Visma itself (reference-data notifications)."""
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

SYSTEMS = [
    ("visma", "Visma.net ERP"), ("paypal", "PayPal"), ("stripe", "Stripe"), ("square", "Square"),
    ("airbase", "Airbase"), ("adobe_commerce", "Adobe Commerce"),
]


def fill_kind(apps, schema_editor):
    InboundEvent = apps.get_model("connectors", "InboundEvent")
    Integration = apps.get_model("connectors", "Integration")
    InboundEvent.objects.update(kind=Subquery(Integration.objects.filter(pk=OuterRef("integration_id")).values("kind")))


class Migration(migrations.Migration):
    dependencies = [("connectors", "0002_platform_schedules")]

    operations = [
        migrations.AddField(
            model_name="inboundevent", name="kind",
            field=models.CharField(choices=SYSTEMS, default="", max_length=32,
                                   help_text="The system that sent it: the partner, or Visma itself."),
            preserve_default=False,
        ),
        migrations.RunPython(fill_kind, migrations.RunPython.noop),
    ]
