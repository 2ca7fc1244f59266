from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import LiveServerTestCase, TestCase, TransactionTestCase, override_settings
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from alphaproject.celery import app
from collector.contract import TALLIED
from collector.models import DailyCount
from collector.tests.helpers import ROOT, database_url, write_log
from collector.tests.logs import today_lines
from inventory_app import tasks
from inventory_app.models import NEVER_POLLED, OK, Host, HostDay
from inventory_app.schedule import POLL_TASK, POLL_TASK_NAME, ensure_poll_schedule

from .agents import TOKEN, ScriptedAgent, SlowAgent, day_of

AGENT_SETTINGS = {
    "ALPHA_AGENT_TOKEN": TOKEN,
    "ALPHA_POLL_READ_TIMEOUT": 2.0,
    "ALPHA_POLL_CONNECT_TIMEOUT": 2.0,
}


def agent_counts() -> dict:
    return {d.day: tuple(getattr(d, f) for f in TALLIED) for d in DailyCount.objects.all()}


def stored_counts(host: Host) -> dict:
    return {d.day: tuple(getattr(d, f) for f in TALLIED) for d in HostDay.objects.filter(host=host)}


def run_eagerly(testcase) -> None:
    """Make `group(...).apply_async()` run its tasks in this process, for the rest of the test."""
    previous = {key: app.conf[key] for key in ("task_always_eager", "task_eager_propagates")}
    app.conf.update(task_always_eager=True, task_eager_propagates=True)
    testcase.addCleanup(app.conf.update, previous)


class PollScheduleTests(TestCase):
    def test_it_is_created_by_migrate(self):
        task = PeriodicTask.objects.get(name=POLL_TASK_NAME)
        self.assertEqual(task.task, POLL_TASK)
        self.assertTrue(task.enabled)
        self.assertEqual(
            (task.interval.every, task.interval.period), (settings.ALPHA_POLL_INTERVAL, "seconds")
        )

    @override_settings(ALPHA_POLL_INTERVAL=120)
    def test_it_is_created_once_from_the_setting(self):
        PeriodicTask.objects.all().delete()
        IntervalSchedule.objects.all().delete()
        task, created = ensure_poll_schedule()
        self.assertTrue(created)
        self.assertEqual(
            (task.interval.every, task.interval.period, task.expire_seconds), (120, "seconds", 120)
        )
        # Idempotent: a second call (another server's migrate) adds nothing.
        self.assertEqual(ensure_poll_schedule(), (task, False))
        self.assertEqual((PeriodicTask.objects.count(), IntervalSchedule.objects.count()), (1, 1))

    def test_migrate_keeps_what_an_admin_edited(self):
        task = PeriodicTask.objects.get(name=POLL_TASK_NAME)
        task.interval = IntervalSchedule.objects.create(every=15, period=IntervalSchedule.MINUTES)
        task.enabled = False
        task.save()
        call_command("migrate", verbosity=0)
        task.refresh_from_db()
        self.assertEqual((task.interval.every, task.interval.period, task.enabled), (15, "minutes", False))
        self.assertEqual(PeriodicTask.objects.filter(name=POLL_TASK_NAME).count(), 1)

    def test_migrate_recreates_a_deleted_task(self):
        PeriodicTask.objects.filter(name=POLL_TASK_NAME).delete()
        call_command("migrate", verbosity=0)
        self.assertEqual(PeriodicTask.objects.get(name=POLL_TASK_NAME).task, POLL_TASK)


