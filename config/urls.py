"""URL map: the admin, the webhook intake, and the vendor sandbox when it is switched on."""
from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from connectors.views import WebhookView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("webhooks/<str:kind>/<uuid:integration_id>/", WebhookView.as_view(), name="webhook"),
]

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("sandbox.urls")))
