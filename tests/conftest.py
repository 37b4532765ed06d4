"""Shared fixtures. Tests that need the real footage in ../shared/data skip with a reason when it is absent."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

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