@override_settings(**AGENT_SETTINGS)
class TaskTests(LiveServerTestCase):
    """The tasks called as plain functions, against the project's own agent API (live server)."""

    def setUp(self):
        write_log(today_lines(70, "198.51.100.5"))

    def test_poll_host_polls_the_host(self):
        host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        self.assertEqual(tasks.poll_host(host.pk), OK)
        self.assertEqual(stored_counts(host), agent_counts())

    def test_poll_all_hosts_polls_every_enabled_host_once(self):
        run_eagerly(self)
        self.assertEqual(tasks.poll_all_hosts(), 0)
        # Two hosts, each with its own agent (one agent behind two entries is counted once).
        other = ScriptedAgent(self)
        web = [Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN),
               Host.objects.create(name="web2", url=other.url, token=TOKEN)]  # fmt: skip
        off = Host.objects.create(name="off", url=self.live_server_url, token=TOKEN, enabled=False)
        self.assertEqual(tasks.poll_all_hosts(), 2)
        for host in web:
            host.refresh_from_db()
            self.assertEqual((host.state, host.polling_since), (OK, None))
        self.assertEqual(stored_counts(web[0]), agent_counts())
        self.assertEqual(
            stored_counts(web[1]),
            {day: tuple(day_of(day, sources)[f] for f in TALLIED) for day, sources in other.days.items()},
        )
        # A disabled host is never polled.
        off.refresh_from_db()
        self.assertEqual(off.state, NEVER_POLLED)
        self.assertFalse(HostDay.objects.filter(host=off).exists())


def run_at_once(*calls) -> list:
    """Run the calls in threads released together; each thread closes its own connection."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = calls[i]()
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


@override_settings(**AGENT_SETTINGS)
class OverlappingPollTests(TransactionTestCase):
    """Threads see each other's committed claims, as workers on several machines do."""

    def test_two_tasks_never_poll_one_host_at_once(self):
        agent = SlowAgent(self, delay=1.0)
        host = Host.objects.create(name="web1", url=agent.url, token=TOKEN)
        results = run_at_once(lambda: tasks.poll_host(host.pk), lambda: tasks.poll_host(host.pk))
        # One polled; the other found the host claimed and skipped it without a request.
        self.assertEqual(sorted(results), ["", OK])
        self.assertEqual(agent.polls, 1)
        host.refresh_from_db()
        self.assertIsNone(host.polling_since)

    def test_overlapping_rounds_never_poll_one_host_at_once(self):
        run_eagerly(self)
        agents = [SlowAgent(self, delay=0.3) for _ in range(3)]
        for i, agent in enumerate(agents):
            Host.objects.create(name=f"web{i}", url=agent.url, token=TOKEN)
        self.assertEqual(run_at_once(tasks.poll_all_hosts, tasks.poll_all_hosts), [3, 3])
        # Every host was polled, by one round or both, but never by both at the same time.
        self.assertEqual([a.most_under_way for a in agents], [1, 1, 1])
        self.assertTrue(all(1 <= a.polls <= 2 for a in agents))
        self.assertEqual(set(Host.objects.values_list("state", "polling_since")), {(OK, None)})


REDIS_CLAIM_KEY = "alpha:tests:claimed"


def claim_redis_db(broker_url: str) -> tuple[str, redis.Redis]:
    """An empty database on the broker's Redis server, held for this test: test runs sharing a
    Redis server never take each other's tasks, and the database can be flushed afterwards."""
    redis.Redis.from_url(broker_url, socket_connect_timeout=3, socket_timeout=5).ping()
    for db in range(15, 0, -1):
        url = urlsplit(broker_url)._replace(path=f"/{db}").geturl()
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        try:
            if client.set(REDIS_CLAIM_KEY, os.getpid(), nx=True, ex=600):
                if client.dbsize() == 1:
                    return url, client
                client.delete(REDIS_CLAIM_KEY)  # in use by something else: not ours to flush
        except redis.ResponseError:
            pass  # the server has fewer databases
        client.close()
    raise redis.RedisError(f"no empty database to use on {broker_url}")


