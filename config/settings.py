"""Settings for ml-connector, read from the environment (django-environ); `.env` is optional, env vars win."""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.core.management.utils import get_random_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)

# Local state of the embedded default (SQLite file, generated development keys) lives here.
VAR_DIR = Path(env.str("ML_VAR_DIR", default=str(BASE_DIR / "var")))


def _development_secret(name: str, make) -> str:
    """A secret kept in var/ so that a DEBUG install keeps working across restarts."""
    path = VAR_DIR / name
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


def _fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment (or .env); "
            "only DJANGO_DEBUG=true may run with a generated development key."
        )
    SECRET_KEY = _development_secret("dev-secret-key", get_random_secret_key)

# Newest key first: new values are encrypted with it, every listed key can still decrypt.
FERNET_KEYS = env.list("FERNET_KEYS", default=[])
if not FERNET_KEYS:
    if not DEBUG:
        raise ImproperlyConfigured(
            "FERNET_KEYS is not set: credentials cannot be encrypted. Set FERNET_KEYS to one or more keys, "
            "newest first (generate one with: python -c 'from cryptography.fernet import Fernet; "
            "print(Fernet.generate_key().decode())')."
        )
    FERNET_KEYS = [_development_secret("dev-fernet-key", _fernet_key)]

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS only unless DEBUG (the demo and the tests speak plain http); each can be switched off, e.g. behind a TLS
# proxy that redirects by itself. README: "Running in production".
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
# Behind a TLS proxy: the header it sets to "https" (X-Forwarded-Proto), only if it always sets or strips it.
_proxy_ssl_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="").strip()
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_" + _proxy_ssl_header.upper().replace("-", "_"), "https") if _proxy_ssl_header else None
)

# Content-Security-Policy (django-csp until Django 6 has its own): scripts only from this site. Styles may also be
# inline, as Django 5.2's admin change list and our review screen write some.
CSP_MODES = ("enforce", "report-only", "off")
CSP_MODE = env.str("DJANGO_CSP", default="enforce")
if CSP_MODE not in CSP_MODES:
    raise ImproperlyConfigured(f"DJANGO_CSP is {CSP_MODE!r}: it takes one of {', '.join(CSP_MODES)}.")
_csp_policy = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
CONTENT_SECURITY_POLICY = _csp_policy if CSP_MODE == "enforce" else None
CONTENT_SECURITY_POLICY_REPORT_ONLY = _csp_policy if CSP_MODE == "report-only" else None

INSTALLED_APPS = [
    "config.apps.BackOfficeAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "csp",
    "django_q",
    "simple_history",
    "connectors",
    "mappings",
    "audit",
]

# The vendor emulators: on for the demo and the tests, never by default.
SANDBOX_ENABLED = env.bool("SANDBOX_ENABLED", default=False)
if SANDBOX_ENABLED:
    INSTALLED_APPS.append("sandbox")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'ml-connector.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web process and workers share one file: WAL + busy timeout + IMMEDIATE make writers queue
    # instead of failing with "database is locked". synchronous=FULL syncs the WAL at every commit: a webhook
    # is acknowledged only once its row survives a power loss (NORMAL may lose the last commits:
    # https://www.sqlite.org/pragma.html#pragma_synchronous).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
        }
    )
    # One connection per process kept open: reopening costs the Python functions Django registers, and closing
    # the last one checkpoints the WAL, on every request.
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=600))
    if not str(DATABASES["default"]["NAME"]).startswith(":memory:"):
        Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
# Test runs side by side on one server each need their own test database.
if env.str("DATABASE_TEST_NAME", default=""):
    DATABASES["default"]["TEST"] = {"NAME": env.str("DATABASE_TEST_NAME")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# django-q2: the ORM broker by default (embedded), Redis when REDIS_URL is set (production).
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="ml-connector"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=360),
    "max_attempts": 1,  # our own services retry with backoff; a lost task is re-found by the sweeps
    "catch_up": False,
    "save_limit": 1000,
    "ack_failures": True,
    "poll": 1,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
# The configured broker, which also hands the workers stored webhook events: the inbox row is the queue.
Q_CLUSTER["broker_class"] = "connectors.broker.InboxBroker"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
}

