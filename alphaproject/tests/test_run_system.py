"""The README's first command, as a new user runs it: scripts/run-system.sh in a fresh copy of the
project, on a machine with no readable sshd log. It must show the demo host's data, never show
the local host as ok, stop everything on Ctrl-C, and lose nothing when run again."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from django.test import SimpleTestCase

from collector.tests.helpers import ROOT, free_port

START_SECONDS = 240


def fresh_copy(folder: Path) -> Path:
    """What a clean clone holds (tracked files, and new ones not ignored), with this checkout's
    virtualenv linked in so the test does not install every requirement again."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.split(b"\0")  # fmt: skip
    copy = folder / "alpha"
    for name in filter(None, files):
        source = ROOT / os.fsdecode(name)
        if source.is_file():
            target = copy / os.fsdecode(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # the modes (scripts) and times (bootstrap's stamp) too
    (copy / ".venv").symlink_to(ROOT / ".venv")
    return copy


def processes_in(folder: Path) -> list[str]:
    """Processes whose working directory is inside `folder` (what Ctrl-C must leave none of)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd.startswith(str(folder)):
            found.append(f"{proc.name}: {command}")
    return found


class RunSystemTests(SimpleTestCase):
    def setUp(self):
        self.folder = Path(tempfile.mkdtemp(prefix="alpha-run-system-"))
        self.addCleanup(shutil.rmtree, self.folder, ignore_errors=True)
        self.copy = fresh_copy(self.folder)
        empty_journal = self.folder / "journal"
        empty_journal.mkdir()
        self.port, self.demo_port = free_port(), free_port()
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALPHA_", "DJANGO_", "DATABASE_URL", "SECRET_KEY"))
        }
        self.env.update(
            ALPHA_BIND=f"127.0.0.1:{self.port}",
            ALPHA_DEMO_BIND=f"127.0.0.1:{self.demo_port}",
            # This machine's sshd logs, as a container has them: none.
            ALPHA_LOG_PATHS=str(self.folder / "no-such-auth.log"),
            ALPHA_JOURNALCTL=f"journalctl --directory={empty_journal}",
            ALPHA_POLL_INTERVAL="10",
            TIME_ZONE="UTC",
        )
        self.system: subprocess.Popen | None = None
        self.addCleanup(self.kill_leftovers)

    def start(self) -> str:
        """Run it until it says it is running; returns what it printed."""
        self.output = open(self.folder / "run-system.out", "w+")  # noqa: SIM115 (read after stop)
        self.addCleanup(self.output.close)
        self.system = subprocess.Popen(
            ["scripts/run-system.sh"], cwd=self.copy, env=self.env, stdout=self.output,
            stderr=subprocess.STDOUT, start_new_session=True,  # its own group: Ctrl-C goes to all of it
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while True:
            printed = (self.folder / "run-system.out").read_text()
            if "Alpha is running" in printed:
                return printed
            if self.system.poll() is not None:
                self.fail(f"run-system.sh exited ({self.system.returncode}):\n{printed[-3000:]}")
            if time.monotonic() > deadline:
                self.fail(f"run-system.sh did not say it runs within {START_SECONDS} s:\n{printed[-3000:]}")
            time.sleep(0.5)

    def ctrl_c(self) -> int:
        os.killpg(self.system.pid, signal.SIGINT)
        try:
            return self.system.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.fail("run-system.sh did not stop within 30 s of Ctrl-C")

    def kill_leftovers(self) -> None:
        if self.system is not None and self.system.poll() is None:
            os.killpg(self.system.pid, signal.SIGKILL)
        for line in processes_in(self.folder):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)

    def hosts(self) -> dict[str, dict]:
        """/api/v1/hosts/ as the admin sees it, logged in with the password the script kept."""
        session = requests.Session()
        base = f"http://127.0.0.1:{self.port}"
        session.get(f"{base}/accounts/login/", timeout=10)
        password = (self.copy / "data" / "admin-password").read_text().strip()
        session.post(
            f"{base}/accounts/login/",
            data={
                "username": "admin",
                "password": password,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        self.session = session
        return {
            host["name"]: host for host in session.get(f"{base}/api/v1/hosts/", timeout=10).json()["results"]
        }

    def wait_for_demo_data(self) -> dict[str, dict]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            hosts = self.hosts()
            if hosts.get("demo", {}).get("state") == "ok" and hosts["demo"]["today"]["sessions"] > 0:
                return hosts
            time.sleep(1)
        self.fail(f"the demo host was not polled with data: {self.hosts()}")

    def test_the_first_command_shows_true_data_stops_cleanly_and_keeps_everything(self):
        printed = self.start()
        # One line says why the local agent has nothing to follow, and how to fix it.
        self.assertIn("No sshd log to follow:", printed)
        self.assertIn(f"http://127.0.0.1:{self.port}/", printed)
        self.assertIn("data/admin-password", printed)
        hosts = self.wait_for_demo_data()
        local = next(h for name, h in hosts.items() if name != "demo")
        # The local host has no log: never a green ok with zeros.
        deadline = time.monotonic() + 60
        while local["state"] == "never polled" and time.monotonic() < deadline:
            time.sleep(1)
            local = next(h for name, h in self.hosts().items() if name != "demo")
        self.assertEqual(local["state"], "no log source")
        self.assertIn("No sshd log to follow", local["last_error"])
        # The dashboard shows the demo host, labelled as such.
        overview = self.session.get(f"http://127.0.0.1:{self.port}/", timeout=10).text
        self.assertIn("demo data", overview)

        self.assertEqual(self.ctrl_c(), 0)
        printed = (self.folder / "run-system.out").read_text()
        self.assertNotIn("Traceback", printed)
        self.assertNotIn("Error", printed.split("Ctrl-C stops it.")[-1])
        self.assertEqual(processes_in(self.folder), [])
        # The files that hold secrets are this user's only.
        data = self.copy / "data"
        self.assertEqual(data.stat().st_mode & 0o777, 0o700)
        for name in ("alpha.env", "alpha.sqlite3", "admin-password", "agent.token"):
            self.assertEqual((data / name).stat().st_mode & 0o077, 0, name)

        # An admin edit between runs, then the same command again: nothing lost, nothing undone.
        database = sqlite3.connect(data / "alpha.sqlite3")
        with database:
            database.execute(
                "UPDATE inventory_app_host SET tags = ',edited,', enabled = 0 WHERE name != 'demo'"
            )
            days = database.execute("SELECT COUNT(*) FROM inventory_app_hostday").fetchone()[0]
        database.close()
        password = (data / "admin-password").read_text()
        self.start()
        hosts = self.wait_for_demo_data()
        self.assertEqual((data / "admin-password").read_text(), password)
        database = sqlite3.connect(data / "alpha.sqlite3")
        tags, enabled = database.execute(
            "SELECT tags, enabled FROM inventory_app_host WHERE name != 'demo'"
        ).fetchone()
        self.assertGreaterEqual(
            database.execute("SELECT COUNT(*) FROM inventory_app_hostday").fetchone()[0], days
        )
        database.close()
        self.assertEqual((tags, enabled), (",edited,", 0))
        self.assertEqual(self.ctrl_c(), 0)
        self.assertEqual(processes_in(self.folder), [])


class RunAgentTests(SimpleTestCase):
    def test_kill_stops_both_processes_and_the_api_answers_only_this_machines_names(self):
        folder = Path(tempfile.mkdtemp(prefix="alpha-run-agent-"))
        self.addCleanup(shutil.rmtree, folder, ignore_errors=True)
        copy = fresh_copy(folder)
        log = folder / "auth.log"
        log.write_text("")
        port = free_port()
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALPHA_", "DJANGO_", "DATABASE_URL", "SECRET_KEY", "ALLOWED_HOSTS"))
        }
        env.update(ALPHA_AGENT_BIND=f"127.0.0.1:{port}", TIME_ZONE="UTC")
        with open(folder / "run-agent.out", "w") as out:
            agent = subprocess.Popen(["scripts/run-agent.sh", str(log)], cwd=copy, env=env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.addCleanup(lambda: agent.poll() is None and os.killpg(agent.pid, signal.SIGKILL))
        token = None
        deadline = time.monotonic() + START_SECONDS
        while True:
            env_file = copy / "data" / "alpha.env"
            if token is None and env_file.exists():
                token = dict(line.split("=", 1) for line in env_file.read_text().split())["ALPHA_AGENT_TOKEN"]
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=2,
                                      headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                if answer.status_code == 200 and answer.json()["following"]:
                    break
            except requests.RequestException:
                pass
            self.assertIsNone(agent.poll(), (folder / "run-agent.out").read_text())
            self.assertLess(time.monotonic(), deadline, (folder / "run-agent.out").read_text())
            time.sleep(0.5)
        # Not ALLOWED_HOSTS=*: a name this machine does not have is refused.
        refused = requests.get(f"http://127.0.0.1:{port}/api/v1/health/", timeout=5,
                               headers={"Authorization": f"Bearer {token}", "Host": "evil.example"})  # fmt: skip
        self.assertEqual(refused.status_code, 400)
        # `kill` of the script (SIGTERM to it alone) leaves no follower behind.
        os.kill(agent.pid, signal.SIGTERM)
        agent.wait(timeout=30)
        deadline = time.monotonic() + 20
        while processes_in(folder) and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(processes_in(folder), [])
