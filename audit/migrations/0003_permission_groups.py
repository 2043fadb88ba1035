"""The three kinds of users, each with the least it needs: Accountant, Finance, Operator."""
from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    # Mapping setup; reference data and records read-only; cannot approve postings or touch credentials.
    "Accountant": [
        "mappings.add_glmappingrule", "mappings.change_glmappingrule", "mappings.delete_glmappingrule",
        "mappings.view_glmappingrule", "mappings.view_historicalglmappingrule",
        "mappings.add_externalreference", "mappings.change_externalreference",
        "mappings.delete_externalreference", "mappings.view_externalreference",
        "mappings.view_glaccount", "mappings.view_dimensionvalue", "mappings.view_customer",
        "mappings.view_supplier",
        "audit.view_syncrecord", "audit.view_auditentry",
    ],
    # The review queue: approve, correct, reject, replay, export; mappings read-only; never credentials.
    "Finance": [
        "audit.view_syncrecord", "audit.review_syncrecord", "audit.replay_syncrecord", "audit.export_syncrecord",
        "audit.view_auditentry",
        "mappings.view_glmappingrule", "mappings.view_historicalglmappingrule", "mappings.view_externalreference",
        "mappings.view_glaccount", "mappings.view_dimensionvalue", "mappings.view_customer",
        "mappings.view_supplier",
    ],
    # Running it: tenants, connections, integrations, runs, events, exchanges; replay what failed.
    "Operator": [
        "connectors.add_tenant", "connectors.change_tenant", "connectors.view_tenant",
        "connectors.add_connection", "connectors.change_connection", "connectors.view_connection",
        "connectors.add_integration", "connectors.change_integration", "connectors.view_integration",
        "connectors.view_inboundevent", "connectors.view_syncrun", "connectors.view_synccursor",
        "connectors.view_httpexchange",
        "audit.view_syncrecord", "audit.replay_syncrecord", "audit.export_syncrecord", "audit.view_auditentry",
        "django_q.view_schedule", "django_q.view_failure", "django_q.view_success", "django_q.view_ormq",
    ],
}


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codes in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for code in codes:
            app_label, codename = code.split(".")
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0002_initial"),
        ("mappings", "0001_initial"),
        ("connectors", "0002_platform_schedules"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
