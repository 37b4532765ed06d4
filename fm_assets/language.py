"""Stage 3: tracks -> `trajectories` (paths + motion facts) -> `captions` (LLM or template) -> `qa_pairs`
(rule-based with verified answers, LLM-written and checked against the facts, GroundMoRe-style grounded)."""

import json
import time

import polars as pl
from dagster import AssetExecutionContext, Config, MetadataValue, asset
from pydantic import BaseModel, Field

from fm_assets import plots, qa
from fm_assets.captions import CaptionOut, caption_messages, clip_facts, prompt, template_caption
from fm_assets.motion_facts import TRAJECTORY_SCHEMA, TrajectoryParams, pair_relations, trajectory_json
from fm_assets.motion_facts import trajectories as compute_trajectories
from fm_assets.partitions import BACKFILL_POLICY, for_each_video, lookup_video, of_video, videos_partitions
from fm_assets.schemas import CAPTIONS, QA_PAIRS, frame
from fm_resources.lake import Lake
from fm_resources.llm import LLMFailure, LLMResource
from fm_resources.video import VideoStore, decode, keyframes


class TrajectoryConfig(Config):
    min_duration_s: float = Field(0.5, description="tracks shorter than this are dropped (too_short)")
    min_points: int = Field(3, description="tracks with fewer boxes are dropped (too_short)")
    drop_static: bool = Field(True, description="drop tracks that do not move (static)")
    smooth_s: float = Field(0.4, description="window of the path smoothing, seconds")
    min_stop_s: float = Field(0.5, description="a stop lasts at least this long")
    turn_deg: float = Field(45.0, description="a turn changes the heading by more than this")


class QAConfig(Config):
    n_questions: int = Field(10, ge=1, description="questions per clip (rule-based + LLM + grounded)")
    grounded_per_clip: int = Field(3, ge=0, description="GroundMoRe-style grounded questions per clip")
    llm_questions: int = Field(5, ge=0, description="questions asked of the LLM per clip (when a model is set)")
    max_box_noise: float = Field(0.02, description="facts of noisier tracks are not asked about")


def _clips(raw_clips: pl.DataFrame) -> list[dict]:
    return list(raw_clips.filter(pl.col("kept")).sort("start_frame").iter_rows(named=True))


def _per_clip(df: pl.DataFrame, clip_id: str) -> pl.DataFrame:
    return df.filter(pl.col("clip_id") == clip_id)


@asset(partitions_def=videos_partitions, group_name="language", backfill_policy=BACKFILL_POLICY,
       description="Per track: smoothed normalised path and motion facts; too short or static tracks kept=false.")
