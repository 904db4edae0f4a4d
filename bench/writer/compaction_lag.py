#!/usr/bin/env python3
"""bench/writer/compaction_lag.py: webmon-writer's consumer lag at a steady ingest rate while its
background thread compacts a closed day (issue 13: "at 2,000 checks/s the writer's consumer lag
stays under 2 s while a day is being compacted"), for docs/benchmarks.md.

  bench/writer/compaction_lag.py [--rate 2000] [--targets 10000] [--old-targets 1000]
                                 [--old-checks 1440] [--after 60] [--timeout 900]

One run, on the local stack (scripts/stack up; PG_PORT and KAFKA_PORT as the stack's):
  1. bench/writer/compaction_bytes.sh with PREPARE_ONLY=1 makes a fresh database holding one closed
     day 5 days back (--old-targets x --old-checks of the bench's realistic checks, not compacted);
  2. the real webmon-writer (build/src/writer/webmon-writer, WEBMON_WRITER) on that database and a
     fresh topic (created by the writer: 6 partitions), compact_after_days 2, defaults otherwise;
  3. kcat produces checks of --targets targets at --rate a second (10,000 targets every 5 s by
     default), each due now, as webmon-checker would;
  4. every 0.5 s: the checks produced so far minus the writer's webmon_writer_rows_written_total and
     webmon_writer_dead_letters_total from its /metrics (the lag in checks; / rate: in seconds),
     the compaction's span from the writer's log line "compacted DAY: ... in S s";
  5. after the compaction (the writer's background thread starts it a minute after start) and
     --after seconds more, prints the lag in the first 15 s (the group join and first batches),
     before the compaction, during and after it, and removes what it made
     (the writer stopped by pid, the topic and the database dropped).
Only loopback. Needs kcat, psql, a built webmon, webmon-writer and webmon-bench-delete-topic.
"""

