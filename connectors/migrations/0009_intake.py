"""The webhook intake: the inbox row is the queue (a dispatch lease); refused deliveries counted per integration,
reason and window, which Operators may see."""
import django.db.models.deletion
from django.contrib.auth.management import create_permissions
from django.db import migrations, models


def operators_see_refusals(apps, schema_editor):
    app_config = apps.get_app_config("connectors")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permission = Permission.objects.get(content_type__app_label="connectors", codename="view_webhookrefusal")
    for group in Group.objects.filter(name="Operator"):
        group.permissions.add(permission)


class Migration(migrations.Migration):

    dependencies = [
        ('connectors', '0008_tenant_visma_numbering'),
        ('audit', '0004_waiting_claims_sweep'),
    ]

    operations = [
        migrations.AddField(
            model_name='inboundevent',
            name='dispatched_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='WebhookRefusal',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('reason', models.CharField(choices=[('no_secret', 'No signing secret configured'), ('no_verifier', 'No verifier for this system'), ('unsigned', 'Signature missing'), ('bad_signature', 'Bad signature'), ('stale', 'Sent outside the time tolerance'), ('certificate', 'Certificate not accepted'), ('malformed', 'Malformed delivery'), ('too_large', 'Body too large')], max_length=32)),
                ('window_start', models.DateTimeField()),
                ('deliveries', models.PositiveIntegerField(default=0)),
                ('last_detail', models.TextField(blank=True, help_text='Why the latest delivery counted here was refused.')),
                ('last_remote_addr', models.CharField(blank=True, max_length=64)),
                ('first_at', models.DateTimeField()),
                ('last_at', models.DateTimeField()),
                ('integration', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='webhook_refusals', to='connectors.integration')),
            ],
            options={
                'ordering': ['-window_start', 'integration', 'reason'],
                'constraints': [models.UniqueConstraint(fields=('integration', 'reason', 'window_start'), name='one_refusal_count_per_window')],
            },
        ),
        migrations.RunPython(operators_see_refusals, migrations.RunPython.noop),
    ]
