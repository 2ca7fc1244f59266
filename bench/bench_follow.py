"""Following a big log: latency of new lines into the database, memory, idle CPU, clean stop.

    .venv/bin/python bench/bench_follow.py [--size-mb 1024] [--rounds 20] [--quiet 30]
                                           [--sshd-share 0.1] [--keep]

1. Builds a real ~1 GB auth.log on disk (a ~2 MB generated block, mostly CRON/sudo noise with
   some sshd lines, dated three days ago, written over and over) and times
   `watch_authlog --once` on it, so the stored position ends up at the end of the file.
2. Starts `watch_authlog FILE` (follow mode) and waits until it is idle.
3. `--rounds` times: appends 10 lines `Connection closed by 203.0.113.X port N [preauth]` from
   new PIDs, stamped now, in one write, and measures the time from the write until today's row
   in collector_dailycount shows 10 more sessions (SQLite polled directly every 5 ms).
   Targets: median and p95 < 100 ms.
4. Reads the follower's VmRSS and VmHWM (target < 80 MB) and its CPU time over `--quiet`
   seconds with no new lines (target ~0: under 1% of a core).
5. Stops it with SIGTERM; it must exit 0. The big file is always deleted.

Exits 1 if a correctness check fails: counts not reaching +10 each round (or overshooting),
the follower dying, or a non-zero exit. Missed speed/memory targets are reported, not fatal.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta

from common import BENCH_DIR, MANAGE, OUT_DIR, PYTHON, agent_env, manage, run_timed

LATENCY_TARGET_MS = 100
RSS_TARGET_MB = 80
IDLE_CPU_TARGET = 0.01  # share of one core while nothing is written
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_big_log(path: str, size_bytes: int, sshd_share: float) -> tuple[int, int]:
    """Write `size_bytes` (rounded up to whole lines) of auth.log; returns (bytes, lines).

    The repeated block comes from the generator (realistic lines), dated three days ago so that
    today's count holds only the lines the latency rounds append."""
    block_path = path + ".block"
    end = datetime.now(UTC).date() - timedelta(days=3)
    subprocess.run(
        [PYTHON, os.path.join(BENCH_DIR, "generate_authlog.py"), "--out", block_path, "--lines", "20000",
         "--days", "1", "--end", end.isoformat(), "--seed", "7", "--non-sshd", str(1 - sshd_share)],
        check=True, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    with open(block_path, "rb") as f:
        block = f.read()
    os.unlink(block_path)
    os.unlink(block_path + ".truth.json")
    block_lines = block.count(b"\n")
    written = lines = 0
    big = block * max(1, (32 << 20) // len(block))  # ~32 MB writes
    big_lines = block_lines * max(1, (32 << 20) // len(block))
    with open(path, "wb") as f:
        while written + len(big) <= size_bytes:
            f.write(big)
            written += len(big)
            lines += big_lines
        while written < size_bytes:
            f.write(block)
            written += len(block)
            lines += block_lines
        f.flush()
        os.fsync(f.fileno())  # a real file on disk, not just page cache
    return written, lines


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/PID/stat (fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (now) and VmHWM (peak) from /proc/PID/status, in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def wait_idle(proc: subprocess.Popen, timeout: float = 120.0) -> float:
    """Wait until the follower has stopped using CPU for a full second; returns seconds waited."""
    started = time.monotonic()
    last, still = cpu_seconds(proc.pid), 0
    while time.monotonic() - started < timeout:
        time.sleep(0.25)
        if proc.poll() is not None:
            raise RuntimeError(f"the follower exited with code {proc.returncode} while starting")
        now = cpu_seconds(proc.pid)
        still = still + 1 if now == last else 0
        last = now
        if still >= 4 and time.monotonic() - started > 1.5:
            return time.monotonic() - started
    raise RuntimeError(f"the follower was still busy after {timeout:.0f} s")


def sessions_on(db: sqlite3.Connection, day: str) -> int:
    row = db.execute("SELECT sessions FROM collector_dailycount WHERE day = ?", (day,)).fetchone()
    return row[0] if row else 0


def stored_offset(db: sqlite3.Connection) -> int:
    row = db.execute('SELECT MAX("offset") FROM collector_logsource').fetchone()
    return row[0] or 0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: with 20 samples p95 is the 19th)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(rank) - 1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=1024, help="size of the log to follow (MiB)")
    ap.add_argument("--sshd-share", type=float, default=0.1, help="share of sshd lines in the big log")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--lines", type=int, default=10, help="connection lines appended per round")
    ap.add_argument("--quiet", type=float, default=30, help="seconds of idle CPU measurement")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (the big log is always removed)")
    args = ap.parse_args()

    os.makedirs(OUT_DIR, exist_ok=True)
    work = tempfile.mkdtemp(prefix="follow-", dir=OUT_DIR)
    # Log and database in separate directories: the agent watches the log's directory, and the
    # database's own writes there would only add wake-ups unrelated to the log.
    log_dir, data_dir = os.path.join(work, "log"), os.path.join(work, "data")
    os.makedirs(log_dir)
    os.makedirs(data_dir)
    log = os.path.join(log_dir, "auth.log")
    env = agent_env(data_dir)
    follower: subprocess.Popen | None = None
    failures: list[str] = []
    try:
        # 1. The big file, read once to its end.
        started = time.perf_counter()
        size, n_lines = build_big_log(log, int(args.size_mb * 1024 * 1024), args.sshd_share)
        print(
            f"built {log}: {size / 1e9:.2f} GB, {n_lines:,} lines ({args.sshd_share:.0%} sshd) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        manage("migrate", "-v0", env=env)
        once = run_timed([PYTHON, MANAGE, "watch_authlog", "--once", log], env=env)
        if once.returncode != 0:
            sys.stderr.write(once.stderr[-3000:])
            raise RuntimeError(f"watch_authlog --once exited {once.returncode}")
        print(
            f"watch_authlog --once on it: {once.seconds:.1f} s ({size / 1e6 / once.seconds:,.1f} MB/s, "
            f"{n_lines / once.seconds:,.0f} lines/s, cpu {once.cpu_seconds:.1f} s, "
            f"peak RSS {once.max_rss_mb:.0f} MB)"
        )

        db = sqlite3.connect(os.path.join(data_dir, "alpha.sqlite3"), isolation_level=None, timeout=5)
        if stored_offset(db) != size:
            failures.append(
                f"after --once the stored offset is {stored_offset(db)}, not the file size {size}"
            )

        # 2. Follow mode, until idle.
        with (
            open(os.path.join(work, "follower.out"), "w") as out,
            open(os.path.join(work, "follower.err"), "w") as err,
        ):
            # The child keeps its own copies of the descriptors.
            follower = subprocess.Popen(
                [PYTHON, MANAGE, "watch_authlog", log],
                env=env,
                cwd=os.path.dirname(BENCH_DIR),
                stdout=out,
                stderr=err,
            )
        waited = wait_idle(follower)
        print(
            f"follower pid {follower.pid} idle after {waited:.1f} s "
            f"(RSS {memory_mb(follower.pid)['VmRSS']:.0f} MB)"
        )

        # 3. Latency rounds.
        latencies = []
        with open(log, "ab") as out:
            for round_ in range(args.rounds):
                now = datetime.now(UTC)
                day = now.date().isoformat()
                stamp = now.strftime("%b %e %H:%M:%S")
                before = sessions_on(db, day)
                text = "".join(
                    f"{stamp} bench-host sshd[{20000 + round_ * args.lines + i}]: "
                    f"Connection closed by 203.0.113.{i + 1} port {40000 + round_ * 100 + i} [preauth]\n"
                    for i in range(args.lines)
                )
                out.write(text.encode())
                out.flush()  # one write(2) of all lines
                written_at = time.perf_counter()
                deadline = written_at + 15  # well past the 5 s stat fallback
                while True:
                    count = sessions_on(db, day)
                    if count >= before + args.lines or time.perf_counter() > deadline:
                        break
                    time.sleep(0.005)
                elapsed = time.perf_counter() - written_at
                if count != before + args.lines:
                    failures.append(
                        f"round {round_ + 1}: sessions {before} -> {count}, expected +{args.lines}"
                    )
                    if follower.poll() is not None:
                        break
                    continue
                latencies.append(elapsed * 1000)
                time.sleep(0.2 + 0.1 * (round_ % 3))  # let it settle; vary the phase a little
        if stored_offset(db) != os.path.getsize(log):
            failures.append(
                f"stored offset {stored_offset(db)} != file size {os.path.getsize(log)} after the rounds"
            )

        # 4. Footprint: memory now, then CPU over a quiet period.
        if follower.poll() is not None:
            raise RuntimeError(f"the follower died with code {follower.returncode}")
        mem = memory_mb(follower.pid)
        cpu_before = cpu_seconds(follower.pid)
        time.sleep(args.quiet)
        quiet_cpu = cpu_seconds(follower.pid) - cpu_before
        mem_after = memory_mb(follower.pid)

        # 5. Clean stop.
        follower.send_signal(signal.SIGTERM)
        stop_started = time.perf_counter()
        try:
            code = follower.wait(timeout=20)
        except subprocess.TimeoutExpired:
            code = None
        stop_seconds = time.perf_counter() - stop_started

        # ---- report ----
        print()
        if latencies:
            median, p95, worst = statistics.median(latencies), percentile(latencies, 95), max(latencies)
            verdict = "MET" if p95 < LATENCY_TARGET_MS else "MISSED"
            print(
                f"latency, write -> +{args.lines} sessions in the DB, {len(latencies)} rounds: "
                f"median {median:.1f} ms, p95 {p95:.1f} ms, max {worst:.1f} ms "
                f"(target < {LATENCY_TARGET_MS} ms: {verdict})"
            )
            print("  all (ms): " + ", ".join(f"{x:.0f}" for x in latencies))
        peak = max(mem["VmHWM"], mem_after["VmHWM"])
        print(
            f"memory: VmRSS {mem['VmRSS']:.1f} MB after the rounds, {mem_after['VmRSS']:.1f} MB after the "
            f"quiet period; VmHWM (peak) {peak:.1f} MB "
            f"(target < {RSS_TARGET_MB} MB: {'MET' if peak < RSS_TARGET_MB else 'MISSED'})"
        )
        share = quiet_cpu / args.quiet
        print(
            f"idle CPU over {args.quiet:.0f} quiet s: {quiet_cpu:.2f} s ({share:.2%} of a core) "
            f"(target ~0, < {IDLE_CPU_TARGET:.0%}: {'MET' if share < IDLE_CPU_TARGET else 'MISSED'})"
        )
        if code is None:
            failures.append("the follower did not exit within 20 s of SIGTERM")
            print("SIGTERM: no exit within 20 s")
        else:
            print(f"SIGTERM: exited {code} after {stop_seconds:.2f} s")
            if code != 0:
                failures.append(f"the follower exited {code} on SIGTERM, not 0")
    except RuntimeError as exc:
        failures.append(str(exc))
    finally:
        if follower is not None and follower.poll() is None:
            follower.send_signal(signal.SIGTERM)
            try:
                follower.wait(timeout=10)
            except subprocess.TimeoutExpired:
                follower.kill()
                follower.wait()
        if os.path.exists(log):
            os.unlink(log)  # never leave a gigabyte behind
        err_path = os.path.join(work, "follower.err")
        if failures and os.path.exists(err_path):
            with open(err_path) as f:
                tail = f.read()[-2000:]
            if tail.strip():
                print("follower stderr (tail):\n" + tail)
        if args.keep:
            print(f"kept {work} (without the big log)")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    if failures:
        for failure in failures:
            print(f"FAIL: {failure}")
        print("RESULT: FAIL")
        return 1
    print("RESULT: PASS (correctness checks passed; targets above are informational)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
