"""Support code shared by tests in more than one folder (tests/unit, tests/assets, tests/e2e): plain functions and
constants, no fixtures (those are in tests/conftest.py).

- ingest_files: run the ingest assets on files in-process, with explicit resources (no global state)
- the LLM test client: Caption, caption_for, ask, make_llm (against tests/llm_server.py)
- multiple-choice evaluation: MCQ_MODEL, mcq_questions, user_text, answer_book, responder
- GroundMoRe-layout builders: write_export, write_boxes
- export checks: lake_table, manifest_ok, decoded_frames, sharegpt_convert
- bad_inbox: a folder of bad and unusual input files
- compaction_lake, detection_rows: a small lake of per-video tables (`fm compact`)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
from pathlib import Path

import numpy as np
import polars as pl
from dagster import DagsterInstance, materialize
from PIL import Image
from pydantic import BaseModel

from fm_assets.defs.ingest import ingest
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.registry import register_video
from fm_resources.video import VideoStore
from tests import media


def ingest_files(paths: list[Path], lake_root: Path, config: dict | None = None, instance=None):
    """Register and materialize `videos` + `raw_clips` for each file (the `ingest` step without its detections);
    returns (results, videos, raw_clips)."""
    lake = Lake(root=str(lake_root))
    store = VideoStore()
    instance = instance or DagsterInstance.ephemeral()
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": store,
                 "detector": DetectorResource()}
    results = {}
    for path in paths:
        reg = register_video(str(path), store, lake)
        if not instance.has_dynamic_partition("videos", reg.video_id):
            instance.add_dynamic_partitions("videos", [reg.video_id])
        run_config = {"ops": {"ingest": {"config": config}}} if config else None
        results[path.name] = (
            reg.video_id,
            materialize([ingest], selection=["videos", "raw_clips"], partition_key=reg.video_id, instance=instance,
                        resources=resources, run_config=run_config, raise_on_error=False),
        )
    videos = pl.concat([lake.read_parquet(k) for k in lake.list("videos")]) if lake.list("videos") else None
    clips = pl.concat([lake.read_parquet(k) for k in lake.list("raw_clips")]) if lake.list("raw_clips") else None
    return results, videos, clips


# -- the LLM test client (tests/llm_server.py is the server) ----------------------------------------------------------
class Caption(BaseModel):
    overview: str
    bullets: list[str]


def caption_for(body: dict) -> str:
    """The default reply: a valid Caption that echoes the prompt, so tests can tell replies apart."""
    user = next(m for m in reversed(body["messages"]) if m["role"] == "user")
    text = user["content"] if isinstance(user["content"], str) else user["content"][0]["text"]
    return json.dumps({"overview": f"re: {text}", "bullets": ["a", "b"]})


def scripted_model(body: dict) -> str:
    """The scripted model: a caption for caption prompts; for question prompts one question that agrees with the
    facts in the prompt and one that contradicts them (the pipeline must reject it)."""
    system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
    if isinstance(user, list):
        user = next(p["text"] for p in user if p["type"] == "text")
    facts = json.loads(user)
    if "motion captions" in system:
        names = " and ".join(o["ref"] for o in facts["objects"])
        return json.dumps({"overview": f"LLM: {names} move.", **dict.fromkeys(("motion_recognition", "temporal_order", "object_action", "location_motion", "repetition", "direction_speed_path", "spatial_relations"), "none")})
    o = facts["objects"][0]
    words = ["left", "right", "up", "down"]
    true = o["direction"] if o["direction"] in words else "left"
    other = {"left": "right", "right": "left", "up": "down", "down": "up"}[true]
    rest = [w for w in words if w not in (true, other)]
    q = f"In which direction does {o['ref']} move?"
    return json.dumps({"questions": [
        {"question": q, "options": [true, other, *rest], "answer": "A", "category": "motion_recognition"},
        {"question": q.replace("In which direction", "Which way"), "options": [other, true, *rest],
         "answer": "A", "category": "motion_recognition"},
    ]})


def ask(text: str = "describe the motion") -> list[dict]:
    return [{"role": "system", "content": "You write motion captions."}, {"role": "user", "content": text}]


def make_llm(server, **overrides) -> LLMResource:
    settings = {"model": "openai/test-model", "api_base": server.base_url, "backoff_s": 0.01, "max_retries": 2,
                "timeout_s": 5.0, **overrides}
    return LLMResource(**settings)


# -- multiple-choice evaluation (`fm eval mcq`) against the test server -----------------------------------------------
MCQ_MODEL = "openai/test-model"


def mcq_questions(wh, split="test") -> pl.DataFrame:
    """The kept multiple-choice questions of a split, straight from the lake (the test's own truth)."""
    where = "" if split == "all" else f"AND s.split = '{split}'"
    return wh.query("SELECT q.* FROM qa_pairs q JOIN splits s USING (video_id) "
                    f"WHERE q.kept AND NOT q.grounded {where} ORDER BY video_id, clip_id, qa_id")


def user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def _key_of(question: str, options: list[str]) -> str:
    return "\n".join([f"Question: {question}", *(f"{L}. {o}" for L, o in zip("ABCD", options))])


def answer_book(qs: pl.DataFrame) -> dict[str, dict]:
    """The prompt's question block -> the question's row (so a scripted model can answer any way we want)."""
    book = {}
    for q in qs.iter_rows(named=True):
        k = _key_of(q["question"], [q["option_a"], q["option_b"], q["option_c"], q["option_d"]])
        assert k not in book or book[k]["answer"] == q["answer"], "two questions with one text and two answers"
        book[k] = q
    return book


def responder(book: dict, rule):
    """A model that finds the question in the prompt and replies rule(question row)."""
    def reply(body: dict) -> str:
        text = user_text(body)
        (q,) = [q for k, q in book.items() if k in text]
        return rule(q)
    return reply


# -- GroundMoRe layouts (`fm eval grounded`) ------------------------------------------------------------------------
def write_boxes(d: Path, qa_id: str, frames: dict) -> None:
    """A boxes prediction file <d>/<qa_id>.json: {"frames": {frame: box or null}}."""
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{qa_id}.json").write_text(json.dumps({"frames": {str(k): v for k, v in frames.items()}}))


def write_export(root: Path, questions: dict, vid="clipA_0000_0005", n=30, extra: dict | None = None) -> None:
    """A groundmore export of one 16x12 clip of n frames: object 2 (a box) on every frame, object 1 elsewhere."""
    masks = root / "groundmore_videos" / vid / "masks"
    masks.mkdir(parents=True, exist_ok=True)
    (root / "groundmore_videos" / vid / "images").mkdir(exist_ok=True)
    for k in range(n):
        ids = np.zeros((12, 16), np.uint8)
        ids[1:4, 1:4] = 1
        ids[6:10, 8:14] = 2
        img = Image.fromarray(ids)
        img.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0] + [0] * 759)
        img.save(masks / f"frame_{k:06d}.png")
        (root / "groundmore_videos" / vid / "images" / f"frame_{k:06d}.jpg").write_bytes(b"")
    entry = {"questions": questions, "n_frames": n, "width": 16, "height": 12, "clip_id": "clipA",
             "video_id": "v", **(extra or {})}
    path = root / "groundmore_test.json"
    doc = json.loads(path.read_text()) if path.exists() else {"videos": {}}
    doc["videos"][vid] = entry
    path.write_text(json.dumps(doc))


