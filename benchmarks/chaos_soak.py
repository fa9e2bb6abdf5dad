"""Chaos soak: a pool of workers on PostgreSQL under random combined faults, then its promises
checked (issue 33).

A private PostgreSQL cluster (``initdb``/``pg_ctl`` from ``/usr/lib/postgresql/*/bin``, so it
can be restarted) holds a fresh database. ``--workers N`` worker processes run a tiny study
(``studies/imdb_tiny.yaml`` on 400 of the shared IMDB reviews, 6 epochs a trial) with the
issue's short heartbeat (``heartbeat_interval=2&grace_period=8``): one ``lstm-tune search
--workers 2`` pool (its parent is a fault target) and N-2 single ``lstm-tune search``
processes, all on PostgreSQL directly (``--via direct``), all through one ``lstm-tune
storage-proxy`` (``--via proxy``), or the single workers half and half (``--via both``).
``lstm-tune dashboard`` reads the same database and its API is polled every few seconds.

For ``--duration`` seconds (counted from the first trial's start) faults are injected from a
schedule drawn from ``--seed`` (a fault every ``--fault-gap`` 4-9 s, the issue's operator run):
SIGKILL, SIGTERM, and SIGSTOP for longer than the grace period then SIGCONT, of a single
worker that is running a trial; a restart of PostgreSQL (down 2-6 s); a restart of the proxy
(SIGKILL, back 1-3 s later on the same port); SIGKILL of the pool's parent once it has
workers. A fault with no such victim waits for one until the next fault is due, and is then
skipped (and counted). A process that fails (a non-zero exit) is started again on its own
study, as compose's ``restart: on-failure`` or a Kubernetes Job's replacement pod runs the same
command; one that exits 0 is started on the current round. On a
busy machine, where a worker takes a minute to start and a trial tens of seconds, a wider
``--fault-gap`` lets the pool finish trials between faults.

**Rounds.** The study budget is not sized to the duration (throughput under faults is not
known in advance): the pool runs a sequence of studies ("rounds") of ``--round-trials``
trials each (default 3 per worker). When a round's budget is met, the workers that exit start
on the next round, until the duration is over; the last round then finishes with no more
faults. So the budget's end (the budget gate, the wait for other workers' trials, overshoot,
re-queued copies left WAITING) is passed under faults once per round rather than once per run,
and every round's checks hold at once.

Checks (each a promise; the script exits 1 if any is broken):

* finished trials of each round against its budget (overshoot at most the number of workers);
* no trial RUNNING or WAITING in any round;
* every FAILed config re-run (a trial of the round with its params finished) or its failure
  explained (its last trial has a ``fail_reason``, or was not re-queued because its params
  had lost their worker ``max_requeue`` times already, or it failed after the round's budget
  was met, when no copy is queued; each as that trial's log line says); "lost" counts the
  others;
* no trial number twice in a study;
* artifacts readable for every finished trial (it lists at least one, each opens, none empty,
  no ``artifact_error``);
* worker tracebacks: 0 in every worker's log (the proxy's and the dashboard's are counted
  too); every worker exit explained by a fault (0, or the signal's code after SIGKILL or
  SIGTERM; a pool's orphaned workers must exit on the SIGTERM their dead parent's death sends);
* the dashboard's API answered every poll.

Also reported: faults injected by kind, rounds, trials failed and re-run, and the RSS of the
workers (30 s after each started and at its last sample), the proxy and the dashboard.

    python benchmarks/chaos_soak.py [--via direct|proxy|both] [--workers 8] [--duration 1800]
        [--seed 33] [--round-trials 24] [--fault-gap 4 9] [--json PATH] [--workdir DIR]

Prints a table and a Markdown block for BENCHMARKS.md (section ``chaos_soak``). The logs of
every process stay in the work directory (printed at the start).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import pwd
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import SHARED_DATA, git_revision  # noqa: E402

from lstm_tune.tuning.studies import WORKER_ATTR  # noqa: E402

# The operator run: heartbeat every 2 s, a trial is stale after 8 s without one.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 2, 8
HEARTBEAT = f"heartbeat_interval={HEARTBEAT_INTERVAL}&grace_period={GRACE_PERIOD}"
FAULT_GAP_S = (4.0, 9.0)  # seconds between two faults
PAUSE_PAST_GRACE_S = (2.0, 6.0)  # a SIGSTOP lasts the grace period plus this
PG_DOWN_S = (2.0, 6.0)
PROXY_DOWN_S = (1.0, 3.0)
FIRST_FAULT_S = 5.0
# Relative weights of the fault kinds (the worker faults are the common case).
WEIGHTS = {
    "worker_sigkill": 3.0,
    "worker_sigterm": 3.0,
    "worker_sigstop": 3.0,
    "pg_restart": 1.0,
    "proxy_restart": 1.0,
    "pool_parent_sigkill": 1.5,
}
DASHBOARD_POLL_S = 3.0
RSS_SAMPLE_S = 10.0
RSS_SETTLED_S = 30.0  # a worker's "start" RSS: its first sample this long after it started
TRAIN_REVIEWS, TEST_REVIEWS, EPOCHS = 400, 100, 6
PR_SET_CHILD_SUBREAPER = 36  # prctl(2): orphaned descendants are reparented to this process


# --- the fault schedule --------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One scheduled fault: when (seconds after the pool started), what, and a number in
    [0, 1) that picks its victim among the candidates alive at that moment."""

    at: float
    kind: str
    pick: float
    length: float  # how long the victim stays paused or down (0: not applicable)


