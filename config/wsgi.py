"""WSGI entry point (gunicorn config.wsgi): the site, and the webhook intake without the middleware of a browser site."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
site = get_wsgi_application()

from django.conf import settings  # noqa: E402  (settings are configured by get_wsgi_application)
from django.core.handlers.wsgi import WSGIHandler  # noqa: E402

WEBHOOK_PATH_PREFIX = "/webhooks/"
# What only a signed-in browser needs: a webhook has no session, user, CSRF token, messages or frames.
BROWSER_MIDDLEWARE = frozenset({
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
})


class WebhookHandler(WSGIHandler):
    """Django's handler with MIDDLEWARE less BROWSER_MIDDLEWARE (anything else, security included, still runs)."""

    def load_middleware(self, is_async=False):
        everything = settings.MIDDLEWARE
        # Django reads settings.MIDDLEWARE while it builds the chain: narrowed for that moment only (at import).
        settings.MIDDLEWARE = [name for name in everything if name not in BROWSER_MIDDLEWARE]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = everything


webhooks = WebhookHandler()


def application(environ, start_response):
    handler = webhooks if environ.get("PATH_INFO", "").startswith(WEBHOOK_PATH_PREFIX) else site
    return handler(environ, start_response)
