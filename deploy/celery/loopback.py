"""A Celery cluster on one machine, on 127.0.0.1 only: Postgres (initdb in a temporary folder), Redis, a moto S3
server, the Dagster daemon and Celery workers, each worker with its own empty scratch folder (its FM_HOME), so that
they share nothing but Postgres, Redis and S3, as separate machines would. Used by tests/e2e/test_celery_cluster.py
and bench/cluster.py; also a script:

    .venv/bin/python deploy/celery/loopback.py up        # start everything, print the environment, wait for Ctrl-C

Every process starts in its own session and is stopped (SIGTERM, then SIGKILL) by `Cluster.close`, also on error.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fm_resources.settings import environ

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_BIN = Path(os.environ.get("FM_PG_BIN", "/usr/lib/postgresql/15/bin"))
LAKE_BUCKET, INPUT_BUCKET, LOG_BUCKET = "fm-lake", "fm-inputs", "fm-logs"


class Unavailable(RuntimeError):
    """A server this cluster needs could not start (missing binary, no port...): the reason."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout_s: float = 30.0, log: Path | None = None) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise Unavailable(f"{what} exited with {proc.returncode} before listening on 127.0.0.1:{port}\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise Unavailable(f"{what} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def stop(proc: subprocess.Popen | None, sig: int = signal.SIGTERM, grace_s: float = 15.0) -> None:
    """Stop a process started here and everything in its session (it was started with start_new_session)."""
    if proc is None or proc.returncode is not None and _group_gone(proc.pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    deadline = time.time() + grace_s
    while time.time() < deadline and not _group_gone(proc.pid):
        proc.poll()
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


def _group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _as_postgres_user() -> list[str]:
    """Postgres refuses to run as root: run its binaries as the `postgres` user then (CI runs as root)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("runuser"):
        raise Unavailable("running as root and `runuser` is missing: cannot start Postgres as user postgres")
    return ["runuser", "-u", "postgres", "--"]


@dataclass
class Cluster:
    """The servers and processes started so far, their URLs and logs; close() stops them in reverse order."""

    base: Path
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    pg_url: str = ""
    redis_url: str = ""
    s3_url: str = ""
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    daemon: subprocess.Popen | None = None
    _pg_dir: Path | None = None

    # -- servers ---------------------------------------------------------------------------------------------------
    def start_postgres(self, fsync: bool = False) -> str:
        """initdb in a fresh temporary folder (owned by `postgres` when root), postgres on a free port of 127.0.0.1,
        a database `dagster`; returns its psycopg2 URL."""
        initdb, postgres = PG_BIN / "initdb", PG_BIN / "postgres"
        if not initdb.exists():
            raise Unavailable(f"Postgres server binaries not found in {PG_BIN} (set FM_PG_BIN)")
        pg_dir = Path(tempfile.mkdtemp(prefix="fm-pg-"))  # not under pytest's 0700 tmp: the postgres user reads it
        self._pg_dir = pg_dir
        as_pg = _as_postgres_user()
        if as_pg:
            shutil.chown(pg_dir, "postgres", "postgres")
        data = pg_dir / "data"
        log = self.base / "postgres.log"
        init = subprocess.run([*as_pg, str(initdb), "-D", str(data), "-U", "fm", "-A", "trust", "--no-sync",
                               "-E", "UTF8", "--locale", "C"], capture_output=True, text=True)
        if init.returncode:
            raise Unavailable(f"initdb failed: {init.stderr[-2000:]}")
        port = free_port()
        opts = ["-c", f"fsync={'on' if fsync else 'off'}", "-c", "max_connections=200",
                "-c", f"unix_socket_directories={pg_dir}", "-c", "listen_addresses=127.0.0.1"]
        with open(log, "w") as fh:
            proc = subprocess.Popen([*as_pg, str(postgres), "-D", str(data), "-p", str(port), *opts],
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(("postgres", proc))
        wait_port(port, proc, "postgres", log=log)
        url = f"postgresql+psycopg2://fm@127.0.0.1:{port}/postgres"
        import psycopg2

        for _ in range(50):  # the port opens a moment before it accepts logins
            try:
                conn = psycopg2.connect(host="127.0.0.1", port=port, user="fm", dbname="postgres")
                break
            except psycopg2.OperationalError:
                time.sleep(0.1)
        else:
            raise Unavailable(f"postgres on {port} refuses connections; see {log}")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        self.pg_url = url.rsplit("/", 1)[0] + "/dagster"
        return self.pg_url

    def start_redis(self) -> str:
        server = shutil.which("redis-server")
        if not server:
            raise Unavailable("redis-server is not installed (apt-get install redis-server)")
        port = free_port()
        log = self.base / "redis.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                     "--appendonly", "no", "--dir", str(self.base)],
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(("redis", proc))
        wait_port(port, proc, "redis-server", log=log)
        self.redis_url = f"redis://127.0.0.1:{port}/0"
        return self.redis_url

    def start_s3(self, url: str | None = None) -> str:
        """A moto S3 server on 127.0.0.1 (or the one at `url`), with the lake, input and log buckets."""
        if url is None:
            moto = BIN / "moto_server"
            if not moto.exists():
                raise Unavailable("moto_server is not installed (pip install 'moto[server]')")
            port = free_port()
            proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            self.procs.append(("moto", proc))
            wait_port(port, proc, "moto_server")
            url = f"http://127.0.0.1:{port}"
        self.s3_url = url
        s3 = self.s3_client()
        for bucket in (LAKE_BUCKET, INPUT_BUCKET, LOG_BUCKET):
            with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
                s3.create_bucket(Bucket=bucket)
        return url

    def s3_client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.s3_url, region_name="us-east-1", aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    # -- the Dagster side ------------------------------------------------------------------------------------------
    def write_instance(self, dagster_home: Path, **extra) -> Path:
        """The cluster's dagster.yaml: fm's settings (fm_resources.settings.instance_settings, with Postgres storage
        from FM_DAGSTER_PG_URL) plus compute logs on S3 (no machine keeps them) and local artifacts in each process's
        own scratch folder (FM_SCRATCH)."""
        import yaml

        with environ(self.env):
            from fm_resources.settings import HEADER, instance_settings

            cfg = instance_settings()
        cfg["compute_logs"] = {"module": "dagster_aws.s3.compute_log_manager", "class": "S3ComputeLogManager",
                               "config": {"bucket": LOG_BUCKET, "prefix": "compute-logs",
                                          "endpoint_url": self.s3_url, "skip_empty_files": True}}
        cfg["local_artifact_storage"] = {"module": "dagster._core.storage.root", "class": "LocalArtifactStorage",
                                         "config": {"base_dir": {"env": "FM_SCRATCH"}}}
        cfg.update(extra)
        dagster_home.mkdir(parents=True, exist_ok=True)
        (dagster_home / "dagster.yaml").write_text(HEADER + yaml.safe_dump(cfg, sort_keys=False))
        return dagster_home

    def base_env(self, scratch: Path, **extra: str) -> dict[str, str]:
        """The environment of a process of this cluster with its own scratch folder (FM_HOME, FM_SCRATCH)."""
        scratch.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_", "AWS_"))}
        env.update(self.env)
        env.update(FM_HOME=str(scratch), FM_SCRATCH=str(scratch / "artifacts"), PYTHONUNBUFFERED="1",
                   LITELLM_LOCAL_MODEL_COST_MAP="True")
        env.update(extra)
        return env

    def configure(self, dagster_home: Path, **extra: str) -> dict[str, str]:
        """The shared settings every process of the cluster gets (each adds its own scratch folder)."""
        self.env = {"FM_DAGSTER_PG_URL": self.pg_url, "FM_EXECUTOR": "celery", "FM_CELERY_BROKER": self.redis_url,
                    "FM_LAKE": f"s3://{LAKE_BUCKET}/lake", "FM_INPUTS": f"s3://{INPUT_BUCKET}/inbox",
                    "AWS_ENDPOINT_URL": self.s3_url, "AWS_ACCESS_KEY_ID": "testing",
                    "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
                    "DAGSTER_HOME": str(dagster_home), **extra}
        return self.env

    def start_daemon(self, scratch: Path, **extra: str) -> subprocess.Popen:
        log = self.base / "daemon.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
                                    cwd=ROOT, env=self.base_env(scratch, **extra), stdout=fh,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(("daemon", proc))
        self.daemon = proc
        return proc

    def start_worker(self, name: str, queues: list[str], scratch: Path, concurrency: int = 1,
                     wait_s: float = 90.0) -> subprocess.Popen:
        """A Celery worker `name@loopback` on `queues`, `concurrency` tasks at a time, its own empty scratch folder;
        returns once it answers a ping and its pool processes have imported the code location."""
        log = self.base / f"worker-{name}.log"
        cmd = [str(BIN / "celery"), "-A", "fm_assets.celery_app", "worker", "-Q", ",".join(queues),
               "-n", f"{name}@loopback", "-c", str(concurrency), "--prefetch-multiplier=1", "-l", "INFO",
               "--without-gossip", "--without-mingle", "--without-heartbeat"]
        env = self.base_env(scratch)
        with open(log, "a") as fh:
            proc = subprocess.Popen(cmd, cwd=scratch, env=env,
                                    stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((f"worker {name}", proc))
        self.workers[name] = proc
        self.wait_worker(f"{name}@loopback", proc, log, wait_s, concurrency)
        return proc

    def wait_worker(self, hostname: str, proc: subprocess.Popen, log: Path, wait_s: float, processes: int) -> None:
        from celery import Celery

        from fm_assets.celery_app import READY

        app = Celery(broker=self.redis_url)
        deadline = time.time() + wait_s
        try:
            while time.time() < deadline:
                if proc.poll() is not None:
                    raise Unavailable(f"worker {hostname} exited with {proc.returncode}:\n"
                                      f"{log.read_text(errors='replace')[-3000:]}")
                pong = hostname in (app.control.ping(destination=[hostname], timeout=1.0) or [{}])[0]
                if pong and log.read_text(errors="replace").count(READY) >= processes:
                    return
                time.sleep(0.5)
        finally:
            app.close()
        raise Unavailable(f"worker {hostname} did not answer within {wait_s:.0f} s; see {log}")

    def kill_worker(self, name: str) -> None:
        """kill -9 the worker and its pool processes (a machine that dies)."""
        proc = self.workers.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_worker(self, name: str) -> None:
        stop(self.workers.pop(name))

    def close(self) -> None:
        for _name, proc in reversed(self.procs):
            stop(proc, signal.SIGINT if _name == "postgres" else signal.SIGTERM)
        self.procs.clear()
        if self._pg_dir is not None:
            shutil.rmtree(self._pg_dir, ignore_errors=True)


# -- videos, backfills -------------------------------------------------------------------------------------------------
def render_videos(out: Path, n: int, seconds: float = 3.0, width: int = 192, height: int = 144,
                  fps: float = 10.0) -> list[Path]:
    """n distinct small synthetic scenes (fm_assets.synthetic): one box crossing the frame, left to right or right to
    left, background texture seeded by the index (so every file, and its video id, differs)."""
    from fm_assets.synthetic import COLORS, Keyframe, ObjectSpec, SceneSpec, render_scene

    colours = sorted(COLORS)
    paths = []
    for i in range(n):
        xs = (width * 0.25, width * 0.75) if i % 2 == 0 else (width * 0.75, width * 0.25)
        obj = ObjectSpec(1, "box", colours[i % len(colours)], "box", width * 0.2, height * 0.25,
                         (Keyframe(0.1 * seconds, xs[0], height * 0.5), Keyframe(0.9 * seconds, xs[1], height * 0.5)))
        spec = SceneSpec(name=f"clip{i:03d}", width=width, height=height, fps=fps, duration_s=seconds, objects=(obj,))
        paths.append(render_scene(spec, out, seed=i).mp4)
    return paths


PER_VIDEO_TABLES = ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs")
PER_VIDEO_ASSETS = ("videos", "raw_clips", "detections", "tracks", "trajectories", "captions", "qa_pairs")


def launch_backfill(instance, video_ids: list[str], tags: dict[str, str] | None = None) -> str:
    """One asset backfill of every per-video asset for these video partitions (what the nightly automation or the
    UI's "Materialize" emits); the daemon runs it in batches of FM_BACKFILL_BATCH videos per run. Its id."""
    from dagster import AssetKey
    from dagster._core.execution.backfill import PartitionBackfill
    from dagster._core.utils import make_new_backfill_id

    from fm_assets.definitions import defs

    backfill = PartitionBackfill.from_asset_partitions(
        backfill_id=make_new_backfill_id(), asset_graph=defs.resolve_asset_graph(), partition_names=video_ids,
        asset_selection=[AssetKey(k) for k in PER_VIDEO_ASSETS], backfill_timestamp=time.time(), tags=tags or {},
        dynamic_partitions_store=instance, all_partitions=False, title=None, description=None, run_config=None)
    instance.add_backfill(backfill)
    return backfill.backfill_id


def backfill_runs(instance, backfill_id: str) -> list:
    """The runs of a backfill, retries included (a retry carries the backfill tag too), oldest first."""
    from dagster import RunsFilter

    runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))
    return sorted(runs, key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)


def wait_backfill(instance, backfill_id: str, video_ids: list[str], timeout_s: float,
                  daemon: subprocess.Popen | None = None, poll_s: float = 1.0, until_runs_done: bool = False):
    """Wait for the backfill to end; with until_runs_done, also return as soon as its runs have all ended and every
    per-video asset of every video has a materialization since the backfill began (the daemon marks the backfill
    done on its next pass, up to 30 s later). Returns the backfill."""
    from dagster._core.execution.backfill import BulkActionStatus

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if daemon is not None and daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited with {daemon.returncode}")
        bf = instance.get_backfill(backfill_id)
        if bf.status != BulkActionStatus.REQUESTED:
            return bf
        if until_runs_done:
            runs = backfill_runs(instance, backfill_id)
            if runs and all(r.is_finished for r in runs) and not missing(instance, video_ids, bf.backfill_timestamp):
                return bf
        time.sleep(poll_s)
    raise TimeoutError(f"backfill {backfill_id} not done after {timeout_s:.0f} s")


def missing(instance, video_ids: list[str], since: float) -> dict[str, set[str]]:
    """{asset: the videos without a materialization of it since `since`} (empty when all are there)."""
    from dagster import AssetKey

    out = {}
    for asset in PER_VIDEO_ASSETS:
        records = instance.fetch_materializations(AssetKey(asset), limit=10_000).records
        done = {r.partition_key for r in records if r.timestamp >= since}
        if set(video_ids) - done:
            out[asset] = set(video_ids) - done
    return out


@contextlib.contextmanager
def cluster(base: Path, s3_url: str | None = None):
    """Postgres, Redis and S3 started, the shared settings configured (no daemon or worker yet); closed on exit."""
    c = Cluster(base=Path(base))
    c.base.mkdir(parents=True, exist_ok=True)
    try:
        c.start_postgres()
        c.start_redis()
        c.start_s3(s3_url)
        c.configure(c.base / "dagster")
        c.write_instance(c.base / "dagster")
        yield c
    finally:
        c.close()


def main(argv: list[str]) -> int:
    if argv[:1] != ["up"]:
        print(__doc__)
        return 2
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # Ctrl-C or kill: stop everything (a shell's background job starts with SIGINT ignored, so set both)
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    base = Path(tempfile.mkdtemp(prefix="fm-loopback-"))
    with cluster(base) as c:
        c.start_daemon(base / "daemon")
        c.start_worker("gpu", ["gpu"], base / "worker-gpu")
        c.start_worker("cpu", ["dagster"], base / "worker-cpu")
        print("cluster up; logs in", base)
        for k, v in sorted(c.env.items()):
            print(f"export {k}={v}")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