def fault_kinds(via: str) -> list[str]:
    """The fault kinds that apply to a pool ``via`` direct, proxy or both."""
    return [k for k in WEIGHTS if via != "direct" or k != "proxy_restart"]


def fault_schedule(
    seed: int, duration: float, kinds: list[str], gap: tuple[float, float] = FAULT_GAP_S
) -> list[Fault]:
    """The faults of a run (one every ``gap`` seconds): the same arguments, the same list."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = FIRST_FAULT_S
    while at < duration:
        kind = rng.choices(kinds, weights=[WEIGHTS[k] for k in kinds])[0]
        span = {
            "worker_sigstop": tuple(GRACE_PERIOD + s for s in PAUSE_PAST_GRACE_S),
            "pg_restart": PG_DOWN_S,
            "proxy_restart": PROXY_DOWN_S,
        }.get(kind)  # fmt: skip
        faults.append(Fault(at, kind, rng.random(), rng.uniform(*span) if span else 0.0))
        at += rng.uniform(*gap)
    return faults


# --- servers: PostgreSQL, the proxy, the dashboard -----------------------------------------------


def pg_bin() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are: ``$LSTM_TUNE_PG_BIN``, the newest
    ``/usr/lib/postgresql/*/bin``, or PATH."""
    given = os.environ.get("LSTM_TUNE_PG_BIN")
    found = [Path(given)] if given else []
    found += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: p.parent.name.zfill(4)
    )[::-1]
    on_path = shutil.which("pg_ctl")
    found += [Path(on_path).parent] if on_path else []
    return next((d for d in found if (d / "pg_ctl").exists() and (d / "initdb").exists()), None)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Postgres:
    """A PostgreSQL cluster of the soak's own (fsync off), restartable, in a new directory
    of the system's temp dir (run as root, the server runs as ``postgres``, which must reach
    it: a work directory under a private one would not do)."""

    def __init__(self, bin_dir: Path) -> None:
        where = Path(tempfile.mkdtemp(prefix="chaos-soak-pg-"))
        self.where, self.bin_dir = where, bin_dir
        self.data, self.log = where / "pgdata", where / "postgres.log"
        self.port = free_port()
        self._user: Callable[[], None] | None = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            owner = pwd.getpwnam("postgres")
            os.chown(where, owner.pw_uid, owner.pw_gid)

            def as_postgres() -> None:
                os.setgid(owner.pw_gid)
                os.setuid(owner.pw_uid)

            self._user = as_postgres
        self._tool("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _tool(self, tool: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / tool), *args], check=True, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=self._user, cwd=self.data.parent,  # noqa: PLW1509
        )  # fmt: skip

    def start(self) -> None:
        """Start the server; return once it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data.parent} -c fsync=off"
        )
        self._tool(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: every connection cut), and reap its postmaster."""
        pid_file = self.data / "postmaster.pid"
        pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        self._tool("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
        if pid is not None:  # the postmaster is orphaned to this process (a subreaper)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)

    def create_database(self, name: str) -> str:
        """Create database ``name``; its SQLAlchemy URL."""
        import psycopg

        conninfo = f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"


def lstm_tune(*args: str) -> list[str]:
    """The command line of ``lstm-tune ARGS`` from this checkout."""
    return [sys.executable, "-m", "lstm_tune.cli", *args]


def process_env() -> dict[str, str]:
    """The environment of every process the soak starts: this checkout, one TF thread each."""
    return {
        **os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "LSTM_TUNE_STORAGE": "",
        "LSTM_TUNE_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
    }  # fmt: skip


def start_logged(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output (both streams) into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=process_env(), cwd=ROOT
        )


def wait_for_line(proc: subprocess.Popen[bytes], log: Path, marker: str, timeout: float) -> str:
    """The first line of ``log`` holding ``marker``; fail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if marker in line:
                return line
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise RuntimeError(
        f"{' '.join(proc.args[2:4])} did not say {marker!r}: {log.read_text()[-2000:]}"
    )  # type: ignore[index]


# --- the pool ------------------------------------------------------------------------------------


@dataclass
class Run:
    """One process the soak started (a worker, a pool's parent) or adopted (a pool's orphan)."""

    slot: int
    role: str  # "worker", "pool", "orphan"
    pid: int
    log: str | None
    study: str
    started: float
    signals: list[str] = field(default_factory=list)
    code: int | None = None
    rss_settled: int | None = None  # bytes
    rss_last: int | None = None
    rss_last_at: float | None = None


@dataclass
class Slot:
    """A place in the pool that is kept filled: one worker, or a ``--workers 2`` pool."""

    index: int
    role: str
    url: str
    proc: subprocess.Popen[bytes] | None = None
    run: Run | None = None
    paused_until: float | None = None
    restart_study: str | None = None  # the study a failed process is started again on


class Soak:
    """The pool, its supervisor, the fault injector and the observers of one run."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        (work / "logs").mkdir(parents=True, exist_ok=True)
        self.t0 = time.monotonic()
        self.runs: list[Run] = []
        self.orphans: dict[int, Run] = {}
        self.faults: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self.rounds: list[str] = []
        self.budget = args.round_trials
        self.busy: set[str] = set()  # "pg", "proxy" while one is being restarted
        self.lock = threading.Lock()
        self.stop_observers = threading.Event()
        self.dashboard_polls = 0
        self.dashboard_errors: list[str] = []
        self.server_rss: dict[str, list[int]] = {"proxy": [], "dashboard": []}
        self.proxy: subprocess.Popen[bytes] | None = None
        self.proxy_logs: list[Path] = []
        self.dashboard: subprocess.Popen[bytes] | None = None

    def now(self) -> float:
        return time.monotonic() - self.t0

    def log(self, text: str) -> None:
        print(f"[{self.now():7.1f}s] {text}", flush=True)

    # set-up

    def set_up(self) -> None:
        """PostgreSQL, the database, the study file, the proxy and the dashboard."""
        bin_dir = pg_bin()
        if bin_dir is None:
            raise SystemExit("no PostgreSQL server binaries (pg_ctl) in /usr/lib/postgresql/*/bin")
        self.pg = Postgres(bin_dir)
        self.pg.start()
        self.db_url = self.pg.create_database("chaos_soak")
        self.db = f"{self.db_url}?{HEARTBEAT}"
        self.artifacts = self.work / "artifacts"
        self.study_file = self._write_study()
        if self.args.via != "direct":
            self.proxy_port = free_port()
            self._start_proxy()
        self._start_dashboard()

    def _write_study(self) -> Path:
        import yaml

        from lstm_tune.config import load_spec, spec_to_dict, with_data
        from lstm_tune.tasks import get_task

        spec = with_data(
            load_spec(ROOT / "studies" / "imdb_tiny.yaml"), source="csv", path=str(SHARED_DATA),
            train_limit=TRAIN_REVIEWS, test_limit=TEST_REVIEWS, cache_dir=str(self.work / "cache"),
        )  # fmt: skip
        doc = spec_to_dict(spec)
        doc["training"]["epochs"] = EPOCHS
        doc["search"]["n_trials"] = self.budget
        path = self.work / "chaos.yaml"
        path.write_text(yaml.safe_dump(doc))
        self.log("tokenizing the data once, so workers find it in the cache")
        get_task(spec.task).load(spec.data, spec.seed)
        return path

    def _start_proxy(self) -> None:
        log = self.work / "logs" / f"proxy-{len(self.proxy_logs)}.log"
        self.proxy_logs.append(log)
        self.proxy = start_logged(
            lstm_tune("storage-proxy", "--storage", self.db, "--port", str(self.proxy_port)), log
        )
        wait_for_line(self.proxy, log, "Listening...", 120)

    def _start_dashboard(self) -> None:
        log = self.work / "logs" / "dashboard.log"
        self.dashboard = start_logged(
            lstm_tune("dashboard", "--storage", self.db, "--port", "0",
                      "--artifact-dir", str(self.artifacts)), log,
        )  # fmt: skip
        line = wait_for_line(self.dashboard, log, "http://", 120)
        self.dashboard_url = next(w for w in line.split() if w.startswith("http://"))

    def slots(self) -> list[Slot]:
        """Slot 0 a ``--workers 2`` pool, then single workers: ``--workers`` processes train."""
        port = getattr(self, "proxy_port", 0)
        grpc = f"grpc://127.0.0.1:{port}?heartbeat_interval={HEARTBEAT_INTERVAL}&retry_timeout=60"
        via = self.args.via
        out = [Slot(0, "pool", grpc if via == "proxy" else self.db)]
        for i in range(1, self.args.workers - 1):
            proxied = via == "proxy" or (via == "both" and i % 2 == 1)
            out.append(Slot(i, "worker", grpc if proxied else self.db))
        return out

    # the pool

    def launch(self, slot: Slot) -> None:
        """Start ``slot``'s process: again on its own study after a failure, as compose's
        ``restart: on-failure`` or a Job's replacement pod runs the same command; else on the
        current round."""
        study = slot.restart_study or self.rounds[-1]
        slot.restart_study = None
        n = sum(r.slot == slot.index for r in self.runs)
        log = self.work / "logs" / f"slot{slot.index}-{n}.log"
        argv = lstm_tune(
            "search", str(self.study_file), "--storage", slot.url, "--study-name", study,
            "--n-trials", str(self.budget), "--artifact-dir", str(self.artifacts),
        )  # fmt: skip
        if slot.role == "pool":
            argv += ["--workers", "2"]
        slot.proc = start_logged(argv, log)
        slot.run = Run(slot.index, slot.role, slot.proc.pid, str(log), study, self.now())
        slot.paused_until = None
        self.runs.append(slot.run)

    def _query(self, sql: str, *params: Any) -> list[tuple[Any, ...]] | None:
        """Rows of one SQL query on the soak's database; None while the database is down."""
        import psycopg

        conninfo = (
            f"host=127.0.0.1 port={self.pg.port} user=postgres dbname=chaos_soak connect_timeout=3"
        )
        try:
            with psycopg.connect(conninfo) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.Error:
            return None

    def finished_of(self, study: str) -> int | None:
        """Finished trials of ``study`` (None while the database is down)."""
        rows = self._query(
            "SELECT count(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE s.study_name = %s AND t.state IN ('COMPLETE', 'PRUNED')",
            study,
        )
        return None if rows is None else int(rows[0][0])

    def pids_mid_trial(self) -> set[int]:
        """The process ids of the workers running a trial now (the trials' worker attribute)."""
        rows = self._query(
            "SELECT a.value_json FROM trial_user_attributes a JOIN trials t "
            "ON t.trial_id = a.trial_id WHERE t.state = 'RUNNING' AND a.key = %s",
            WORKER_ATTR,
        )
        return {int(json.loads(value).rsplit(":", 1)[1]) for (value,) in rows or []}

    def supervise(self, slots: list[Slot], draining: bool) -> bool:
        """Note exits, start the next round when this one is done, refill empty slots.
        Returns True once draining and every slot is empty with the last round done."""
        for slot in slots:
            if slot.proc is not None and slot.proc.poll() is not None:
                assert slot.run is not None
                slot.run.code = slot.proc.returncode
                # A worker killed after its round's other workers left may leave its trial
                # RUNNING: only a process that opens that study again fails it as stale (the
                # 30-minute direct soak at 48d132d showed it once), and an orchestrator's
                # restart of the failed command is that process.
                slot.restart_study = slot.run.study if slot.run.code != 0 else None
                slot.proc, slot.run = None, None
        self._reap_orphans()
        done = self.finished_of(self.rounds[-1])
        round_done = done is not None and done >= self.budget
        if round_done and not draining:
            self.rounds.append(f"round-{len(self.rounds)}")
            self.log(f"{self.rounds[-2]} met its budget; next: {self.rounds[-1]}")
            round_done = False
        for slot in slots:
            if slot.proc is None and (slot.restart_study or not (draining and round_done)):
                self.launch(slot)
        return draining and round_done and all(s.proc is None for s in slots) and not self.orphans

    def _reap_orphans(self) -> None:
        for pid, run in list(self.orphans.items()):
            try:
                reaped, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                # Still its dying parent's child for a moment; after that, not reparented to
                # this process (no subreaper): its exit code cannot be known.
                if self.now() - run.started > 60 or not Path(f"/proc/{pid}").exists():
                    del self.orphans[pid]
                continue
            if reaped:
                run.code = os.waitstatus_to_exitcode(status)
                del self.orphans[pid]

    # faults

    def inject(self, fault: Fault, slots: list[Slot]) -> bool:
        """Inject ``fault`` now; False (and nothing done) when it has no victim right now (no
        worker mid-trial, a pool without workers yet, a restart still under way)."""
        kind = fault.kind
        if kind.startswith("worker_"):
            # Only a worker that runs a trial: a fault that lands mid-trial is the one that
            # tests something, and a worker killed again and again while it starts (tens of
            # seconds on a busy machine) would never run one.
            mid_trial = self.pids_mid_trial()
            victims = [s for s in slots if s.role == "worker" and s.proc is not None
                       and s.paused_until is None and s.proc.pid in mid_trial]  # fmt: skip
            if not victims:
                return False
            slot = victims[int(fault.pick * len(victims))]
            assert slot.proc is not None and slot.run is not None
            sig = {"worker_sigkill": signal.SIGKILL, "worker_sigterm": signal.SIGTERM,
                   "worker_sigstop": signal.SIGSTOP}[kind]  # fmt: skip
            slot.proc.send_signal(sig)
            slot.run.signals.append(sig.name)
            if sig == signal.SIGSTOP:
                slot.paused_until = time.monotonic() + fault.length
            self.log(f"{sig.name} slot {slot.index} (pid {slot.proc.pid})")
        elif kind == "pool_parent_sigkill":
            import psutil

            pool = slots[0]
            children = []
            if pool.proc is not None:
                with contextlib.suppress(psutil.Error):
                    children = [c.pid for c in psutil.Process(pool.proc.pid).children()]
            if pool.proc is None or pool.run is None or not children:
                return False
            pool.proc.send_signal(signal.SIGKILL)
            pool.run.signals.append("SIGKILL")
            for pid in children:
                orphan = Run(0, "orphan", pid, None, pool.run.study, self.now(), ["SIGTERM"])
                self.orphans[pid] = orphan
                self.runs.append(orphan)
            self.log(
                f"SIGKILL pool parent (pid {pool.proc.pid}), {len(children)} workers orphaned"
            )
        elif kind in ("pg_restart", "proxy_restart"):
            what = "pg" if kind == "pg_restart" else "proxy"
            with self.lock:
                if what in self.busy:
                    return False
                self.busy.add(what)
            restart = self._restart_pg if what == "pg" else self._restart_proxy
            threading.Thread(target=restart, args=(fault.length,), daemon=True).start()
        self.faults[kind] += 1
        return True

    def _restart_pg(self, down: float) -> None:
        try:
            self.log(f"PostgreSQL stopped for {down:.1f}s")
            self.pg.stop("fast")
            time.sleep(down)
            self.pg.start()
            self.log("PostgreSQL up again")
        finally:
            self.busy.discard("pg")

    def _restart_proxy(self, down: float) -> None:
        try:
            assert self.proxy is not None
            self.proxy.kill()
            self.proxy.wait()
            self.log(f"proxy killed, back in {down:.1f}s")
            time.sleep(down)
            self._start_proxy()
            self.log("proxy up again")
        finally:
            self.busy.discard("proxy")

    def resume_paused(self, slots: list[Slot], everyone: bool = False) -> None:
        for slot in slots:
            if slot.paused_until is not None and (
                everyone or time.monotonic() >= slot.paused_until
            ):
                if slot.proc is not None:
                    slot.proc.send_signal(signal.SIGCONT)
                    self.log(f"SIGCONT slot {slot.index} (pid {slot.proc.pid})")
                slot.paused_until = None

    # observers

    def poll_dashboard(self) -> None:
        """Every few seconds: the studies list and the newest study's trials, via the API."""
        base = self.dashboard_url.removesuffix("dashboard/").rstrip("/") + "/api/"
        while not self.stop_observers.wait(DASHBOARD_POLL_S):
            try:
                with urllib.request.urlopen(base + "studies", timeout=30) as resp:
                    studies = json.load(resp)["study_summaries"]
                for study in studies[-1:]:
                    url = f"{base}studies/{study['study_id']}?after=0"
                    with urllib.request.urlopen(url, timeout=30) as resp:
                        json.load(resp)
            except Exception as exc:  # every kind of failure is what is counted
                self.dashboard_errors.append(
                    f"{self.now():.0f}s: {type(exc).__name__}: {exc}"[:300]
                )
            self.dashboard_polls += 1

    def sample_rss(self, slots: list[Slot]) -> None:
        """Every few seconds: each single worker's RSS, the servers'."""
        while not self.stop_observers.wait(RSS_SAMPLE_S):
            for slot in slots:
                run, proc = slot.run, slot.proc
                if run is None or proc is None or slot.role != "worker":
                    continue
                rss = rss_bytes(proc.pid)
                if not rss:
                    continue
                if run.rss_settled is None and self.now() - run.started >= RSS_SETTLED_S:
                    run.rss_settled = rss
                run.rss_last, run.rss_last_at = rss, self.now()
            for name, proc in (("proxy", self.proxy), ("dashboard", self.dashboard)):
                rss = rss_bytes(proc.pid) if proc is not None and proc.poll() is None else None
                if rss:
                    self.server_rss[name].append(rss)

    # the run

    def run(self) -> None:
        """Set up, run the pool under the fault schedule, drain, stop the servers' observers."""
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.set_up()
        slots = self.slots()
        schedule = fault_schedule(
            self.args.seed,
            self.args.duration,
            fault_kinds(self.args.via),
            tuple(self.args.fault_gap),
        )
        self.rounds.append("round-0")
        for slot in slots:
            self.launch(slot)
        self.log(f"pool of {self.args.workers} workers via {self.args.via} started")
        while not self.pids_mid_trial():  # the clock starts with the first trial
            self.supervise(slots, draining=False)
            time.sleep(1.0)
        self.warmup_seconds = round(self.now())
        self.t0 = time.monotonic()
        for run in self.runs:
            run.started -= self.warmup_seconds
        self.log(
            f"first trial running after {self.warmup_seconds}s; {len(schedule)} faults scheduled"
        )
        observers = [
            threading.Thread(target=self.poll_dashboard, daemon=True),
            threading.Thread(target=self.sample_rss, args=(slots,), daemon=True),
        ]
        for thread in observers:
            thread.start()
        pending = list(schedule)
        while self.now() < self.args.duration:
            while pending and pending[0].at <= self.now():
                fault = pending.pop(0)
                if not self.inject(fault, slots):
                    # Wait for a victim, up to the next fault's moment; then it is skipped.
                    later = replace(fault, at=self.now() + 1.0)
                    if later.at < (pending[0].at if pending else self.args.duration):
                        pending.insert(0, later)
                    else:
                        self.skipped[fault.kind] += 1
                    break
            self.resume_paused(slots)
            self.supervise(slots, draining=False)
            time.sleep(0.5)
        self.skipped.update(fault.kind for fault in pending)  # still waiting for a victim
        self.log("faults over; the last round finishes")
        while self.busy:
            time.sleep(0.2)
        deadline = time.monotonic() + self.args.drain_timeout
        self.drained = False
        while time.monotonic() < deadline:
            self.resume_paused(slots)
            if self.supervise(slots, draining=True):
                self.drained = True
                break
            time.sleep(0.5)
        self.drain_seconds = round(self.now() - self.args.duration)
        self.stop_observers.set()
        for thread in observers:
            thread.join(timeout=60)
        self.resume_paused(slots, everyone=True)
        for slot in slots:  # only if the drain timed out
            if slot.proc is not None:
                slot.proc.kill()
                slot.proc.wait()
                assert slot.run is not None
                slot.run.signals.append("SIGKILL")  # the drain check is what fails
                slot.run.code = slot.proc.returncode
        self.log(f"drained: {self.drained} ({self.drain_seconds}s)")

    def tear_down(self) -> None:
        for proc in (self.proxy, self.dashboard):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        if hasattr(self, "pg"):
            with contextlib.suppress(subprocess.CalledProcessError):
                self.pg.stop("immediate")
            with contextlib.suppress(OSError):
                shutil.copy(self.pg.log, self.work / "logs" / "postgres.log")
            shutil.rmtree(self.pg.where, ignore_errors=True)


def rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` (psutil if installed, else /proc), None if it is gone."""
    try:
        import psutil
    except ImportError:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        kb = next(
            (line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")), None
        )
        return int(kb) * 1024 if kb else None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return None


# --- the checks ----------------------------------------------------------------------------------


@dataclass
class Check:
    """One promise: what was measured, what it must be, and whether it holds."""

    name: str
    value: Any
    target: str
    ok: bool
    detail: list[str] = field(default_factory=list)


# A worker's line for a failed trial it did not re-queue because the budget was met when it
# decided (runtime.stop's and storages.rdb's wording).
NOT_REQUEUED_ON_BUDGET = re.compile(
    r"trial (\d+) (?:had no heartbeat for \d+s: )?failed; not re-queued, "
    r"the study's budget of \d+ finished trials is already met"
)


def said_not_requeued_on_budget(logs: list[Path]) -> set[int]:
    """Trial numbers the workers writing ``logs`` (all of one study) said they did not
    re-queue because the study's budget was met."""
    numbers: set[int] = set()
    for log in logs:
        if log.exists():
            text = log.read_text(errors="replace")
            numbers.update(int(m[1]) for m in NOT_REQUEUED_ON_BUDGET.finditer(text))
    return numbers


def round_report(
    storage: Any,
    store: Any,
    study: str,
    budget: int,
    workers: int,
    max_requeue: int,
    said_budget_met: set[int] | None = None,
) -> dict[str, Any]:
    """The facts of one round's study that the checks judge; ``said_budget_met``: trials a
    worker of the study said it did not re-queue because the budget was met."""
    import optuna
    from optuna.trial import TrialState

    study_id = storage.get_study_id_from_name(study)
    trials = storage.get_all_trials(study_id)
    finished_states = (TrialState.COMPLETE, TrialState.PRUNED)
    finished = [t for t in trials if t.state in finished_states]
    states = Counter(t.state.name for t in trials)
    numbers = Counter(t.number for t in trials)
    # A failed config is judged by its chain (the trial and its copies): re-run if one of
    # them finished; explained if its last trial says why (fail_reason), was not re-queued
    # because its params had lost their worker max_requeue times already, or failed after the
    # budget was met (no copy is queued then: lstm_tune.storages.requeue); lost otherwise.
    # The FAIL's time alone misses one case (the 30-minute direct soak at 3040c52): a trial
    # failed a moment before the budget's last trial finished, and its worker, deciding just
    # after, found the budget met and said so; that line (and a met budget) explains it.
    ends = sorted(t.datetime_complete for t in finished if t.datetime_complete is not None)
    budget_met_at = ends[budget - 1] if len(ends) >= budget else None
    # A chain is a trial and its re-queued copies, linked by the copies' ``failed_trial``
    # (Optuna's retry callback keeps the first failed trial's number), not by equal params: a
    # trial stopped before it sampled every param is copied with the params it had, and its
    # copy samples the rest (the 30-minute proxy soak counted such a re-run as lost).
    chains: dict[int, list[Any]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        chains.setdefault(trial.system_attrs.get("failed_trial", trial.number), []).append(trial)
    rerun, explained, lost = [], [], []
    for chain in chains.values():
        first, last = chain[0], chain[-1]
        if first.state != TrialState.FAIL and len(chain) == 1:
            continue
        if any(t.state in finished_states for t in chain):
            rerun.append(first.number)
        elif (
            "fail_reason" in last.user_attrs
            or len(last.system_attrs.get("retry_history", [])) >= max_requeue
            or (
                budget_met_at is not None
                and last.datetime_complete is not None
                and last.datetime_complete >= budget_met_at
            )
            or (budget_met_at is not None and last.number in (said_budget_met or set()))
        ):
            explained.append(first.number)
        elif last.state == TrialState.FAIL:
            lost.append(last.number)
    unreadable = []
    for trial in finished:
        metas = optuna.artifacts.get_all_artifact_meta(trial, storage=storage)
        problem = trial.user_attrs.get("artifact_error") or ("no artifact" if not metas else None)
        for meta in metas:
            try:
                with store.open_reader(meta.artifact_id) as reader:
                    if not reader.read():
                        problem = f"{meta.filename} is empty"
            except Exception as exc:  # any failure to read is what is checked
                problem = f"{meta.filename}: {type(exc).__name__}: {exc}"
        if problem:
            unreadable.append(f"{study} trial {trial.number}: {problem}")
    return {
        "study": study,
        "budget": budget,
        "finished": len(finished),
        "overshoot": len(finished) - budget,
        "states": dict(states),
        "failed": states.get("FAIL", 0),
        "rerun": rerun,
        "explained": explained,
        "lost": lost,
        "repeated_numbers": sorted(n for n, c in numbers.items() if c > 1),
        "unreadable_artifacts": unreadable,
    }


def tracebacks_in(logs: list[Path]) -> list[str]:
    """``file: line`` for each traceback in ``logs`` (the line after it names the error)."""
    found = []
    for log in logs:
        lines = log.read_text(errors="replace").splitlines()
        for i, line in enumerate(lines):
            if "Traceback (most recent call last)" in line:
                last = next(
                    (
                        lines[j]
                        for j in range(i + 1, len(lines))
                        if not lines[j].startswith((" ", "\t", "[w"))
                    ),
                    "",
                )
                found.append(f"{log.name}:{i + 1}: {last.strip()[:200]}")
    return found


def unexplained_exits(runs: list[Run]) -> list[str]:
    """Exits no fault explains: anything but 0, or a signal's code after that signal was sent."""
    allowed = {"SIGKILL": {-9}, "SIGTERM": {-15, 128 + 15}}
    out = []
    for run in runs:
        ok = {0}.union(*(allowed.get(s, set()) for s in run.signals))
        if run.code is not None and run.code not in ok:
            out.append(
                f"{run.role} pid {run.pid} ({run.log or 'no log'}): exit {run.code} "
                f"after {run.signals or 'no fault'}"
            )
        if run.role == "orphan" and run.code is None:
            out.append(
                f"orphaned pool worker pid {run.pid}: exit code unknown "
                "(still running or not ours)"
            )
    return out


def check_all(soak: Soak) -> tuple[list[Check], dict[str, Any]]:
    """Every promise, judged on the final state of every round's study and every log."""
    from lstm_tune.results.dashboard import open_artifact_store
    from lstm_tune.storages import open_storage

    storage = open_storage(soak.db)
    store = open_artifact_store(soak.artifacts, create=False)
    workers = soak.args.workers
    rounds = [
        round_report(storage, store, s, soak.budget, workers, 3, said_not_requeued_on_budget(
            [Path(r.log) for r in soak.runs if r.log and r.study == s]))
        for s in soak.rounds
    ]  # fmt: skip
    worker_logs = [Path(r.log) for r in soak.runs if r.log]
    server_logs = [*soak.proxy_logs, soak.work / "logs" / "dashboard.log"]
    overshoots = [r["overshoot"] for r in rounds]
    left = sum(r["states"].get("RUNNING", 0) + r["states"].get("WAITING", 0) for r in rounds)
    lost = [f"{r['study']} trial {n}" for r in rounds for n in r["lost"]]
    repeated = [f"{r['study']} number {n}" for r in rounds for n in r["repeated_numbers"]]
    unreadable = [u for r in rounds for u in r["unreadable_artifacts"]]
    traces, server_traces = tracebacks_in(worker_logs), tracebacks_in(server_logs)
    exits = unexplained_exits(soak.runs)
    finished = sum(r["finished"] for r in rounds)
    off_budget = [r for r in rounds if not 0 <= r["overshoot"] <= workers]
    not_done = [r for r in rounds if r["states"].get("RUNNING") or r["states"].get("WAITING")]
    polls, dash_errors = soak.dashboard_polls, soak.dashboard_errors
    checks = [
        Check("pool drained after the faults", f"{soak.drained} ({soak.drain_seconds}s)",
              "True", soak.drained),
        Check("finished vs budget (all rounds)", f"{finished} / {soak.budget * len(rounds)}",
              f"each round {soak.budget}..{soak.budget + workers}", not off_budget,
              [f"{r['study']}: {r['finished']} of {r['budget']}" for r in off_budget]),
        Check("RUNNING + WAITING left", left, "0", left == 0,
              [f"{r['study']}: {r['states']}" for r in not_done]),
        Check("FAILed configs lost (not re-run, not explained)", len(lost), "0", not lost, lost),
        Check("trial numbers twice", len(repeated), "0", not repeated, repeated),
        Check("finished trials with unreadable artifacts", len(unreadable), "0",
              not unreadable, unreadable),
        Check("worker tracebacks", len(traces), "0", not traces, traces),
        Check("proxy and dashboard tracebacks", len(server_traces), "0",
              not server_traces, server_traces),
        Check("worker exits no fault explains", len(exits), "0", not exits, exits),
        Check("dashboard API errors", f"{len(dash_errors)} of {polls} polls", "0",
              not dash_errors and polls > 0, dash_errors[:20]),
    ]  # fmt: skip
    facts = {
        "rounds": rounds,
        "trials_finished": finished,
        "budget": soak.budget * len(rounds),
        "failed": sum(r["failed"] for r in rounds),
        "failed_rerun": sum(len(r["rerun"]) for r in rounds),
        "failed_explained": sum(len(r["explained"]) for r in rounds),
        "lost": len(lost),
        "overshoot_max": max(overshoots),
        "faults": dict(soak.faults),
        "faults_skipped": dict(soak.skipped),
        "worker_processes": sum(r.role != "orphan" for r in soak.runs),
        "orphans": sum(r.role == "orphan" for r in soak.runs),
        "rss": rss_summary(soak),
    }
    return checks, facts


def rss_summary(soak: Soak) -> dict[str, Any]:
    """Single workers' RSS (MiB) 30 s after start and at their last sample; the servers'
    first and last samples."""
    mib = 2**20
    measured = [r for r in soak.runs if r.rss_settled and r.rss_last]
    out: dict[str, Any] = {"workers_measured": len(measured)}
    if measured:
        settled = [r.rss_settled or 0 for r in measured]
        last = [r.rss_last or 0 for r in measured]
        longest = max(measured, key=lambda r: (r.rss_last_at or 0) - r.started)
        out.update(
            workers_settled_median_mib=round(statistics.median(settled) / mib),
            workers_last_median_mib=round(statistics.median(last) / mib),
            workers_growth_max_mib=round(
                max(b - a for a, b in zip(settled, last, strict=True)) / mib
            ),
            longest_lived={
                "seconds": round((longest.rss_last_at or 0) - longest.started),
                "settled_mib": round((longest.rss_settled or 0) / mib),
                "last_mib": round((longest.rss_last or 0) / mib),
            },
        )
    for name, samples in soak.server_rss.items():
        if samples:
            out[f"{name}_first_mib"], out[f"{name}_last_mib"] = (
                round(samples[0] / mib),
                round(samples[-1] / mib),
            )
    return out


# --- output --------------------------------------------------------------------------------------


def table(checks: list[Check]) -> str:
    lines = ["| promise | value | target | ok |", "|---|---:|---:|---|"]
    lines += [
        f"| {c.name} | {c.value} | {c.target} | {'yes' if c.ok else '**NO**'} |" for c in checks
    ]
    return "\n".join(lines)


def markdown(
    args: argparse.Namespace, checks: list[Check], facts: dict[str, Any], machine: str
) -> str:
    """The run as a block for BENCHMARKS.md's ``chaos_soak`` section."""
    rss, f = facts["rss"], facts
    faults = ", ".join(f"{k} {v}" for k, v in sorted(facts["faults"].items()))
    return "\n".join([
        f"Run `--via {args.via}` (commit {args.commit}, {machine}, seed {args.seed}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M UTC}):",
        "",
        f"    {command(args)}",
        "",
        f"- faults injected: {faults} (skipped, no victim: {f['faults_skipped'] or 'none'})",
        f"- trials finished {facts['trials_finished']} vs budget {facts['budget']} "
        f"({len(f['rounds'])} rounds of {args.round_trials}; "
        f"largest overshoot {f['overshoot_max']})",
        f"- failed trials {f['failed']}; their configs: re-run {f['failed_rerun']}, "
        f"explained {f['failed_explained']} (dropped after max_requeue re-queues, or "
        f"fail_reason), lost {f['lost']}",
        f"- worker processes started {f['worker_processes']} "
        f"(+{f['orphans']} orphaned pool workers)",
        f"- RSS: workers {rss.get('workers_settled_median_mib')} MiB 30 s after start, "
        f"{rss.get('workers_last_median_mib')} MiB at their last sample (medians of "
        f"{rss.get('workers_measured')}; largest growth {rss.get('workers_growth_max_mib')} MiB; "
        f"longest-lived {rss.get('longest_lived')}); proxy {rss.get('proxy_first_mib')} -> "
        f"{rss.get('proxy_last_mib')} MiB; dashboard {rss.get('dashboard_first_mib')} -> "
        f"{rss.get('dashboard_last_mib')} MiB",
        "",
        table(checks),
    ])  # fmt: skip


def command(args: argparse.Namespace) -> str:
    """The command as run: ``nice`` only when this process runs niced (the report once said
    ``nice -n 10`` of every run, niced or not)."""
    niceness = os.nice(0)
    prefix = f"nice -n {niceness} " if niceness > 0 else ""
    return (
        f"{prefix}python benchmarks/chaos_soak.py --via {args.via} --workers {args.workers} "
        f"--duration {args.duration:g} --seed {args.seed} --round-trials {args.round_trials} "
        f"--fault-gap {args.fault_gap[0]:g} {args.fault_gap[1]:g}"
    )


def machine_name() -> str:
    """``lscpu``'s model name, and the cores."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.startswith("Model name")
        )
    except (OSError, subprocess.CalledProcessError, StopIteration):
        model = "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--via", choices=["direct", "proxy", "both"], default="direct")
    parser.add_argument(
        "--workers", type=int, default=8, help="worker processes (>= 3: a pool of 2 and singles)"
    )
    parser.add_argument("--duration", type=float, default=1800.0, help="seconds of faults")
    parser.add_argument("--seed", type=int, default=33)
    parser.add_argument(
        "--fault-gap",
        type=float,
        nargs=2,
        default=list(FAULT_GAP_S),
        metavar=("LOW", "HIGH"),
        help="seconds between two faults (default 4 9)",
    )
    parser.add_argument("--round-trials", type=int, help="trials per round (default 3 per worker)")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=600.0,
        help="seconds the last round may take once the faults are over",
    )
    parser.add_argument("--json", type=Path, help="write the results here as JSON")
    parser.add_argument(
        "--workdir", type=Path, help="logs, artifacts and the database (default: a new temp dir)"
    )
    args = parser.parse_args(argv)
    if args.workers < 3:
        parser.error("--workers: at least 3 (a --workers 2 pool and a single worker)")
    if args.round_trials is None:
        args.round_trials = 3 * args.workers
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the soak; print the table (and JSON); 1 if any promise is broken."""
    args = parse_args(argv)
    args.commit = git_revision()  # now: the workers import the checkout as it is now
    work = args.workdir or Path(tempfile.mkdtemp(prefix="chaos-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory (logs, artifacts): {work}", flush=True)
    soak = Soak(args, work)
    started = time.monotonic()
    try:
        soak.run()
        checks, facts = check_all(soak)
    finally:
        soak.tear_down()
    machine = machine_name()
    ok = all(c.ok for c in checks)
    print(markdown(args, checks, facts, machine))
    for check in checks:
        for line in check.detail[:10]:
            print(f"  {check.name}: {line}")
    if args.json:
        args.json.write_text(json.dumps({
            "command": command(args), "commit": args.commit, "machine": machine,
            "seed": args.seed, "via": args.via, "workers": args.workers, "duration": args.duration,
            "seconds": round(time.monotonic() - started), "ok": ok,
            "checks": [asdict(c) for c in checks], **facts,
            "processes": [asdict(r) for r in soak.runs],
        }, indent=2, default=str))  # fmt: skip
    print(
        "all promises kept" if ok else "BROKEN: " + "; ".join(c.name for c in checks if not c.ok)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