def trajectories(context: AssetExecutionContext, config: TrajectoryConfig, raw_clips: pl.DataFrame,
                 tracks: pl.DataFrame, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    params = TrajectoryParams(min_duration_s=config.min_duration_s, min_points=config.min_points,
                              drop_static=config.drop_static, smooth_s=config.smooth_s,
                              min_stop_s=config.min_stop_s, turn_deg=config.turn_deg)

    def one(video_id: str):
        video_tracks = of_video(tracks, video_id)
        parts = [compute_trajectories(_per_clip(video_tracks, c["clip_id"]), c["width"], c["height"], params)
                 for c in _clips(of_video(raw_clips, video_id))]
        df = pl.concat(parts) if parts else pl.DataFrame(schema=TRAJECTORY_SCHEMA)
        kept = df.filter(pl.col("kept"))
        metadata = {
            "tracks": len(df), "kept": len(kept),
            "dropped": str(dict(df.filter(~pl.col("kept")).group_by("drop_reason").len().sort("drop_reason").iter_rows())),
            "directions": str(dict(kept.group_by("direction").len().sort("direction").iter_rows())),
        }
        # pictures for a labeler: the paths over a frame of their clip (overlay) and speed over time (plot)
        clips = plots.clip_panels(df, of_video(raw_clips, video_id))
        if clips:
            try:
                path = video_store.fetch(lookup_video(video_id, lake)["uri"])
                frames = plots.grab_frames(decode(path, None, start_s=min(c["start_s"] for c in clips)),
                                           {c["frame_idx"] for c in clips})
                for name, png in plots.trajectory_pictures(df, clips, frames).items():
                    lake.write_bytes(f"overlays/{video_id}/{name}.png", png)
                    metadata[name] = MetadataValue.md(plots.md_image(png, name))
            except Exception as exc:  # the pictures are a view; the facts still materialize without them
                context.log.warning(f"{video_id}: trajectory pictures failed: {exc!r}")
        return df, metadata

    return for_each_video(context, one, TRAJECTORY_SCHEMA)


def _frames_for(llm: LLMResource, video_store: VideoStore, lake: Lake, video_id: str, clip: dict,
                every_s: float) -> list[bytes]:
    """Keyframes of a clip for a vision model (none for text-only models)."""
    if not llm.vision:
        return []
    path = video_store.fetch(lookup_video(video_id, lake)["uri"])
    return keyframes(path, None, clip["start_s"], clip["end_s"], every_s, llm.frame_max_side)


def _usage(rows: list[dict]) -> dict:
    df = pl.DataFrame(rows, schema={k: CAPTIONS[k] for k in ("tokens_in", "tokens_out", "cost_usd", "cached")})
    return {"tokens_in": int(df["tokens_in"].sum() or 0), "tokens_out": int(df["tokens_out"].sum() or 0),
            "cost_usd": MetadataValue.float(float(df["cost_usd"].sum() or 0.0)),
            "llm_calls_cached": int(df["cached"].sum() or 0)}


@asset(partitions_def=videos_partitions, group_name="language", pool="llm", backfill_policy=BACKFILL_POLICY,
       description="A fine-grained motion caption per kept clip (seven aspects), by an LLM or the template writer.")
def captions(context: AssetExecutionContext, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
             llm: LLMResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    def one(video_id: str):
        video_traj = of_video(trajectories, video_id)

        def write(clip: dict) -> dict:
            traj = _per_clip(video_traj, clip["clip_id"])
            facts = clip_facts(traj, pair_relations(traj), clip)
            base = {"video_id": video_id, "clip_id": clip["clip_id"], "n_objects": len(facts["objects"]),
                    "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "cached": False, "attempts": 0,
                    "status": "ok", "error": None, "n_frames_sent": 0}
            if llm.is_offline or not facts["objects"]:
                out = template_caption(facts)
                return {**base, "caption": out.text(), "aspects": out.model_dump_json(), "writer": "template",
                        "prompt_version": "template@1"}
            images = _frames_for(llm, video_store, lake, video_id, clip, llm.frame_every_s)
            messages, version = caption_messages(facts, trajectory_json(traj), min(len(images), llm.max_frames))
            try:
                res = llm.complete(lake, messages, CaptionOut, version, images)
            except LLMFailure as exc:
                return {**base, "caption": None, "aspects": None, "writer": llm.model, "prompt_version": version,
                        "attempts": exc.attempts, "status": "failed", "error": f"{exc.reason}: {exc.detail}"[:500]}
            return {**base, "caption": res.value.text(), "aspects": res.value.model_dump_json(), "writer": llm.model,
                    "prompt_version": version, "tokens_in": res.tokens_in, "tokens_out": res.tokens_out,
                    "cost_usd": res.cost_usd, "cached": res.cached, "attempts": res.attempts,
                    "n_frames_sent": min(len(images), llm.max_frames)}

        started = time.perf_counter()
        clips = _clips(of_video(raw_clips, video_id))
        rows = [r if isinstance(r, dict) else _crashed(video_id, clip, r)
                for clip, r in zip(clips, llm.map(write, clips))]
        df = frame(rows, CAPTIONS)
        metadata = {"writer": llm.model, "clips": len(df), "failed": int((df["status"] != "ok").sum()),
                    **_usage(rows), "seconds": MetadataValue.float(time.perf_counter() - started)}
        if len(df) and df["caption"].drop_nulls().len():
            metadata["example"] = MetadataValue.md(df["caption"].drop_nulls()[0])
        return df, metadata

    return for_each_video(context, one, CAPTIONS)


def _crashed(video_id: str, clip: dict, exc: BaseException) -> dict:
    """A caption row recording an unexpected error for one clip (the partition still materializes)."""
    return {"video_id": video_id, "clip_id": clip["clip_id"], "caption": None, "writer": None, "status": "failed",
            "error": f"{type(exc).__name__}: {exc}"[:500], "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0,
            "cached": False, "attempts": 0}


class LLMQuestion(BaseModel):
    question: str = Field(min_length=5)
    options: list[str] = Field(min_length=4, max_length=4)
    answer: str = Field(pattern="^[A-D]$")
    category: str


class LLMQuestions(BaseModel):
    questions: list[LLMQuestion]


def qa_messages(caption: str, facts: dict, n: int, n_frames: int) -> tuple[list[dict], str]:
    text, version = prompt("qa_v1")
    note = f"You also see {n_frames} frames of the clip, one per second, in order." if n_frames else ""
    system = text.format(n_questions=n, frames_note=note)
    user = json.dumps({"caption": caption, "objects": facts["objects"], "relations": facts["relations"]},
                      separators=(",", ":"))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], version


@asset(partitions_def=videos_partitions, group_name="language", pool="llm", backfill_policy=BACKFILL_POLICY,
       description="Multiple-choice motion questions (five FoundationMotion categories) and grounded questions "
                   "(GroundMoRe types) per clip; LLM questions that contradict the facts are kept=false.")
def qa_pairs(context: AssetExecutionContext, config: QAConfig, raw_clips: pl.DataFrame, trajectories: pl.DataFrame,
             captions: pl.DataFrame, llm: LLMResource, video_store: VideoStore, lake: Lake) -> pl.DataFrame:
    params = qa.QAParams(n_questions=config.n_questions, grounded_per_clip=config.grounded_per_clip,
                         max_box_noise=config.max_box_noise)

    def one(video_id: str):
        video_traj = of_video(trajectories, video_id)
        caption_of = {r["clip_id"]: r for r in of_video(captions, video_id).iter_rows(named=True)}

        def ask(clip: dict) -> tuple[list[dict], dict]:
            traj = _per_clip(video_traj, clip["clip_id"])
            pairs = pair_relations(traj)
            rows = qa.rule_questions(traj, pairs, clip, params) + qa.grounded_questions(traj, pairs, clip, params)
            usage = {"tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "cached": False}
            cap = caption_of.get(clip["clip_id"])
            if llm.is_offline or config.llm_questions == 0 or not cap or cap["status"] != "ok" or not len(traj):
                return qa.finalize(rows, video_id, params), usage
            facts = clip_facts(traj, pairs, clip)
            images = _frames_for(llm, video_store, lake, video_id, clip, 1.0)
            messages, version = qa_messages(cap["caption"], facts, config.llm_questions, min(len(images), llm.max_frames))
            try:
                res = llm.complete(lake, messages, LLMQuestions, version, images)
            except LLMFailure as exc:
                context.log.warning(f"{clip['clip_id']}: LLM questions failed ({exc.reason}); rule-based only")
                return qa.finalize(rows, video_id, params), usage
            usage = {"tokens_in": res.tokens_in, "tokens_out": res.tokens_out, "cost_usd": res.cost_usd,
                     "cached": res.cached}
            llm_rows = qa.llm_rows(res.value.model_dump()["questions"], traj, pairs, clip, llm.model, version)
            return qa.finalize(rows + llm_rows, video_id, params), usage

        clips = _clips(of_video(raw_clips, video_id))
        rows, usages = [], []
        for clip, result in zip(clips, llm.map(ask, clips)):
            if isinstance(result, BaseException):
                context.log.error(f"{clip['clip_id']}: question generation failed: {result!r}")
                continue
            rows += result[0]
            usages.append(result[1])
        df = frame(rows, QA_PAIRS)
        kept = df.filter(pl.col("kept"))
        return df, {
            "questions": len(kept), "grounded": int(kept["grounded"].sum() or 0),
            "rejected_llm": len(df) - len(kept),
            "categories": str(dict(kept.group_by("category").len().sort("category").iter_rows())),
            "q_types": str(dict(kept.filter(pl.col("grounded")).group_by("q_type").len().sort("q_type").iter_rows())),
            "answers": str(dict(kept.filter(~pl.col("grounded")).group_by("answer").len().sort("answer").iter_rows())),
            **_usage(usages),
        }

    return for_each_video(context, one, QA_PAIRS)
