from django.apps import AppConfig


class MappingsConfig(AppConfig):
    verbose_name = "GL mappings and Visma reference data"
    default_auto_field = "django.db.models.BigAutoField"
    name = "mappings"