class CeleryProcessesTestCase(LiveServerTestCase):
    """A real beat and a real worker, in subprocesses, polling the live agent over HTTP through
    Redis (an empty database claimed on CELERY_BROKER_URL's server) and the test database. Under
    CI=true a missing Redis fails the test."""

    def setUp(self):
        try:
            self.broker_url, self.redis = claim_redis_db(settings.CELERY_BROKER_URL)
        except (redis.RedisError, ValueError) as exc:
            reason = f"Redis is not usable at {settings.CELERY_BROKER_URL}: {str(exc).rstrip('.')}"
            if os.environ.get("CI") == "true":
                self.fail(f"{reason}; CI needs it.")
            self.skipTest(f"{reason} (CI would fail).")
        self.addCleanup(self.redis.close)
        self.addCleanup(self.redis.flushdb)
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory, ignore_errors=True)
        self.processes: dict[str, subprocess.Popen] = {}
        self.addCleanup(self.stop_processes)  # runs before the flush: stopped workers take nothing

    def celery(self, name: str, *args: str, **settings_env: str) -> None:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "alphaproject.settings",
            "DATABASE_URL": database_url(),
            "SECRET_KEY": "test",
            "TIME_ZONE": settings.TIME_ZONE,
            "ALPHA_ROLE": "central",
            "CELERY_BROKER_URL": self.broker_url,
            **settings_env,
        }
        with open(self.directory / f"{name}.log", "w") as log:
            self.processes[name] = subprocess.Popen(
                [str(Path(sys.executable).with_name("celery")), "-A", "alphaproject", *args],
                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def stop_processes(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # warm shutdown: running polls finish
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def logs(self) -> str:
        return "".join(
            f"\n--- {name} (exit {p.poll()}):\n{(self.directory / f'{name}.log').read_text()[-3000:]}"
            for name, p in self.processes.items()
        )

    def wait_for(self, condition, what: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            for name, process in self.processes.items():
                if process.poll() is not None:
                    self.fail(f"celery {name} exited while waiting for {what}.{self.logs()}")
            if time.monotonic() > deadline:
                self.fail(f"No {what} within {seconds:.0f} s.{self.logs()}")
            time.sleep(0.2)

    def start_worker_and_beat(self, every: int = 2, **settings_env: str) -> None:
        """A worker (threads pool) and beat, with the poll task's interval shortened to `every`
        seconds as an admin would, and settings_env added to their environment."""
        task, _ = ensure_poll_schedule()
        task.interval = IntervalSchedule.objects.create(every=every, period=IntervalSchedule.SECONDS)
        task.save()
        self.celery(
            "worker", "worker", "--pool", "threads", "--concurrency", "4", "-l", "warning",
            "-n", f"alpha-test-{os.getpid()}@%h", "--without-mingle", "--without-gossip", **settings_env,
        )  # fmt: skip
        self.celery(
            "beat", "beat", "-l", "warning",
            "-s", str(self.directory / "beat-schedule"), "--pidfile", str(self.directory / "beat.pid"),
            **settings_env,
        )  # fmt: skip


@override_settings(**AGENT_SETTINGS)
class CeleryWorkerAndBeatTests(CeleryProcessesTestCase):
    def test_beat_and_a_worker_poll_every_host_on_schedule(self):
        write_log(today_lines(70, "198.51.100.5"))
        host = Host.objects.create(name="web1", url=self.live_server_url, token=TOKEN)
        self.start_worker_and_beat()

        # Beat sent poll_all_hosts, the worker fanned it out, a poll_host stored the agent's days.
        def polled() -> bool:
            host.refresh_from_db()
            return host.state == OK and stored_counts(host) == agent_counts()

        self.wait_for(polled, "poll of the host", 60)
        first_poll_at = host.last_poll_at
        # And again on the next round, replacing the days rather than adding to them.
        self.wait_for(lambda: Host.objects.get(pk=host.pk).last_poll_at > first_poll_at, "second round", 30)
        self.assertEqual(stored_counts(host), agent_counts())

        self.stop_processes()
        self.assertEqual({name: p.returncode for name, p in self.processes.items()}, {"worker": 0, "beat": 0})
        host.refresh_from_db()
        self.assertIsNone(host.polling_since)  # the warm shutdown released its claim
