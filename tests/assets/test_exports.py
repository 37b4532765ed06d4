"""`fm export llamafactory | fm-json | groundmore` on a lake built by materializing the real graph on synthetic
scenes (template writer, motion detector: offline, no weights), with a video whose source disappeared after
labeling; plus `cut_clip` on VFR / rotated video. The `fm` console script end to end: tests/e2e/test_exports.py."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import av
import numpy as np
import polars as pl
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from fm_assets import export as exports
from fm_assets.defs.ingest import ingest
from fm_assets.defs.language import captions, qa_pairs
from fm_assets.defs.motion import trajectories
from fm_assets.defs.perception import tracks
from fm_assets.evaluation.grounded import evaluate as evaluate_grounded
from fm_assets.evaluation.grounded import export_ground_truth
from fm_assets.labels.motion_facts import trajectory_json
from fm_assets.labels.qa import CATEGORIES
from fm_assets.labels.schemas import SPLITS, frame
from fm_assets.synthetic import render_scene, scene_by_name
from fm_resources.detection.resource import DetectorResource
from fm_resources.lake import Lake, LakeIOManager
from fm_resources.llm import LLMResource
from fm_resources.registry import register_video
from fm_resources.trackers import TrackerResource
from fm_resources.video import VideoStore, cut_clip, cut_clips
from tests import media
from tests.helpers import decoded_frames, lake_table, manifest_ok, sharegpt_convert

try:  # the splits asset's pure function, when that module is there
    from fm_assets.labels.splits import assign_splits, bucket, group_key
except ImportError:  # pragma: no cover
    assign_splits = None

ASSETS = [ingest, tracks, trajectories, captions, qa_pairs]
SCENES = ("left_right", "late_entry")  # kept; "ordered_pair" is labeled, then its source file is deleted
GONE = "ordered_pair"


def _splits(video_ids: list[str], train: str, val: str) -> pl.DataFrame:
    """Splits from the splits asset's own function, with ratios chosen so that video `train` is in train and
    `val` in val (a hash decides, so the ratios are set between the two videos' buckets; the others fall
    where they fall)."""
    if assign_splits is None:  # pragma: no cover
        rows = [{"video_id": v, "split": "val" if v == val else "train"} for v in video_ids]
        return frame(rows, SPLITS)
    b = {v: bucket(group_key(v)) for v in video_ids}
    lo, hi = b[train], b[val]
    assert lo < hi, "pick other scenes: their hash buckets are the other way round"
    train = (lo + hi) / 2
    return assign_splits(pl.DataFrame({"video_id": video_ids, "status": ["ok"] * len(video_ids)}),
                         (train, 1 - train, 0.0))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The whole graph materialized in-process on three synthetic scenes; the third's source is then deleted."""
    root = tmp_path_factory.mktemp("export-lake")
    lake = Lake(root=str(root / "lake"))
    instance = DagsterInstance.ephemeral()
    resources = {"lake": lake, "io_manager": LakeIOManager(lake=lake), "video_store": VideoStore(),
                 "detector": DetectorResource(), "tracker": TrackerResource(), "llm": LLMResource()}
    ids = {}
    for name in (*SCENES, GONE):
        mp4 = render_scene(scene_by_name(name), root / ("gone" if name == GONE else "videos")).mp4
        vid = register_video(str(mp4), VideoStore(), lake).video_id
        instance.add_dynamic_partitions("videos", [vid])
        assert materialize(ASSETS, partition_key=vid, instance=instance, resources=resources).success
        ids[name] = vid
    shutil.rmtree(root / "gone")  # the source of one labeled video disappears
    t = {name: lake_table(lake, name) for name in ("videos", "raw_clips", "tracks", "trajectories", "captions",
                                                      "qa_pairs", "detections")}
    splits = _splits(list(ids.values()), train=ids["left_right"], val=ids["late_entry"])
    split_of = dict(splits.select("video_id", "split").iter_rows())
    assert split_of[ids["left_right"]] == "train" and split_of[ids["late_entry"]] == "val"
    # one rejected LLM question (kept = false): it must never be exported
    q = t["qa_pairs"]
    mcq = q.filter(~pl.col("grounded") & (pl.col("video_id") == ids["left_right"])).head(1)
    rejected = mcq.with_columns(qa_id=pl.lit("rejected-0000"), question=pl.lit("REJECTED: does it fly?"),
                                kept=pl.lit(False), source=pl.lit("llm"), reject_reason=pl.lit("direction"))
    t["qa_pairs"] = pl.concat([q, rejected])
    return {"root": root, "lake": lake, "ids": ids, "t": t, "splits": splits,
            "source": exports.lake_sources(lake, VideoStore())}