# -- exports (`fm export`) ------------------------------------------------------------------------------------------
def lake_table(lake: Lake, name: str) -> pl.DataFrame:
    return pl.concat([lake.read_parquet(k) for k in lake.list(name)], how="diagonal_relaxed")


def manifest_ok(out: Path) -> dict:
    """Every file under OUT (but the manifest) is in the manifest with its size and sha256, and no other."""
    manifest = json.loads((out / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"}
    assert set(listed) == on_disk and manifest["n_files"] == len(on_disk)
    for path, f in listed.items():
        data = (out / path).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest(), path
    assert not list(out.rglob(".*.tmp"))  # no temp files left behind
    # the usual modes, as open() / mkdir() would give (0644 / 0755 with umask 022), never mkstemp's 0600: a training
    # job run by another user reads the export
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {str(p.relative_to(out)): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    want = {k: (0o777 if (out / k).is_dir() else 0o666) & ~umask for k in modes}
    assert modes == want
    return manifest


def decoded_frames(path: Path) -> list[float]:
    """The presentation times (s) of every frame PyAV decodes from the file."""
    import av

    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [float(f.pts * f.time_base) for f in c.decode(s)]


def sharegpt_convert(example: dict, attr: dict, dataset_dir: Path) -> dict:
    """What LLaMA-Factory's SharegptDatasetConverter does with one example (data/converter.py), plus the
    placeholder check of its mm_plugin (`_validate_messages`): roles in odd / even positions, an even number
    of messages, media paths resolved against media_dir (= dataset_dir by default). Raises on anything it
    would drop or reject."""
    cols, tags = attr["columns"], attr["tags"]
    messages = example[cols["messages"]]
    odd, even = (tags["user_tag"], "observation"), (tags["assistant_tag"], "function_call")
    for i, m in enumerate(messages):
        assert set(m) == {tags["role_tag"], tags["content_tag"]}, m
        assert m[tags["role_tag"]] in (odd, even)[i % 2], f"invalid role tag at {i}: {messages}"
        assert isinstance(m[tags["content_tag"]], str)
    assert messages and len(messages) % 2 == 0, f"invalid message count: {messages}"
    videos = example.get(cols["videos"]) or []
    n_tokens = sum(m[tags["content_tag"]].count("<video>") for m in messages)
    assert n_tokens == len(videos), "the number of videos does not match the number of <video> tokens"
    assert sum(m[tags["content_tag"]].count(t) for m in messages for t in ("<image>", "<audio>")) == 0
    paths = [dataset_dir / v for v in videos]
    assert all(p.is_file() for p in paths), paths
    return {"prompt": messages[:-1], "response": messages[-1:], "videos": paths}


# -- bad input -------------------------------------------------------------------------------------------------------
def bad_inbox(d: Path) -> tuple[dict[str, Path], list[float]]:
    """A folder of one good video and eight bad or unusual files (tests/media.py makers), by name, plus the
    presentation times of the variable-frame-rate one."""
    good = media.small_mp4(d / "good.mp4", n_frames=100)
    vfr, vfr_times = media.variable_frame_rate(d / "vfr.mp4", n_frames=120)
    return {
        "good": good,
        "zero": media.zero_byte(d / "zero.mp4"),
        "truncated": media.truncated_mp4(d / "truncated.mp4"),
        "text": media.text_as_mp4(d / "text.mp4"),
        "audio": media.audio_only(d / "audio.mp4"),
        "single": media.single_frame(d / "single.mp4"),
        "vfr": vfr,
        "rotated": media.rotated(d / "rotated.mp4", degrees=90, width=320, height=240, n_frames=75),
        "uhd": media.uhd_4k(d / "uhd.mp4"),
    }, vfr_times


# -- compaction (`fm compact`) ---------------------------------------------------------------------------------------
def detection_rows(vid: str, n: int, **extra) -> pl.DataFrame:
    return pl.DataFrame({"video_id": [vid] * n, "frame_idx": list(range(n)), "score": [0.5] * n, **extra})


def compaction_lake(root, n_videos=6) -> Lake:
    """n_videos per-video files of `detections` (video i has i + 1 rows: 21 for 6 videos) and of `qa_pairs`."""
    lake = Lake(root=str(root))
    for i in range(n_videos):
        lake.write_parquet(f"detections/v{i}.parquet", detection_rows(f"v{i}", i + 1))
        lake.write_parquet(f"qa_pairs/v{i}.parquet", pl.DataFrame({"video_id": [f"v{i}"], "question": [f"q{i}"]}))
    return lake


def near_colour(img: np.ndarray, x: float, y: float, colour, r: int = 2, tol: int = 40) -> bool:
    """Some pixel within r of (x, y) has (about) this colour."""
    x, y = int(round(x)), int(round(y))
    patch = img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(colour)).max(axis=1) <= tol).any())


def png_pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
