"""The caption writers' shared parts: facts shown to writers, prompt files, the offline template writer."""

import json

import polars as pl
import pytest

from fm_assets.labels.captions import ASPECTS, CaptionOut, caption_messages, clip_facts, prompt, template_caption
from fm_assets.labels.motion_facts import pair_relations, trajectories

W, H = 640, 480


def _tracks(*objects) -> pl.DataFrame:
    """objects: (track_id, label, color, [(t, cx, cy), ...]) with 60x60 boxes at 10 fps between keyframes."""
    rows = []
    for tid, label, color, kfs in objects:
        t0, t1 = kfs[0][0], kfs[-1][0]
        n = int(round((t1 - t0) * 10)) + 1
        for i in range(n):
            t = t0 + i / 10
            for (ta, xa, ya), (tb, xb, yb) in zip(kfs, kfs[1:]):
                if ta <= t <= tb + 1e-9:
                    a = (t - ta) / (tb - ta) if tb > ta else 0.0
                    cx, cy = xa + a * (xb - xa), ya + a * (yb - ya)
                    break
            rows.append({"video_id": "v", "clip_id": "c0", "track_id": tid, "frame_idx": i, "t_s": t,
                         "x1": cx - 30, "y1": cy - 30, "x2": cx + 30, "y2": cy + 30, "score": 0.9,
                         "label": label, "color": color})
    return pl.DataFrame(rows)


CLIP = {"video_id": "v", "clip_id": "c0", "start_s": 0.0, "end_s": 8.0}


@pytest.fixture(scope="module")
def two_objects():
    tracks = _tracks((1, "object", "red", [(0.5, 520, 140), (6.5, 120, 140)]),
                     (2, "object", "blue", [(1.0, 110, 340), (7.0, 530, 340)]))
    traj = trajectories(tracks, W, H)
    return traj, pair_relations(traj)


def test_facts_name_each_object_uniquely_with_times_from_clip_start(two_objects):
    traj, pairs = two_objects
    facts = clip_facts(traj, pairs, {**CLIP, "start_s": 0.5, "end_s": 8.5})
    refs = [o["ref"] for o in facts["objects"]]
    assert len(set(refs)) == 2 and any("red" in r for r in refs) and any("blue" in r for r in refs)
    red = next(o for o in facts["objects"] if o["color"] == "red")
    assert red["direction"] == "left" and red["start_region"] == "top-right" and red["end_region"] == "top-left"
    assert red["moves_s"][0] == pytest.approx(0.0, abs=0.15)  # onset 0.5 s in the video = 0 s in the clip
    assert facts["duration_s"] == 8.0
    assert len(facts["relations"]) == 1 and facts["relations"][0]["starts_first"] in ("a", "b")
    json.dumps(facts)  # plain data


def test_template_caption_covers_the_seven_aspects_from_the_facts(two_objects):
    traj, pairs = two_objects
    facts = clip_facts(traj, pairs, CLIP)
    out = template_caption(facts)
    text = out.text()
    assert set(ASPECTS) <= set(out.model_dump())
    for o in facts["objects"]:
        assert o["ref"] in text
    assert "moves left" in text and "moves right" in text
    assert "top-right" in text and "bottom-left" in text  # start regions
    assert "first" in out.temporal_order  # order of onsets
    assert text.count("\n- ") >= 5  # overview + a bullet per applicable aspect
    assert template_caption(facts) == out  # deterministic


def test_template_caption_counts_repetitions_and_stops():
    kfs = [(0.5 + 1.5 * k, 150 if k % 2 == 0 else 490, 240) for k in range(7)]
    traj = trajectories(_tracks((1, "object", "cyan", kfs)), W, H)
    facts = clip_facts(traj, pair_relations(traj), {**CLIP, "end_s": 10.0})
    (o,) = facts["objects"]
    assert o["repetitions"] == 3
    assert "3 times" in template_caption(facts).repetition


def test_empty_clip_caption_says_nothing_moves():
    traj = trajectories(_tracks(), W, H)
    out = template_caption(clip_facts(traj, pair_relations(traj), CLIP))
    assert out.overview == "Nothing moves in this clip." and out.text().startswith("Nothing moves")


def test_prompt_files_are_versioned_by_content(two_objects):
    text, version = prompt("caption_v1")
    assert version.startswith("caption_v1@") and len(version) == len("caption_v1@") + 8
    traj, pairs = two_objects
    messages, v2 = caption_messages(clip_facts(traj, pairs, CLIP), {"detected_objects": {}}, n_frames=4)
    assert v2 == version and messages[0]["role"] == "system" and "seven aspects" in messages[0]["content"]
    assert "4 frames" in messages[0]["content"]
    assert json.loads(messages[1]["content"])["objects"][0]["ref"]


def test_caption_schema_rejects_missing_aspects():
    with pytest.raises(ValueError):
        CaptionOut.model_validate({"overview": "A red box moves left."})
