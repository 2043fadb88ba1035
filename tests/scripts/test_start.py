"""scripts/start in a copy of the repository with nothing beside it: ready only once the demo has loaded, and
nothing left running once it is stopped by a signal or by a failed step. 20 to 50 s each, so only with
scripts/test -m start_script."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = [
    pytest.mark.start_script,
    pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="finds the processes left through /proc (Linux)"),
]

READY = "ml-connector is ready at"
START_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 40


def _repository_copy(target: Path) -> Path:
    """The working tree as git sees it (tracked and new files, nothing ignored), so that what is tested is what a
    commit of it would hold; a virtualenv is shared with this one when there is one, to skip the install."""
    root = Path(settings.BASE_DIR)
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root, check=True, capture_output=True,
    ).stdout.decode().split("\0")
    copy = target / "ml-connector"
    for name in filter(None, listed):
        source = root / name
        if not source.is_file():  # deleted in the working tree, not yet in the index
            continue
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, copy / name)
    if sys.prefix != sys.base_prefix:
        (copy / ".venv").symlink_to(sys.prefix)
    return copy


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _processes_in(folder: Path) -> list[str]:
    """Live processes (not zombies) whose working directory is in `folder`: what scripts/start started there."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
            state = (proc / "stat").read_text().rpartition(")")[2].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        if state != "Z" and (cwd == folder or folder in cwd.parents):
            found.append(f"{proc.name} {command}")
    return found


class StartScript:
    """scripts/start running in a copy, its output collected as it comes."""

    def __init__(self, copy: Path, port: int | None = None):
        self.copy = copy
        self.port = port or _free_port()
        # Only what a user's shell would have: none of the test settings' variables.
        environment = {name: os.environ[name] for name in ("PATH", "HOME", "LANG", "TMPDIR") if name in os.environ}
        self.process = subprocess.Popen(
            ["scripts/start"], cwd=copy, env={**environment, "PORT": str(self.port)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_ready_or_exit(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if any(line.startswith(READY) for line in self.lines):
                return True
            if self.process.poll() is not None:
                self.reader.join(5)
                return False
            time.sleep(0.5)
        raise AssertionError(f"scripts/start neither got ready nor stopped in {START_TIMEOUT_SECONDS} s:\n{self.output}")

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        returncode = self.process.wait(STOP_TIMEOUT_SECONDS)
        self.reader.join(5)
        return returncode

    def kill_leftovers(self) -> None:
        """After a failed test: the processes this test started in its copy, by id."""
        if self.process.poll() is None:
            self.process.kill()
        for line in _processes_in(self.copy):
            try:
                os.kill(int(line.split()[0]), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def repository_copy(tmp_path_factory):
    return _repository_copy(tmp_path_factory.mktemp("start"))


@pytest.fixture
def start(repository_copy):
    started = []

    def run(copy: Path = repository_copy, port: int | None = None) -> StartScript:
        script = StartScript(copy, port)
        started.append(script)
        return script

    yield run
    for script in started:
        script.kill_leftovers()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["TERM", "INT", "HUP"])
def test_the_demo_is_ready_with_its_postings_and_a_signal_stops_everything(start, repository_copy, signum):
    # given
    script = start()
    ready = script.wait_ready_or_exit()
    assert ready, script.output
    running = _processes_in(repository_copy)

    # when
    returncode = script.stop(signum)

    # then
    assert returncode == 128 + signum
    lines = script.lines
    report = lines.index("nordlys-friluft's records, by stream:")
    assert lines[report + 1].startswith("  paypal captures: posted ")
    # the demo's Stripe invoices: 100005 paid, 100001 paid and refunded, 100003 declined then paid and disputed
    # (the dispute: a note on the invoice, and a journal moving the disputed amount and fee out of clearing)
    assert sorted(line for line in lines[report:] if line.startswith("  stripe ")) == [
        "  stripe charges: posted 4", "  stripe disputes: posted 2", "  stripe refunds: posted 1"]
    # Square: six store sales and one invoice's card payment (booked as the invoice's customer payment), the partial
    # refund, the invoice, and both vendors (sandbox/square_seed.py)
    assert sorted(line for line in lines[report:] if line.startswith("  square ")) == [
        "  square invoice_payments: posted 1", "  square invoices: posted 1",
        "  square payments: posted 6, nothing booked 1", "  square refunds: posted 1", "  square vendors: posted 2"]
    assert any(line.startswith("  total: posted ") for line in lines[report:])
    assert f"Log in at http://127.0.0.1:{script.port}/admin/" in lines
    assert len(running) >= 4  # the script, runserver and its autoreloaded server, the cluster and its workers
    assert _processes_in(repository_copy) == []


def test_a_missing_vendor_document_stops_the_start_before_anything_runs(start, tmp_path):
    # given
    copy = _repository_copy(tmp_path)
    (copy / "sandbox/vendor_specs/stripe/spec3.yaml").unlink()

    # when
    script = start(copy)
    ready = script.wait_ready_or_exit()

    # then
    assert not ready
    assert script.process.returncode == 1
    assert "(sandbox.E001) sandbox/vendor_specs/stripe/spec3.yaml cannot be read (No such file or directory)" in (
        script.output
    )
    assert "Log in at" not in script.output
    assert _processes_in(copy) == []


def test_a_demo_that_cannot_load_is_not_announced_and_stops_its_server_and_worker(start, tmp_path):
    # given: a PayPal document that passes the start-up check but cannot be parsed on first use
    copy = _repository_copy(tmp_path)
    (copy / "sandbox/vendor_specs/paypal/reporting_transactions_v1.json").write_text('{"openapi": "3.0.3", "pa')

    # when
    script = start(copy)
    ready = script.wait_ready_or_exit()

    # then
    assert not ready
    assert script.process.returncode == 1
    assert "scripts/start: the demo's first PayPal poll did not complete (above)" in script.lines
    assert (
        "VendorSpecUnreadable: The sandbox cannot read PayPal Transaction Search v1 from "
        "sandbox/vendor_specs/paypal/reporting_transactions_v1.json: JSONDecodeError: "
    ) in script.output
    assert "scripts/start: stopping the web server and the worker" in script.lines
    assert "Log in at" not in script.output
    assert _processes_in(copy) == []


def test_a_port_already_taken_is_named_before_anything_runs(start, repository_copy):
    # given
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when
        script = start(repository_copy, port=port)
        ready = script.wait_ready_or_exit()

    # then
    assert not ready
    assert script.process.returncode == 1
    assert script.lines[-1] == (
        f"scripts/start: port {port} is taken (another scripts/start?); PORT=8080 scripts/start uses another"
    )
    assert _processes_in(repository_copy) == []
