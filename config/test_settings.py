"""Settings for the test suite: fixed keys, the sandbox on, plain http, fast hashing; DATABASE_URL still chooses the
database."""
import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("FERNET_KEYS", "test-fernet-key-1")
os.environ.setdefault("SANDBOX_ENABLED", "true")
# The test servers speak plain http, as the demo does; the Content-Security-Policy stays on.
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("DJANGO_SESSION_COOKIE_SECURE", "false")
os.environ.setdefault("DJANGO_CSRF_COOKIE_SECURE", "false")

from .settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
HTTP_BACKOFF_BASE_SECONDS = 0.0
HTTP_BACKOFF_MAX_SECONDS = 0.0
# Every refused webhook delivery is written at once, so a test sees its count without waiting for a flush.
WEBHOOK_REFUSAL_FLUSH_SECONDS = 0