def _skipped_gone(manifest: dict, built) -> None:
    gone = [s for s in manifest["skipped"] if s["video_id"] == built["ids"][GONE]]
    assert gone and all("source video not found" in s["reason"] for s in gone)
    assert not [s for s in manifest["skipped"] if s["video_id"] != built["ids"][GONE]]


# --------------------------------------------------------------------------------------------------


def test_cut_clip_keeps_exact_frames_times_and_orientation(tmp_path):
    src, times = media.variable_frame_rate(tmp_path / "vfr.mp4", n_frames=30)
    a, b = times[5], times[20]
    cut = cut_clip(src, a, b)
    assert cut.times == pytest.approx(times[5:20]) and cut.first_idx == 5 and cut.n_frames == 15
    (tmp_path / "cut.mp4").write_bytes(cut.data)
    out = decoded_frames(tmp_path / "cut.mp4")
    assert out == pytest.approx([t - a for t in times[5:20]], abs=1e-6)  # variable frame rate survives
    with av.open(str(tmp_path / "cut.mp4")) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    rot = media.rotated(tmp_path / "rot.mp4", degrees=90, width=320, height=240, n_frames=10)
    cut = cut_clip(rot, 0.0, 1.0)
    assert (cut.width, cut.height, cut.n_frames) == (240, 320, 10)  # written upright
    (tmp_path / "rot_cut.mp4").write_bytes(cut.data)
    with av.open(str(tmp_path / "rot_cut.mp4")) as c:
        f = next(c.decode(video=0))
        assert (f.width, f.height) == (240, 320) and not (f.rotation or 0)
    # several clips in one pass, overlapping and empty
    cuts = cut_clips(src, [(0.0, times[3]), (times[2], times[6]), (99.0, 100.0)])
    assert [c.n_frames for c in cuts] == [3, 4, 0] and cuts[2].data == b""


def test_exports_need_the_splits_table(built, tmp_path):
    t, src = built["t"], built["source"]
    calls = [
        lambda out: exports.export_llamafactory(t["qa_pairs"], t["raw_clips"], t["tracks"], None, src, out),
        lambda out: exports.export_fm_json(t["qa_pairs"], t["raw_clips"], t["trajectories"], t["captions"], None, src, out),
        lambda out: exports.export_groundmore(t["qa_pairs"], t["raw_clips"], t["tracks"], t["detections"], None, src, out),
    ]
    for k, call in enumerate(calls):
        with pytest.raises(exports.ExportError, match=r"no splits.*fm run"):
            call(tmp_path / str(k))
        assert not (tmp_path / str(k)).exists()  # nothing written, no invented splits


