"""`fm eval mcq`: ask a litellm model the lake's multiple-choice questions and score its replies.

What is asked: every kept, ungrounded question of `qa_pairs` whose video is in the chosen split of the `splits`
table (default `test`; `--split all` takes every video, with or without a splits table). The model sees

- vision models (`--vision`, or litellm says the model takes images, or the llm resource has `vision: true`):
  the clip's frames, one every 1 s of [start_s, end_s) like FoundationMotion's QA stage (at most the resource's
  `max_frames`, evenly spaced; longer side `frame_max_side`), decoded from the registered source video;
- text-only models: the question and its four options alone, or with the clip's caption (`--with-caption`).

The prompt is fm_assets/labels/prompts/eval_mcq_v1.md (its version, name@sha256[:8], is stored with each row).

Strict answer parsing: the whole reply must match ANSWER_RE (re.fullmatch),

    \\W*(?:(?i:(?:the\\s+)?answer)(?:\\s+is)?\\W*)?([A-D])\\W*

i.e. one capital letter A-D, optionally after "Answer", "answer is" or "The answer is" (any case), with only
whitespace and punctuation around it: "B", " B. ", "(B)", "**B**", "Answer: B", "The answer is (B)." are B;
"I think B or C", "B or C", "b", "E", "", "B. moves left" are invalid, and an invalid reply counts as wrong.
Its raw text is kept in the results and the first few are printed.

Scores: accuracy per category and overall (micro: correct / questions), with the 95 % Wilson score interval
(z = 1.959964): for k correct of n, p = k/n,

    centre = (p + z^2/(2n)) / (1 + z^2/n),   half = z / (1 + z^2/n) * sqrt(p(1-p)/n + z^2/(4n^2)),

[centre - half, centre + half] (null when n = 0). Unlike the normal approximation it stays inside [0, 1] and is
not a zero-width interval at 0 % or 100 %. The macro accuracy (mean over categories) is reported too.

Baselines: `--baseline blind` answers every question with the most frequent answer letter of the TRAIN split's
kept multiple-choice questions (ties: the earliest letter); no model is called. With no such question in train
it stops with an error (there is no prior to take). `--baseline caption-only` asks the model with the caption
and the options only, never frames (the same as `--with-caption --text-only`).

LLM calls: the project's `llm` resource's settings (model overridden by --model; api_base or FM_LLM_API_BASE, the
key from its api_key_env, temperature, max_tokens, timeout_s, max_retries / backoff_s, concurrency, cache). Scoring
needs the raw text, so questions go through the resource's `complete()` with no schema: no response format,
the resource's retries (timeouts, 429 with Retry-After, 5xx, connection errors; never an answer it did not
like) and its lake cache (`_cache/llm/`, so `llm_calls` counts their tokens and cost; a rerun asks nothing it
has already asked). A
question whose call fails after the retries counts as wrong, is reported as `failed` with the reason in `error`,
and makes the command exit 1 (rerun: replies already got come from the cache).

Where results go: one row per question in the lake at `eval_mcq/<run_name>.parquet` (DuckDB view `eval_mcq`:
`fm sql "select * from eval_mcq"`), and one AssetMaterialization of the asset key `mcq_eval` in the Dagster
instance (runless: `fm ui` -> Assets -> mcq_eval), whose metadata holds the overall accuracy and interval as
numbers (plotted over time by the UI), the per-category Markdown table, the model, split and the lake path.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ANSWER_RE = re.compile(r"\W*(?:(?i:(?:the\s+)?answer)(?:\s+is)?\W*)?([A-D])\W*")
Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal
LETTERS = ("A", "B", "C", "D")
PROMPT = "eval_mcq_v1"
ASSET_KEY = "mcq_eval"
SPLIT_CHOICES = ("train", "val", "test", "all")
BASELINES = ("blind", "caption-only")
_RUN_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class EvalError(Exception):
    """The evaluation cannot start (nothing to ask, no splits, no prior, bad run name); the message says why."""


# -- pure parts --------------------------------------------------------------------------------------------------
def parse_answer(text: str | None) -> str | None:
    """The letter of a strictly formatted reply, or None (invalid: counts as wrong). See ANSWER_RE."""
    match = ANSWER_RE.fullmatch(text or "")
    return match.group(1) if match else None


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of k successes in n trials (95 % by default); (None, None) when n = 0."""
    if n <= 0:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def prompt_sections() -> tuple[dict[str, str], str]:
    """The named sections of the prompt file (`=== name ===` lines) and its version."""
    from fm_assets.labels.captions import prompt

    text, version = prompt(PROMPT)
    parts = re.split(r"^=== (.+?) ===[ \t]*$\n?", text, flags=re.MULTILINE)
    return {name.strip(): body.strip("\n") for name, body in zip(parts[1::2], parts[2::2])}, version


