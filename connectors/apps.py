from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    verbose_name = "Connections and integrations"
    default_auto_field = "django.db.models.BigAutoField"
    name = "connectors"

    def ready(self):
        # Each vendor package registers its streams, webhook verifier and ping on import.
        import connectors.paypal  # noqa: F401
        import connectors.square  # noqa: F401
        import connectors.stripe  # noqa: F401
        import connectors.visma  # noqa: F401