def test_llamafactory(built, tmp_path):
    t, ids = built["t"], built["ids"]
    out = tmp_path / "lf"
    exports.export_llamafactory(t["qa_pairs"], t["raw_clips"], t["tracks"], built["splits"], built["source"], out)
    manifest = manifest_ok(out)
    _skipped_gone(manifest, built)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"fm_motion_train", "fm_motion_val", "fm_grounded_train", "fm_grounded_val"}
    kept = t["qa_pairs"].filter(pl.col("kept") & (pl.col("video_id") != ids[GONE]))
    by_id = {r["qa_id"]: r for r in kept.iter_rows(named=True)}
    clips = {c["clip_id"]: c for c in t["raw_clips"].iter_rows(named=True)}
    split_of = dict(built["splits"].select("video_id", "split").iter_rows())
    seen, frames_checked = set(), {}
    for name, attr in info.items():
        assert attr["formatting"] == "sharegpt" and attr["columns"] == {"messages": "messages", "videos": "videos"}
        assert attr["tags"] == {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                                "assistant_tag": "assistant"}
        records = json.loads((out / attr["file_name"]).read_text())
        assert records and manifest["counts"]["records"][name] == len(records)
        for rec in records:
            conv = sharegpt_convert(rec, attr, out)
            q = by_id[rec["qa_id"]]
            seen.add(rec["qa_id"])
            assert name.endswith(split_of[q["video_id"]])
            assert rec["videos"] == [f"videos/{q['clip_id']}.mp4"]
            user, answer = conv["prompt"][0]["content"], conv["response"][0]["content"]
            assert user.startswith("<video>" + q["question"] + "\n")
            if name.startswith("fm_motion"):
                assert not q["grounded"] and answer == q["answer"] and rec["category"] in CATEGORIES
                assert user.endswith("\nAnswer with the option's letter.")
                assert [f"{L}. {q['option_' + L.lower()]}" for L in "ABCD"] == user.split("\n")[1:5]
            else:
                assert q["grounded"]
                ans = json.loads(answer)
                start = clips[q["clip_id"]]["start_s"]
                assert ans["object"] == q["answer_text"]
                assert ans["start_s"] == pytest.approx(q["action_start_s"] - start, abs=0.01)
                assert ans["end_s"] == pytest.approx(q["action_end_s"] - start, abs=0.01)
                assert ans["boxes"] and all(ans["start_s"] - 0.01 <= b["t"] <= ans["end_s"] + 0.01 for b in ans["boxes"])
                assert all(0 <= v <= 1 for b in ans["boxes"] for v in b["bbox"])
            if q["clip_id"] not in frames_checked:  # the clip decodes to exactly the clip's frames
                frames_checked[q["clip_id"]] = decoded_frames(conv["videos"][0])
                n = clips[q["clip_id"]]["n_frames"]
                assert len(frames_checked[q["clip_id"]]) == n
                with av.open(str(conv["videos"][0])) as c:  # what LLaMA-Factory's video sampler reads
                    s = c.streams.video[0]
                    assert s.frames == n and float(s.duration * s.time_base) == pytest.approx(n / 25, abs=0.05)
    assert seen == set(by_id)  # every kept question of the readable videos, and no rejected one
    assert manifest["counts"]["rejected_not_exported"] == 1
    assert "REJECTED" not in "".join(p.read_text() for p in out.glob("*.json"))
    # a re-export writes the same bytes
    again = exports.export_llamafactory(t["qa_pairs"], t["raw_clips"], t["tracks"], built["splits"], built["source"],
                                        tmp_path / "lf2")
    assert {f["path"]: f["sha256"] for f in again["files"]} == {f["path"]: f["sha256"] for f in manifest["files"]}


