"""Shared fixtures, for tests/unit, tests/assets and tests/e2e. Tests that need the real footage in ../shared/data
skip with a reason when it is absent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SHARED_VIDEOS = SHARED_DATA / "videos"
FM = str(Path(sys.executable).with_name("fm"))

needs_shared = pytest.mark.skipif(
    not (SHARED_VIDEOS / "bikes.mp4").exists(),
    reason=f"real footage not found at {SHARED_DATA} (the project's ../shared/data); these tests need it",
)


def shared_video(name: str) -> Path:
    return SHARED_VIDEOS / name


@pytest.fixture
def fm_home(tmp_path, monkeypatch) -> Path:
    """An isolated FM_HOME (lake, Dagster instance, caches) for one test."""
    home = tmp_path / "fm_home"
    home.mkdir()
    monkeypatch.setenv("FM_HOME", str(home))
    monkeypatch.delenv("FM_LAKE", raising=False)
    monkeypatch.delenv("FM_INPUTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    return home


def run_fm(*args: str, home: Path, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real `fm` console script in a subprocess against FM_HOME=home."""
    full_env = {**os.environ, "FM_HOME": str(home), **(env or {})}
    full_env.pop("DAGSTER_HOME", None)
    return subprocess.run([FM, *args], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=ROOT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto in server mode) on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        raise RuntimeError("moto_server did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def in_ci() -> bool:
    """CI=true: a test whose server or tool cannot start fails instead of skipping."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def loopback():
    """deploy/celery/loopback.py (servers on 127.0.0.1 for the cluster tests), imported from its path."""
    import importlib.util

    if "fm_loopback" not in sys.modules:
        spec = importlib.util.spec_from_file_location("fm_loopback", ROOT / "deploy" / "celery" / "loopback.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["fm_loopback"] = module
        spec.loader.exec_module(module)
    return sys.modules["fm_loopback"]


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """A real Postgres 15 on 127.0.0.1 (initdb in a temporary folder): {hostname, port, username, db_name, url}
    with url in the psycopg2 scheme. Skips with the reason when it cannot start, fails under CI=true."""
    lb = loopback()
    cluster = lb.Cluster(base=tmp_path_factory.mktemp("postgres"))
    try:
        url = cluster.start_postgres()
    except lb.Unavailable as exc:
        cluster.close()
        if in_ci():
            pytest.fail(f"Postgres could not start under CI: {exc}")
        pytest.skip(f"Postgres could not start: {exc}")
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    yield {"hostname": "127.0.0.1", "port": port, "username": "fm", "db_name": "dagster", "url": url}
    cluster.close()


@pytest.fixture
def s3_env(s3_server, monkeypatch):
    """Point boto3 (through dagster-aws) at the local S3 server with dummy credentials."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    import boto3

    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    return client


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def local_only(monkeypatch):
    """Refuse (and record) any connection or name lookup for a host other than 127.0.0.1; fail the test if one was
    attempted, even when the caller swallowed the error. Yields the list of refused hosts."""
    blocked: list[object] = []
    real_connect, real_create, real_getaddrinfo = socket.socket.connect, socket.create_connection, socket.getaddrinfo

    def check(host: object) -> None:
        if host not in LOCAL_HOSTS:
            blocked.append(host)
            raise ConnectionRefusedError(f"test guard: connection to {host!r} refused (only 127.0.0.1 allowed)")

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            check(address[0])
        return real_connect(self, address)

    def create_connection(address, *args, **kwargs):
        check(address[0])
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host, *args, **kwargs):
        check(host.decode() if isinstance(host, bytes) else host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield blocked
    assert not blocked, f"attempted connections to non-local hosts: {blocked}"


MCQ_SCENES = {"left_right": "train", "back_and_forth": "test", "ordered_pair": "test"}


@pytest.fixture(scope="session")
def mcq_lake_dir(tmp_path_factory) -> Path:
    """A lake of three synthetic scenes materialized through qa_pairs (template captions, rule questions) and a
    splits table with one video in train and two in test (MCQ_SCENES). Read-only: tests work on a copy."""
    from dagster import DagsterInstance, materialize

    from fm_assets.defs.ingest import ingest
    from fm_assets.defs.language import captions, qa_pairs
    from fm_assets.defs.motion import trajectories
    from fm_assets.defs.perception import tracks
    from fm_assets.labels.schemas import SPLITS, frame
    from fm_assets.synthetic import render_scene, scene_by_name
    from fm_resources.detection.resource import DetectorResource
    from fm_resources.lake import Lake, LakeIOManager
    from fm_resources.llm import LLMResource
    from fm_resources.registry import register_video
    from fm_resources.trackers import TrackerResource
    from fm_resources.video import VideoStore

    scenes = tmp_path_factory.mktemp("mcq_scenes")
    root = tmp_path_factory.mktemp("mcq_lake")
    lake = Lake(root=str(root))
    instance = DagsterInstance.ephemeral()
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                 "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource()}
    rows = []
    for name, split in MCQ_SCENES.items():
        vid = register_video(str(render_scene(scene_by_name(name), scenes).mp4), VideoStore(), lake).video_id
        instance.add_dynamic_partitions("videos", [vid])
        res = materialize([ingest, tracks, trajectories, captions, qa_pairs], partition_key=vid,
                          instance=instance, resources=resources)
        assert res.success
        rows.append({"video_id": vid, "split": split, "group_key": vid[-8:], "status": "ok"})
    lake.write_parquet("splits/all.parquet", frame(rows, SPLITS))
    return root


@pytest.fixture(scope="session")
def bad_files(tmp_path_factory) -> tuple[dict[str, Path], list[float]]:
    """tests.helpers.bad_inbox in one folder: {name: path} of a good video and eight bad or unusual files, and
    the presentation times of the variable-frame-rate one. Read-only."""
    from tests.helpers import bad_inbox

    return bad_inbox(tmp_path_factory.mktemp("inbox"))


@pytest.fixture
def llm_env(monkeypatch):
    """The test LLM's key (FM_LLM_API_KEY) and no base URL or provider key from the environment running the tests."""
    monkeypatch.setenv("FM_LLM_API_KEY", "test-key")
    monkeypatch.delenv("FM_LLM_API_BASE", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def no_backoff(monkeypatch):
    """LLM retries without waiting between attempts."""
    import fm_resources.llm as llm_module

    monkeypatch.setattr(llm_module, "_sleep", lambda s: None)


@pytest.fixture
def llm_server():
    """The OpenAI-compatible test server on 127.0.0.1, answering every request with a valid caption."""
    from tests.helpers import caption_for
    from tests.llm_server import start_server

    with start_server(caption_for) as server:
        yield server