def build_messages(q: dict, context: str, n_frames: int = 0, caption: str | None = None) -> tuple[list[dict], str]:
    """(chat messages, prompt version) for one question. context: frames, frames+caption, caption or question;
    the frames themselves are attached by the llm resource."""
    sections, version = prompt_sections()
    system = sections["system"].format(context=sections[f"context: {context}"].format(n_frames=n_frames))
    caption_block = ""
    if "caption" in context:
        caption_block = sections["caption"].format(caption=(caption or "(no description available)").strip()) + "\n\n"
    user = sections["user"].format(caption_block=caption_block, question=q["question"],
                                   **{f"option_{L.lower()}": q[f"option_{L.lower()}"] for L in LETTERS})
    return [{"role": "system", "content": system}, {"role": "user", "content": user}], version


def pick_frames(frames: list[bytes], max_frames: int) -> list[bytes]:
    """At most max_frames frames, evenly spaced (as the llm resource picks them)."""
    n = len(frames)
    if n <= max_frames:
        return list(frames)
    return [frames[i * n // max_frames] for i in range(max_frames)]


def summarize(results) -> Any:
    """Per category (FoundationMotion's order, then any other) and `overall`: questions, correct, accuracy,
    ci95_low, ci95_high, invalid (replies that did not parse), failed (no reply after the retries)."""
    import polars as pl

    from fm_assets.labels.qa import CATEGORIES

    present = set(results["category"].to_list())
    cats = [c for c in CATEGORIES if c in present] + sorted(c for c in present if c not in CATEGORIES)

    def row(name: str, df) -> dict:
        n, k = len(df), int(df["correct"].sum() or 0)
        lo, hi = wilson(k, n)
        return {"category": name, "questions": n, "correct": k, "accuracy": k / n if n else None,
                "ci95_low": lo, "ci95_high": hi,
                "invalid": int((df["error"].is_null() & ~df["valid"]).sum() or 0),
                "failed": int(df["error"].is_not_null().sum() or 0)}

    rows = [row(c, results.filter(pl.col("category") == c)) for c in cats] + [row("overall", results)]
    return pl.DataFrame(rows, schema={"category": pl.String, "questions": pl.Int64, "correct": pl.Int64,
                                      "accuracy": pl.Float64, "ci95_low": pl.Float64, "ci95_high": pl.Float64,
                                      "invalid": pl.Int64, "failed": pl.Int64}, orient="row")


def markdown_table(summary) -> str:
    def pct(v):
        return "–" if v is None else f"{100 * v:.1f} %"

    lines = ["| category | questions | correct | accuracy | 95 % CI (Wilson) | invalid | failed |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for r in summary.iter_rows(named=True):
        name = f"**{r['category']}**" if r["category"] == "overall" else r["category"]
        lines.append(f"| {name} | {r['questions']} | {r['correct']} | {pct(r['accuracy'])} | "
                     f"{pct(r['ci95_low'])} – {pct(r['ci95_high'])} | {r['invalid']} | {r['failed']} |")
    return "\n".join(lines)


# -- the results table --------------------------------------------------------------------------------------------
def results_schema() -> dict:
    import polars as pl

    return {
        "run_name": pl.String, "evaluated_at": pl.Datetime("us", "UTC"), "model": pl.String, "baseline": pl.String,
        "context": pl.String, "split": pl.String, "video_id": pl.String, "clip_id": pl.String, "qa_id": pl.String,
        "category": pl.String, "source": pl.String, "verified": pl.Boolean, "question": pl.String,
        "answer": pl.String, "predicted": pl.String, "raw_reply": pl.String, "valid": pl.Boolean,
        "correct": pl.Boolean, "error": pl.String, "n_frames": pl.Int32, "tokens_in": pl.Int64,
        "tokens_out": pl.Int64, "cost_usd": pl.Float64, "cached": pl.Boolean, "attempts": pl.Int32,
        "prompt_version": pl.String,
    }


QUESTIONS_SQL = """
SELECT q.video_id, q.clip_id, q.qa_id, q.category, q.source, q.verified, q.question,
       q.option_a, q.option_b, q.option_c, q.option_d, q.answer, {split} AS split,
       c.start_s, c.end_s, cap.caption
FROM qa_pairs q
{join} splits s USING (video_id)
LEFT JOIN raw_clips c USING (video_id, clip_id)
LEFT JOIN (SELECT video_id, clip_id, caption FROM captions WHERE status = 'ok') cap USING (video_id, clip_id)
WHERE q.kept AND NOT q.grounded {where}
ORDER BY q.video_id, q.clip_id, q.qa_id
"""

TRAIN_LETTERS_SQL = """
SELECT q.answer, count(*) AS n FROM qa_pairs q JOIN splits s USING (video_id)
WHERE q.kept AND NOT q.grounded AND s.split = 'train' GROUP BY 1 ORDER BY n DESC, q.answer
"""


def load_questions(warehouse, split: str = "test"):
    """The kept multiple-choice questions of a split (or all), with their clip's times and caption."""
    tables = set(warehouse.tables())
    if "qa_pairs" not in tables:
        raise EvalError("no qa_pairs in the lake yet (run `fm run PATH` or `fm demo` first)")
    if split != "all" and "splits" not in tables:
        raise EvalError("no splits table in the lake yet; `fm run PATH` builds it after the videos "
                        "(or evaluate everything with --split all)")
    have_splits = "splits" in tables
    sql = QUESTIONS_SQL.format(
        split="s.split" if have_splits else "NULL::VARCHAR",
        join="LEFT JOIN" if split == "all" else "JOIN",
        where="" if split == "all" else "AND s.split = ?",
    )
    if not have_splits:  # --split all without a splits table
        sql = sql.replace("LEFT JOIN splits s USING (video_id)\n", "")
    return warehouse.query(sql, None if split == "all" else [split])


def train_prior(warehouse) -> tuple[str, dict[str, int]]:
    """(the most frequent answer letter of train's kept multiple-choice questions, letter counts)."""
    if "splits" not in set(warehouse.tables()):
        raise EvalError("the blind baseline takes the most frequent answer of the train split, and there is no "
                        "splits table in the lake yet (`fm run PATH` builds it)")
    counts = dict(warehouse.query(TRAIN_LETTERS_SQL).iter_rows())
    if not counts:
        raise EvalError("the blind baseline takes the most frequent answer letter of the train split, and train has "
                        "no kept multiple-choice question (label more videos: about 80 % of them land in train)")
    best = max(LETTERS, key=lambda L: (counts.get(L, 0), -LETTERS.index(L)))
    return best, {L: int(counts.get(L, 0)) for L in LETTERS}


def model_sees_images(llm, model: str) -> bool:
    if llm.vision:
        return True
    try:
        from fm_resources.llm import supports_vision

        return supports_vision(model)
    except Exception:
        return False


# -- the evaluation -----------------------------------------------------------------------------------------------
@dataclass
class EvalOutcome:
    run_name: str
    results: Any  # polars DataFrame, one row per question (the lake table)
    summary: Any  # polars DataFrame, per category + overall
    uri: str
    meta: dict


def default_run_name(model: str, baseline: str | None, context: str, split: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    label = "blind" if baseline == "blind" else model
    tag = baseline or context
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{label}__{tag}__{split}__{stamp}").strip("._-")
    return name.replace("..", "_")


def run_eval(*, model: str | None, llm, lake, warehouse, video_store, instance, split: str = "test",
             baseline: str | None = None, with_caption: bool = False, vision: bool | None = None,
             run_name: str | None = None, limit: int | None = None, progress=None) -> EvalOutcome:
    """Evaluate, write eval_mcq/<run_name>.parquet, record the mcq_eval materialization in the Dagster `instance`;
    returns the outcome. Raises EvalError when it cannot start."""
    import polars as pl

    if split not in SPLIT_CHOICES:
        raise EvalError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, not {split!r}")
    if baseline not in (None, *BASELINES):
        raise EvalError(f"--baseline must be one of {', '.join(BASELINES)}, not {baseline!r}")
    if run_name is not None and (not _RUN_NAME_RE.fullmatch(run_name) or ".." in run_name):
        raise EvalError(f"--run-name {run_name!r}: use letters, digits, '.', '_' and '-' (at most 128, no '..')")
    if baseline != "blind":
        model = model or llm.model
        if not model or model == "template":
            raise EvalError("give a litellm model with --model (e.g. openai/gpt-4o-mini), or --baseline blind")
        if model != llm.model:
            llm = type(llm)(**{**llm.model_dump(), "model": model})

    questions = load_questions(warehouse, split)
    if limit is not None:
        questions = questions.head(limit)
    if not len(questions):
        where = "the lake" if split == "all" else f"the {split} split"
        raise EvalError(f"no kept multiple-choice questions in {where}"
                        + ("" if split == "all" else f" ({_split_counts(warehouse)}); try --split all"))

    if baseline == "blind":
        letter, prior = train_prior(warehouse)
        context, model, use_frames = "prior", "blind", False
    else:
        letter, prior = None, None
        use_frames = baseline != "caption-only" and (vision if vision is not None else model_sees_images(llm, model))
        caption = with_caption or baseline == "caption-only"
        context = ("frames+caption" if caption else "frames") if use_frames else ("caption" if caption else "question")
        llm = type(llm)(**{**llm.model_dump(), "vision": use_frames})  # the resource sends frames only to vision models
    name = run_name or default_run_name(model, baseline, context, split)
    now = datetime.now(UTC)

    def base(q: dict) -> dict:
        return {"run_name": name, "evaluated_at": now, "model": model, "baseline": baseline, "context": context,
                "split": q["split"], "video_id": q["video_id"], "clip_id": q["clip_id"], "qa_id": q["qa_id"],
                "category": q["category"], "source": q["source"], "verified": q["verified"],
                "question": q["question"], "answer": q["answer"], "n_frames": 0, "tokens_in": 0, "tokens_out": 0,
                "cost_usd": 0.0, "cached": False, "attempts": 0, "prompt_version": None, "error": None}

    def scored(row: dict, raw: str | None) -> dict:
        predicted = parse_answer(raw)
        return {**row, "raw_reply": raw, "predicted": predicted, "valid": predicted is not None,
                "correct": predicted is not None and predicted == row["answer"]}

    qs = list(questions.iter_rows(named=True))
    rows: list[dict] = []
    if baseline == "blind":
        rows = [scored({**base(q), "prompt_version": f"blind@train:{letter}"}, letter) for q in qs]
    else:
        from fm_resources.llm import LLMFailure

        def frames_of(clip: tuple[str, str, float, float]) -> list[bytes]:
            from fm_resources.registry import lookup_video
            from fm_resources.video import keyframes

            video_id, _, start_s, end_s = clip
            path = video_store.fetch(lookup_video(video_id, lake)["uri"])
            return pick_frames(keyframes(path, None, start_s, end_s, 1.0, llm.frame_max_side), llm.max_frames)

        def ask(item: tuple[dict, list[bytes] | BaseException]) -> dict:
            q, frames = item
            row = base(q)
            if isinstance(frames, BaseException):
                return {**row, "raw_reply": None, "predicted": None, "valid": False, "correct": False,
                        "error": f"frames: {frames!r}"[:500]}
            messages, version = build_messages(q, context, len(frames), q["caption"])
            row.update(prompt_version=version, n_frames=len(frames))
            try:
                reply = llm.complete(lake, messages, None, version, frames)
            except LLMFailure as exc:
                return {**row, "raw_reply": None, "predicted": None, "valid": False, "correct": False,
                        "error": f"{exc.reason}: {exc.detail}"[:500], "attempts": exc.attempts}
            row.update(tokens_in=reply.tokens_in, tokens_out=reply.tokens_out, cost_usd=reply.cost_usd,
                       cached=reply.cached, attempts=reply.attempts)
            return scored(row, reply.value)

        # clips in batches of `concurrency`: their frames are decoded (in parallel) and their questions asked (in
        # parallel), so at most one batch of clips' frames is held in memory
        by_clip: dict[tuple, list[dict]] = {}
        for q in qs:
            by_clip.setdefault((q["video_id"], q["clip_id"], q["start_s"], q["end_s"]), []).append(q)
        clips = list(by_clip)
        step = max(1, llm.concurrency)
        for i in range(0, len(clips), step):
            batch = clips[i:i + step]
            frames = llm.map(frames_of, batch) if use_frames else [[] for _ in batch]
            items = [(q, f) for clip, f in zip(batch, frames) for q in by_clip[clip]]
            for (q, _), out in zip(items, llm.map(ask, items)):
                if isinstance(out, BaseException):  # a bug, not a model failure: keep the row, say what happened
                    out = {**base(q), "raw_reply": None, "predicted": None, "valid": False, "correct": False,
                           "error": f"crashed: {out!r}"[:500]}
                rows.append(out)
                if progress is not None:
                    progress(1)

    schema = results_schema()
    results = pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema, orient="row")
    summary = summarize(results)
    uri = lake.write_parquet(f"eval_mcq/{name}.parquet", results)
    overall = summary.filter(pl.col("category") == "overall").row(0, named=True)
    per_cat = summary.filter(pl.col("category") != "overall")["accuracy"].drop_nulls()
    meta = {
        "run_name": name, "model": model, "baseline": baseline, "context": context, "split": split,
        "prompt_version": None if baseline == "blind" else prompt_sections()[1],
        "questions": overall["questions"], "correct": overall["correct"], "accuracy": overall["accuracy"],
        "ci95_low": overall["ci95_low"], "ci95_high": overall["ci95_high"],
        "macro_accuracy": float(per_cat.mean()) if len(per_cat) else None,
        "invalid": overall["invalid"], "failed": overall["failed"],
        "tokens_in": int(results["tokens_in"].sum() or 0), "tokens_out": int(results["tokens_out"].sum() or 0),
        "cost_usd": float(results["cost_usd"].sum() or 0.0), "cached": int(results["cached"].sum() or 0),
        "path": uri, "train_prior": prior, "blind_letter": letter,
    }
    record_in_dagster(instance, meta, summary)
    return EvalOutcome(name, results, summary, uri, meta)


def _split_counts(warehouse) -> str:
    try:
        df = warehouse.query("SELECT split, count(*) AS n FROM splits GROUP BY 1 ORDER BY 1")
        return "videos per split: " + ", ".join(f"{s} {n}" for s, n in df.iter_rows()) if len(df) else "no videos"
    except Exception:
        return "no splits table"


def record_in_dagster(instance, meta: dict, summary) -> None:
    """A runless AssetMaterialization of `mcq_eval`: the eval wrote a new lake table, so it is a materialization
    (not an observation); numbers are float/int metadata (the UI plots them over time), the categories a table."""
    from dagster import AssetMaterialization, MetadataValue

    acc = meta["accuracy"]
    how = f"{meta['baseline']} baseline" if meta["baseline"] else f"sees {meta['context']}"
    description = (f"{meta['model']} ({how}) on split {meta['split']}: {meta['correct']}/{meta['questions']} correct"
                   + ("" if acc is None else f" ({100 * acc:.1f} %)"))
    metadata = {
        "run_name": meta["run_name"], "model": meta["model"], "baseline": meta["baseline"] or "none",
        "context": meta["context"], "split": meta["split"], "prompt_version": meta["prompt_version"] or "none",
        "questions": meta["questions"], "correct": meta["correct"],
        "accuracy": MetadataValue.float(float(acc or 0.0)),
        "ci95_low": MetadataValue.float(float(meta["ci95_low"] or 0.0)),
        "ci95_high": MetadataValue.float(float(meta["ci95_high"] or 0.0)),
        "macro_accuracy": MetadataValue.float(float(meta["macro_accuracy"] or 0.0)),
        "invalid": meta["invalid"], "failed": meta["failed"],
        "tokens_in": meta["tokens_in"], "tokens_out": meta["tokens_out"],
        "cost_usd": MetadataValue.float(meta["cost_usd"]),
        "by_category": MetadataValue.md(markdown_table(summary)),
        "path": MetadataValue.path(meta["path"]),
        "query": MetadataValue.md(f"`fm sql \"select * from eval_mcq where run_name = '{meta['run_name']}'\"`"),
    }
    if meta["train_prior"] is not None:
        metadata["train_prior"] = MetadataValue.json(meta["train_prior"])
    instance.report_runless_asset_event(AssetMaterialization(
        asset_key=ASSET_KEY, description=description, metadata=metadata))