def test_fm_json(built, tmp_path):
    t, _ids = built["t"], built["ids"]
    out = tmp_path / "fmjson"
    exports.export_fm_json(t["qa_pairs"], t["raw_clips"], t["trajectories"], t["captions"], built["splits"],
                           built["source"], out)
    manifest = manifest_ok(out)
    _skipped_gone(manifest, built)
    clips = {c["clip_id"]: c for c in t["raw_clips"].filter(pl.col("kept")).iter_rows(named=True)}
    n = 0
    for split in ("train", "val"):
        for entry in json.loads((out / split / "clips.json").read_text()):
            n += 1
            cid, files = entry["clip_id"], entry["files"]
            assert files["video"] == f"{split}/videos/{cid}.mp4" and files["trajectory"] == f"{split}/videos/{cid}.json"
            decoded = decoded_frames(out / files["video"])
            assert len(decoded) == entry["n_frames"] == clips[cid]["n_frames"]
            doc = json.loads((out / files["trajectory"]).read_text())
            assert set(doc) == {"detected_objects"}
            traj = t["trajectories"].filter(pl.col("clip_id") == cid)
            kept = traj.filter(pl.col("kept")).sort("track_id")
            objs = doc["detected_objects"]
            assert list(objs) == [f"{r['label']}_{1000 + i}" for i, r in enumerate(kept.iter_rows(named=True))]
            times = [clips[cid]["start_s"] + r for r in entry["frame_times_s"]]
            # at the path's own times the boxes are motion_facts.trajectory_json's (the captions' input)
            ref = trajectory_json(traj)["detected_objects"]
            path_times = sorted({p["t"] for r in kept.iter_rows(named=True) for p in r["path"]})
            for key, o in objs.items():
                assert set(o) == {"class_name", "class_id", "track_id", "bbox"} and len(o["bbox"]) == len(decoded)
                for box in o["bbox"]:
                    assert box is None or (len(box) == 4 and all(0 <= v <= 1 and round(v, 4) == v for v in box)
                                           and box[0] < box[2] and box[1] < box[3])
                for pt, rbox in zip(path_times, ref[key]["bbox"]):
                    k = int(np.argmin(np.abs(np.array(times) - pt)))
                    if abs(times[k] - pt) < 1e-3:
                        assert o["bbox"][k] == rbox
            if "late_entry" in cid:  # the ball appears at 3.5 s: no box before
                ball = [o for o in objs.values() if o["bbox"][0] is None]
                assert len(ball) == 1 and all(b is None for b, tt in zip(ball[0]["bbox"], times) if tt < 3.4)
            assert files["qa"] == f"{split}/qa_shuffled/{cid}.json"
            qa = json.loads((out / files["qa"]).read_text())
            want = t["qa_pairs"].filter((pl.col("clip_id") == cid) & pl.col("kept"))
            mcq = qa["gpt4o_mini_res"]["questions"]
            assert len(mcq) == len(want.filter(~pl.col("grounded")))
            assert len(qa["grounded"]) == len(want.filter(pl.col("grounded")))
            for q in mcq:
                assert set("ABCD") <= set(q) and q["answer"] == q["correct_answer"] in "ABCD"
                assert q["category"] in CATEGORIES and len({q[L] for L in "ABCD"}) == 4
            for g in qa["grounded"]:
                assert objs[g["object"]]["track_id"] == g["track_id"]
                f0, f1 = g["action_start_frame"], g["action_end_frame"]
                assert entry["frame_times_s"][f0] >= g["action_start_s"] - 1e-3
                assert entry["frame_times_s"][f1] <= g["action_end_s"] + 1e-3
                assert any(b is not None for b in objs[g["object"]]["bbox"][f0:f1 + 1])
            # the caption as the reference's caption script writes it: {"<model>_res": text}, nothing else
            assert files["caption"] == f"{split}/videos_captions_gpt4o_mini/{cid}.json"
            cap = json.loads((out / files["caption"]).read_text())
            row = t["captions"].filter(pl.col("clip_id") == cid).row(0, named=True)
            assert cap == {"gpt4o_mini_res": row["caption"]}
            assert entry["caption"]["writer"] == "template" and "overview" in entry["caption"]["aspects"]
            # the reference's caption script samples a frame every int(fps * 0.5) and indexes every list of the
            # trajectory JSON (extract_index): every list must be per frame of the mp4
            step = int(25 * 0.5)
            sampled = list(range(0, len(decoded) - 1, step))
            assert _extract_index(doc, sampled)["detected_objects"].keys() == objs.keys()
        # FoundationMotion's eval reads the split as a task: every mp4 of videos/ with its qa_shuffled file
        items = _motionbench_items(out, split)
        in_split = [c for c in clips if c in {e["clip_id"] for e in json.loads((out / split / "clips.json").read_text())}]
        kept_mcq = t["qa_pairs"].filter(pl.col("clip_id").is_in(in_split) & pl.col("kept") & ~pl.col("grounded"))
        assert len(items) == len(kept_mcq) > 0
        assert all(answer in "ABCD" and prompt.count("\n") == 4 for _, prompt, answer in items)
    assert n == manifest["counts"]["clips"] == 2


