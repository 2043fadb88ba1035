from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    verbose_name = "Connections and integrations"
    default_auto_field = "django.db.models.BigAutoField"
    name = "connectors"