# Webhooks: a body over this size is refused with 413 before it is read.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# Refused deliveries are counted in memory and written at most this often (the first of each window at once).
WEBHOOK_REFUSAL_FLUSH_SECONDS = env.float("WEBHOOK_REFUSAL_FLUSH_SECONDS", default=5.0)

# Outbound HTTP: (connect, read) timeouts in seconds, retries on timeouts, 5xx and 429.
HTTP_CONNECT_TIMEOUT = env.float("HTTP_CONNECT_TIMEOUT", default=5.0)
HTTP_READ_TIMEOUT = env.float("HTTP_READ_TIMEOUT", default=30.0)
HTTP_MAX_RETRIES = env.int("HTTP_MAX_RETRIES", default=4)
HTTP_BACKOFF_BASE_SECONDS = env.float("HTTP_BACKOFF_BASE_SECONDS", default=0.5)
HTTP_BACKOFF_MAX_SECONDS = env.float("HTTP_BACKOFF_MAX_SECONDS", default=30.0)
HTTP_LOG_EXCHANGES = env.bool("HTTP_LOG_EXCHANGES", default=True)

# Record retries: exponential backoff with a cap, then `failed` (replayable).
SYNC_MAX_ATTEMPTS = env.int("SYNC_MAX_ATTEMPTS", default=8)
SYNC_RETRY_BASE_SECONDS = env.int("SYNC_RETRY_BASE_SECONDS", default=60)
SYNC_RETRY_MAX_SECONDS = env.int("SYNC_RETRY_MAX_SECONDS", default=6 * 3600)
# A record waiting on another (a refund on its capture) is looked at again this often.
SYNC_WAIT_SECONDS = env.int("SYNC_WAIT_SECONDS", default=120)
# The longest a record waits on another (a refund on its capture) before a person is asked to look.
SYNC_MAX_WAIT_SECONDS = env.int("SYNC_MAX_WAIT_SECONDS", default=24 * 3600)
# After a write whose answer was lost (a timeout, a 5xx), the target may still commit it for a while: the lookup
# by marker that decides whether to write again waits this long. Longer than Visma takes to commit a request.
SYNC_WRITE_SETTLE_SECONDS = env.int("SYNC_WRITE_SETTLE_SECONDS", default=600)
# A record left in `posting` longer than this (its worker died) is checked against the target by its marker; it
# must outlast a write's read timeout plus the settle time, or a live write could be looked up too early.
SYNC_POSTING_LEASE_SECONDS = env.int("SYNC_POSTING_LEASE_SECONDS", default=900)
if SYNC_POSTING_LEASE_SECONDS <= SYNC_WRITE_SETTLE_SECONDS + HTTP_READ_TIMEOUT:
    raise ImproperlyConfigured(
        f"SYNC_POSTING_LEASE_SECONDS ({SYNC_POSTING_LEASE_SECONDS}) must be longer than SYNC_WRITE_SETTLE_SECONDS "
        f"({SYNC_WRITE_SETTLE_SECONDS}) plus HTTP_READ_TIMEOUT ({HTTP_READ_TIMEOUT:g}): a write still in flight "
        "would be looked up before it could commit"
    )

# The check for documents in Visma that share a marker reads what changed over this many hours (it runs every
# 4 hours, so each document is looked at several times on the day it was written).
VISMA_DUPLICATE_CHECK_HOURS = env.int("VISMA_DUPLICATE_CHECK_HOURS", default=26)

# A payment naming an invoice reference the Visma invoice mirror lacks reads the mirror's delta again first when it is
# older than this: an invoice written a minute ago is found; a reference Visma lacks costs no call of its own.
VISMA_INVOICE_MIRROR_MAX_AGE_SECONDS = env.int("VISMA_INVOICE_MIRROR_MAX_AGE_SECONDS", default=60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "redact_secrets": {"()": "connectors.logging.RedactSecretsFilter"},
        "counted_webhook_refusals": {"()": "connectors.logging.CountedWebhookRefusalsFilter"},
    },
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact_secrets"]},
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # A refused webhook is counted (connectors.refusals), not logged once per request.
        "django.request": {"filters": ["counted_webhook_refusals"]},
        "stripe": {"level": "WARNING"},  # the library logs every request at INFO
    },
}