import argparse
import datetime
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from importlib.machinery import SourceFileLoader

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def load_checker_bench():
    """bench/checker/run as a module, for its helpers: free_port, wait_for, http_get, scrape,
    total, percentile, rfc3339_ms."""
    loader = SourceFileLoader("bench_checker_run", os.path.join(ROOT, "bench/checker/run"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


bench = load_checker_bench()


class Producer(threading.Thread):
    """Writes --rate checks a second to kcat's stdin, in ticks of 10 ms; counts what it wrote."""

    def __init__(self, kcat, rate, targets, checker):
        super().__init__(daemon=True)
        self.kcat, self.rate, self.targets, self.checker = kcat, rate, targets, checker
        self.produced = 0
        self.stop = False
        self.lock = threading.Lock()

    def line(self, i, now):
        t = i % self.targets
        at = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        ok = i % 100 >= 2
        return json.dumps({
            "schema_version": 1, "target": f"site-{t:05d}",
            "url": f"https://www.site-{t:05d}.example.com/health?probe=webmon",
            "scheduled_at": at, "started_at": at,
            "http_response_time": 0.05 + 0.0001 * (i % 3000) if ok else None,
            "http_status": 200 if ok else None, "regexp_match": None, "ok": ok,
            "error": None if ok else "timeout",
            "error_detail": None if ok else "no complete response within 10 s",
            "timings": {"dns": 0.0011, "connect": 0.012, "tls": 0.025, "ttfb": 0.04, "transfer": 0.002,
                        "total": 0.08},
            "body_bytes": 2000 + i % 30000, "redirects": 0, "tls_cert_not_after": None,
            "peer": f"203.0.113.{1 + t % 250}:443", "checker": self.checker, "dns_cached": True,
        }, separators=(",", ":"))

    def run(self):
        start = time.monotonic()
        i = 0
        while not self.stop:
            due = int((time.monotonic() - start) * self.rate)
            if due > i:
                now = datetime.datetime.now(datetime.timezone.utc)
                chunk = "".join(self.line(k, now) + "\n" for k in range(i, due))
                self.kcat.stdin.write(chunk)
                self.kcat.stdin.flush()
                with self.lock:
                    i = due
                    self.produced = i
            time.sleep(0.01)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=int, default=2000)
    ap.add_argument("--targets", type=int, default=10000)
    ap.add_argument("--old-targets", type=int, default=1000)
    ap.add_argument("--old-checks", type=int, default=1440)
    ap.add_argument("--after", type=float, default=60)
    ap.add_argument("--timeout", type=float, default=900)
    a = ap.parse_args()

    pg_port = os.environ.get("PG_PORT", "5432")
    kafka = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
    writer_bin = os.environ.get("WEBMON_WRITER", os.path.join(ROOT, "build/src/writer/webmon-writer"))
    cli = os.environ.get("WEBMON_CLI", os.path.join(ROOT, "build/src/cli/webmon"))
    delete_topic = os.environ.get("WEBMON_DELETE_TOPIC",
                                  os.path.join(ROOT, "build/bench/checker/webmon-bench-delete-topic"))
    admin = f"postgresql://webmon:webmon@127.0.0.1:{pg_port}/webmon"

    out = subprocess.run([os.path.join(HERE, "compaction_bytes.sh"), str(a.old_targets), str(a.old_checks)],
                         env=dict(os.environ, PREPARE_ONLY="1", WEBMON_CLI=cli), check=True,
                         capture_output=True, text=True).stdout
    m = re.search(r"database (\S+) day (\S+)", out)
    db, day = m.group(1), m.group(2)
    uri = f"postgresql://webmon:webmon@127.0.0.1:{pg_port}/{db}"
    topic = f"webmon.lagbench.{os.getpid()}"
    metrics_port = bench.free_port()
    tmp = tempfile.mkdtemp(prefix="webmon-lagbench-")
    cfg = os.path.join(tmp, "writer.yml")
    with open(cfg, "w") as f:
        f.write(f'kafka:\n  bootstrap_servers: "{kafka}"\n  topic: "{topic}"\n'
                f'postgres:\n  uri: "{uri}"\n'
                f'writer:\n  group_id: "lagbench-{os.getpid()}"\n  compact_after_days: 2\n'
                f'  metrics_listen: "127.0.0.1:{metrics_port}"\n')
    log = open(os.path.join(tmp, "writer.log"), "w")
    writer = kcat = producer = None
    try:
        writer = subprocess.Popen([writer_bin, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        try:  # ready (200): the topic exists (the writer created it) and PostgreSQL answers
            bench.wait_for("webmon-writer's /readyz", lambda: writer.poll() is None and bench.http_get(
                f"http://127.0.0.1:{metrics_port}/readyz", timeout=1) is not None)
        except RuntimeError as e:
            sys.exit(f"{e}; its log: {log.name}")
        started = time.monotonic()
        kcat = subprocess.Popen(["kcat", "-P", "-b", kafka, "-t", topic, "-X", "linger.ms=5"],
                                stdin=subprocess.PIPE, text=True)
        producer = Producer(kcat, a.rate, a.targets, "lagbench")
        producer.start()
        # The compaction's span from the writer's log: "compacted DAY: ... in S s" at its end.
        done = re.compile(r"^(\S+) info \[webmon\] compacted " + re.escape(day) + r": .* in ([0-9.]+) s$")
        wall0 = time.time() - (time.monotonic() - started)
        samples = []  # (seconds since start, lag in checks)
        span = None  # (start, end) in seconds since start
        done_line = None
        while time.monotonic() - started < a.timeout:
            time.sleep(0.5)
            with producer.lock:
                produced = producer.produced
            metrics = bench.scrape(metrics_url)
            written = (bench.total(metrics, "webmon_writer_rows_written_total")
                       + bench.total(metrics, "webmon_writer_dead_letters_total"))
            now = time.monotonic() - started
            samples.append((now, produced - written))
            if span is None:
                with open(log.name) as f:
                    for line in f:
                        m = done.match(line.strip())
                        if m:
                            end = bench.rfc3339_ms(m.group(1)) - wall0
                            span = (end - float(m.group(2)), end)
                            done_line = line.strip()
            if span is not None and now - span[1] >= a.after:
                break
        producer.stop = True
        producer.join()
        elapsed = time.monotonic() - started
        written = int(bench.total(bench.scrape(metrics_url), "webmon_writer_rows_written_total"))
        compacted = subprocess.run(["psql", "-qXAt", uri, "-c",
                                    f"SELECT count(*), coalesce(sum(n), 0) FROM checks_compact WHERE day = '{day}'"],
                                   capture_output=True, text=True).stdout.strip()
    finally:
        if producer:
            producer.stop = True
        if kcat:
            kcat.stdin.close()
            kcat.wait(timeout=30)
        if writer:
            writer.send_signal(signal.SIGTERM)
            writer.wait(timeout=60)
        log.close()
        subprocess.run([delete_topic, kafka, topic], capture_output=True)
        subprocess.run(["psql", "-qX", admin, "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                       capture_output=True)

    first, ended_at = span if span else (None, None)
    warmup = [s for s in samples if s[0] < 15]  # the group join and the first batches
    before = [s for s in samples if s[0] >= 15 and (first is None or s[0] < first)]
    during = [s for s in samples if first is not None and first <= s[0] <= ended_at]
    after = [s for s in samples if ended_at is not None and s[0] > ended_at]
    def row(name, part):
        lags = [s[1] / a.rate for s in part]
        if not lags:
            return f"{name:<22} no samples"
        return (f"{name:<22} {len(lags):4d} samples  lag mean {sum(lags) / len(lags):5.2f} s  "
                f"p99 {bench.percentile(sorted(lags), 0.99):5.2f} s  max {max(lags):5.2f} s")

    print(f"rate {a.rate} checks/s over {a.targets} targets; the day compacted: {day} "
          f"({a.old_targets} targets x {a.old_checks} checks); load average {os.getloadavg()[0]:.2f}")
    if first is not None:
        print(f"compaction ran from {first:.1f} s to {ended_at:.1f} s after the writer was ready (its log)")
    print(f"produced {producer.produced} checks in {elapsed:.1f} s ({producer.produced / elapsed:.0f} a second); "
          f"{written} written by the end")
    print(row("first 15 s (joining)", warmup))
    print(row("before the compaction", before))
    print(row("during the compaction", during))
    print(row("after it", after))
    print(f"compact rows of {day}: {compacted.replace('|', ' rows, checks ')}")
    if done_line:
        print("writer:", done_line)
    if not during:
        sys.exit(f"the compaction did not end within --timeout; the writer's log: {log.name}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