def _motionbench_items(base: Path, task: str) -> list[tuple[str, str, str]]:
    """What FoundationMotion's eval/vila_motionbench.py does with an export, re-written from its behaviour: every
    .mp4 under {base}/{task}/videos (recursively, extension in any case), its QA file at the same relative path
    under {base}/{task}/qa_shuffled with .json (opened unguarded: a missing file stops the run), the questions of
    "human" else "gpt4o_mini_res", each with question and A-D (KeyError otherwise), the answer correct_answer
    else answer. Returns (video, prompt, answer) per question."""
    video_dir, qa_dir = str(base / task / "videos"), str(base / task / "qa_shuffled")
    items = []
    for root, _, names in os.walk(video_dir):
        for name in names:
            if not name.lower().endswith(".mp4"):
                continue
            path = os.path.join(root, name)
            with open(path.replace(video_dir, qa_dir).replace(".mp4", ".json")) as f:
                j = json.load(f)
            questions = j["human"]["questions"] if "human" in j else j["gpt4o_mini_res"]["questions"]
            for q in questions:
                prompt = q["question"] + "\n" + "\n".join(f"{letter}: {q[letter]}" for letter in "ABCD")
                items.append((path, prompt, q["correct_answer"] if "correct_answer" in q else q["answer"]))
    return items


def _extract_index(node, indices: list[int]):
    """The reference caption script's extract_index, re-written from its behaviour: through dicts, every list is
    indexed at the sampled frames (IndexError when a list is not per frame), scalars kept."""
    if isinstance(node, dict):
        return {k: _extract_index(v, indices) for k, v in node.items()}
    if isinstance(node, list):
        return [node[i] for i in indices]
    return node


