"""Production settings: `check --deploy` finds nothing, each security setting follows its environment variable, and
the responses carry the headers."""
import json
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

# django-csp writes the directives in no fixed order.
CSP_DIRECTIVES = {
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
    "base-uri 'none'",
}
SECURITY_SETTINGS = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
    "CONTENT_SECURITY_POLICY",
    "CONTENT_SECURITY_POLICY_REPORT_ONLY",
)
SHOW_SETTINGS = (
    "import json, django; django.setup(); from django.conf import settings; "
    f"print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))"
)
PRODUCTION_DEFAULTS = {
    "SECURE_SSL_REDIRECT": True,
    "SECURE_HSTS_SECONDS": 31536000,
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
    "SECURE_HSTS_PRELOAD": True,
    "SESSION_COOKIE_SECURE": True,
    "CSRF_COOKIE_SECURE": True,
    "SECURE_PROXY_SSL_HEADER": None,
}


def _production_environment(tmp_path, **extra) -> dict:
    """What a production host sets (README: Running in production), and nothing of the test settings."""
    return {
        **{name: os.environ[name] for name in ("PATH", "HOME", "LANG") if name in os.environ},
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_SECRET_KEY": "pD4v-3lq9Xc_K2mZ8wR1tY7uJ0oN5sB6eH4gF3aL9qW2xV8cT1",
        "FERNET_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": "connector.example.com",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'production.sqlite3'}",
        "ML_VAR_DIR": str(tmp_path / "var"),
        **extra,
    }


def _run(arguments: list[str], environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *arguments], cwd=settings.BASE_DIR, env=environment, capture_output=True, text=True
    )


def _security_settings(tmp_path, **extra) -> dict:
    shown = _run(["-c", SHOW_SETTINGS], _production_environment(tmp_path, **extra))
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)


def test_check_deploy_with_production_settings_finds_nothing(tmp_path):
    # when
    checked = _run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], _production_environment(tmp_path))

    # then
    assert (checked.returncode, checked.stdout, checked.stderr) == (
        0, "System check identified no issues (0 silenced).\n", ""
    )


def test_check_deploy_names_a_security_setting_switched_off(tmp_path):
    # when
    checked = _run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        _production_environment(tmp_path, DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_CSRF_COOKIE_SECURE="false"),
    )

    # then
    assert checked.returncode == 1
    assert "?: (security.W008) Your SECURE_SSL_REDIRECT setting is not set to True." in checked.stderr
    assert "?: (security.W016) You have 'django.middleware.csrf.CsrfViewMiddleware' in your MIDDLEWARE" in (
        checked.stderr
    )


def test_production_is_https_only_with_an_enforced_policy_by_default(tmp_path):
    # when
    shown = _security_settings(tmp_path)

    # then
    assert shown == {
        **PRODUCTION_DEFAULTS,
        "CONTENT_SECURITY_POLICY": {
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
        },
        "CONTENT_SECURITY_POLICY_REPORT_ONLY": None,
    }


def test_the_demo_speaks_plain_http_and_keeps_the_policy(tmp_path):
    # when
    shown = _security_settings(tmp_path, DJANGO_DEBUG="true", SANDBOX_ENABLED="true")

    # then
    assert {name: shown[name] for name in PRODUCTION_DEFAULTS} == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 0,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": None,
    }
    assert shown["CONTENT_SECURITY_POLICY"]["DIRECTIVES"]["script-src"] == ["'self'"]


def test_each_security_setting_is_switched_by_its_variable_behind_a_tls_proxy(tmp_path):
    # when
    shown = _security_settings(
        tmp_path,
        DJANGO_SECURE_SSL_REDIRECT="false",
        DJANGO_SECURE_HSTS_SECONDS="3600",
        DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="false",
        DJANGO_SECURE_HSTS_PRELOAD="false",
        DJANGO_SESSION_COOKIE_SECURE="false",
        DJANGO_CSRF_COOKIE_SECURE="false",
        DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
        DJANGO_CSP="report-only",
    )

    # then
    assert {name: shown[name] for name in PRODUCTION_DEFAULTS} == {
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
        "SESSION_COOKIE_SECURE": False,
        "CSRF_COOKIE_SECURE": False,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
    }
    assert shown["CONTENT_SECURITY_POLICY"] is None
    assert shown["CONTENT_SECURITY_POLICY_REPORT_ONLY"]["DIRECTIVES"]["default-src"] == ["'self'"]


def test_the_policy_can_be_switched_off(tmp_path):
    # when
    shown = _security_settings(tmp_path, DJANGO_CSP="off")

    # then
    assert (shown["CONTENT_SECURITY_POLICY"], shown["CONTENT_SECURITY_POLICY_REPORT_ONLY"]) == (None, None)


def test_an_unknown_policy_mode_stops_the_start_naming_the_choices(tmp_path):
    # when
    shown = _run(["-c", SHOW_SETTINGS], _production_environment(tmp_path, DJANGO_CSP="strict"))

    # then
    assert shown.returncode == 1
    assert shown.stdout == ""
    assert shown.stderr.rstrip().endswith(
        "django.core.exceptions.ImproperlyConfigured: DJANGO_CSP is 'strict': it takes one of enforce, report-only, off."
    )


@pytest.mark.django_db
def test_every_page_carries_the_policy_and_a_secure_request_gets_hsts(client):
    # when
    plain = client.get("/admin/login/")
    secure = client.get("/admin/login/", secure=True)

    # then
    assert (plain.status_code, secure.status_code) == (200, 200)
    assert set(plain["Content-Security-Policy"].split("; ")) == CSP_DIRECTIVES
    assert "Strict-Transport-Security" not in plain
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.django_db
def test_plain_http_is_redirected_unless_the_tls_proxy_says_https(client, settings):
    # given
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

    # when
    plain = client.get("/admin/login/")
    proxied = client.get("/admin/login/", headers={"X-Forwarded-Proto": "https"})

    # then
    assert (plain.status_code, plain["Location"]) == (301, "https://testserver/admin/login/")
    assert proxied.status_code == 200
