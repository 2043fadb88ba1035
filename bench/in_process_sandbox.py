"""For the benches that run the emulators in their own process: Django on a fresh database, and the project's WSGI
app (webhooks, /sandbox/visma, /sandbox/paypal, /sandbox/stripe) served on a free loopback port in threads."""
import os
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django(database_url: str | None, *, prefix: str) -> None:
    """Django with the test settings on `database_url` (else DATABASE_URL, else a fresh SQLite file), migrated."""
    workdir = tempfile.mkdtemp(prefix=prefix)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.test_settings")
    os.environ["DATABASE_URL"] = database_url or os.environ.get("DATABASE_URL") or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ["HTTP_LOG_EXCHANGES"] = "true"  # calls are counted from the exchange log
    os.environ["LOG_LEVEL"] = "WARNING"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def serve() -> str:
    """The project's WSGI app on a free loopback port, in threads; returns its base URL."""
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=True)
    server.set_app(get_wsgi_application())
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}"
