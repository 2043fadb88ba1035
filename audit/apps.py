from django.apps import AppConfig


class AuditConfig(AppConfig):
    verbose_name = "Synced records and audit trail"
    default_auto_field = "django.db.models.BigAutoField"
    name = "audit"