def _time_str_to_seconds(s: str) -> int:  # GroundMoRe's evaluate_groundmore.py
    parts = [int(p) for p in s.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _check_groundmore(out: Path, built, kind: str) -> None:
    t, _ids = built["t"], built["ids"]
    manifest = manifest_ok(out)
    _skipped_gone(manifest, built)
    assert manifest["mask_kind"] == kind and manifest["fps"] == 6.0
    tracks_ = t["tracks"]
    n_questions = 0
    for split in ("train", "val"):
        meta = json.loads((out / f"groundmore_{split}.json").read_text())["videos"]
        for vid, entry in meta.items():
            assert vid.startswith(entry["clip_id"]) and re.fullmatch(r"\d{4}_\d{4}", vid[-9:])
            clip_start = vid[-9:].split("_")[0][:2] + ":" + vid[-9:].split("_")[0][2:]  # as the evaluator parses
            # the key names exactly the exported frames: whole seconds [start_s, end_s) of the source, 6 per second,
            # frame k the one on screen at start_s + k / 6 (the synthetic videos run at 25 fps)
            assert entry["start_s"] == _time_str_to_seconds(clip_start) and entry["start_s"] == int(entry["start_s"])
            assert entry["clip_start_s"] <= entry["start_s"] < entry["end_s"] <= entry["clip_end_s"]
            assert entry["n_frames"] == (entry["end_s"] - entry["start_s"]) * 6
            assert all(0 <= k / 6 - t < 1 / 25 - 1e-6 for k, t in enumerate(entry["frame_times_s"]))
            images = sorted((out / "groundmore_videos" / vid / "images").iterdir())
            masks = sorted((out / "groundmore_videos" / vid / "masks").iterdir())
            assert [p.name for p in images] == [f"frame_{k:06d}.jpg" for k in range(entry["n_frames"])]
            assert [p.name for p in masks] == [f"frame_{k:06d}.png" for k in range(entry["n_frames"])]
            ids_in_clip = set(tracks_.filter(pl.col("clip_id") == entry["clip_id"])["track_id"].to_list())
            pngs = [Image.open(p) for p in masks]
            assert all(p.mode == "P" for p in pngs)
            assert set(np.unique(np.concatenate([np.unique(np.array(p)) for p in pngs]))) <= {0} | ids_in_clip
            for exp_id, q in entry["questions"].items():
                n_questions += 1
                row = t["qa_pairs"].filter(pl.col("qa_id") == exp_id).row(0, named=True)
                assert row["kept"] and row["grounded"] and q["obj_id"] == row["target_track_id"]
                assert q["answer"] == row["answer_text"] and q["q_type"] == row["q_type"].capitalize()
                assert q["mask_kind"] == kind
                # GroundMoRe's rule: its evaluator's arithmetic on the MM:SS strings (fps 6, clip start from the
                # key) gives exactly the window the export painted, and that window is the exact motion window with
                # each end rounded to the nearest whole second (clamped to the exported span)
                a = (_time_str_to_seconds(q["action_start"]) - _time_str_to_seconds(clip_start)) * 6
                b = (_time_str_to_seconds(q["action_end"]) - _time_str_to_seconds(clip_start)) * 6 - 1
                assert (a, b) == (q["action_start_frame"], q["action_end_frame"]) and 0 <= a <= b < entry["n_frames"]
                span = entry["end_s"] - entry["start_s"]
                assert abs(a / 6 - min(max(q["action_start_s"], 0.0), span)) < 1 + 1e-6
                assert abs((b + 1) / 6 - min(max(q["action_end_s"], 0.0), span)) < 1 + 1e-6 or b + 1 - a == 6
                per_q = exports.question_masks(out, split, vid, exp_id)
                inside = range(q["action_start_frame"], q["action_end_frame"] + 1)
                assert all(not m.any() for k, m in enumerate(per_q) if k not in inside)  # EMPTY outside
                assert sum(per_q[k].any() for k in inside) == q["frames_with_object"] == len(inside)
                for k in inside:  # the object's pixels sit in its track box on that source frame
                    m = per_q[k]
                    if not m.any():
                        continue
                    f = entry["source_frames"][k]
                    near = tracks_.filter((pl.col("clip_id") == entry["clip_id"]) & (pl.col("track_id") == q["obj_id"]))
                    box = near.sort((pl.col("frame_idx") - f).abs()).row(0, named=True)
                    ys, xs = np.nonzero(m)
                    cx, cy = xs.mean(), ys.mean()
                    assert box["x1"] - 8 <= cx <= box["x2"] + 8 and box["y1"] - 8 <= cy <= box["y2"] + 8
                    if kind == "box":  # a filled rectangle
                        assert m.sum() == (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
    assert n_questions == manifest["counts"]["questions"] > 0
    # every split's file exists (GroundMoRe's evaluator opens groundmore_test.json), empty when the split is
    assert {f"groundmore_{s}.json" for s in ("train", "val", "test")} <= {p.name for p in out.iterdir()}
    # GroundMoRe's J&F of the export's own masks, rebuilt by its rule, against the export: 100
    pred = out.parent / f"{out.name}-pred"
    for split in ("train", "val", "test"):
        for vid, entry in json.loads((out / f"groundmore_{split}.json").read_text())["videos"].items():
            for exp_id in entry["questions"]:
                for k, m in enumerate(exports.question_masks(out, split, vid, exp_id)):
                    (pred / exp_id).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(m.astype(np.uint8)).save(pred / exp_id / f"{k:05d}.png")
    questions, problems = export_ground_truth(out)
    assert not problems and len(questions) == n_questions
    result = evaluate_grounded(questions, pred)
    assert result["summary"][-1]["JF"] == pytest.approx(100.0)


def test_groundmore_masks_from_detector_masks(built, tmp_path):
    t = built["t"]
    out = tmp_path / "gm"
    exports.export_groundmore(t["qa_pairs"], t["raw_clips"], t["tracks"], t["detections"], built["splits"],
                              built["source"], out)
    _check_groundmore(out, built, "mask")  # the motion detector gives instance masks


def test_groundmore_box_masks_without_detector_masks(built, tmp_path):
    t = built["t"]
    out = tmp_path / "gm-box"
    no_masks = t["detections"].with_columns(mask_rle=pl.lit(None, pl.String))
    exports.export_groundmore(t["qa_pairs"], t["raw_clips"], t["tracks"], no_masks, built["splits"],
                              built["source"], out)
    _check_groundmore(out, built, "box")


def test_a_source_changed_since_labeling_is_refused(tmp_path):
    lake = Lake(root=str(tmp_path / "lake"))
    path = media.small_mp4(tmp_path / "v.mp4", n_frames=10)
    vid = register_video(str(path), VideoStore(), lake).video_id
    source = exports.lake_sources(lake, VideoStore())
    assert source(vid) == path
    media.small_mp4(path, n_frames=12)  # same name, other content
    with pytest.raises(Exception, match="changed since labeling"):
        exports.lake_sources(lake, VideoStore())(vid)
    path.unlink()
    with pytest.raises(Exception, match="source video not found"):
        exports.lake_sources(lake, VideoStore())(vid)
    with pytest.raises(KeyError, match="not registered"):
        exports.lake_sources(lake, VideoStore())("nope-00000000")


def test_videos_without_a_split_are_skipped_with_the_reason(built, tmp_path):
    t, ids = built["t"], built["ids"]
    splits = built["splits"].filter(pl.col("video_id") != ids["late_entry"])
    m = exports.export_llamafactory(t["qa_pairs"], t["raw_clips"], t["tracks"], splits, built["source"], tmp_path)
    late = [s for s in m["skipped"] if s["video_id"] == ids["late_entry"]]
    assert late and "not in the splits table" in late[0]["reason"] and late[0]["questions"] > 0
    assert m["counts"]["records"]["fm_motion_val"] == 0 and m["counts"]["records"]["fm_motion_train"] > 0


def test_cli_export_in_process(built, tmp_path, monkeypatch, capsys):
    """`fm export` (cmd_export) against a copy of the module's lake: no splits -> exit 1 telling to run
    `fm run`; with splits -> exit 0, the clip whose source is gone reported on stderr and in the manifest."""
    from types import SimpleNamespace

    import fm_assets.definitions
    from fm_assets import cli
    from fm_resources.warehouse import Warehouse

    lake = Lake(root=str(tmp_path / "lake"))
    shutil.copytree(built["lake"].root, lake.root)
    fake = SimpleNamespace(resources={"lake": lake, "warehouse": Warehouse(lake=lake), "video_store": VideoStore()})
    monkeypatch.setattr(fm_assets.definitions, "defs", fake)
    for fmt in ("llamafactory", "fm-json", "groundmore"):
        assert cli.main(["export", fmt, str(tmp_path / "none")]) == 1
        err = capsys.readouterr().err
        assert "no splits table" in err and "fm run" in err
    assert not (tmp_path / "none").exists()
    lake.write_parquet("splits/all.parquet", built["splits"])
    assert cli.main(["export", "groundmore", str(tmp_path / "gm"), "--fps", "0"]) == 1
    assert "--fps must be a positive whole number" in capsys.readouterr().err
    assert cli.main(["export", "groundmore", str(tmp_path / "gm"), "--fps", "2.5"]) == 1  # whole seconds x fps
    assert "--fps must be a positive whole number" in capsys.readouterr().err
    assert cli.main(["export", "fm-json", str(tmp_path / "fj")]) == 0
    std = capsys.readouterr()
    assert "wrote" in std.out and '"clips": 2' in std.out
    assert f"skipped {built['ids'][GONE]}-000: source video not found" in std.err
    _skipped_gone(manifest_ok(tmp_path / "fj"), built)
    # mot: says when only the sampled frames are written (MOTA against every frame then counts the rest as misses)
    assert cli.main(["export", "mot", str(tmp_path / "mot")]) == 0
    assert "--no-interpolate" not in capsys.readouterr().err
    assert cli.main(["export", "mot", str(tmp_path / "mot_sampled"), "--no-interpolate"]) == 0
    assert "only the frames the tracker saw" in capsys.readouterr().err
    manifest_ok(tmp_path / "mot_sampled")
