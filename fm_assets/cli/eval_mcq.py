"""`fm eval mcq`: ask a model the multiple-choice questions of a split and print the accuracy per category."""

from __future__ import annotations

import json
import sys

from fm_assets.cli.console import console
from fm_assets.cli.lake import write_duckdb
from fm_assets.evaluation.mcq import ASSET_KEY, BASELINES, SPLIT_CHOICES, EvalError, run_eval
from fm_resources.instance import dagster_instance


# -- the command ----------------------------------------------------------------------------------------------------
def cmd_mcq(args) -> int:
    err = lambda m: print(f"fm eval mcq: {m}", file=sys.stderr)
    vision = True if args.vision else False if args.text_only else None
    if args.baseline == "caption-only" and args.vision:
        err("--baseline caption-only never shows frames; drop --vision")
        return 2
    if args.baseline == "blind" and (args.vision or args.with_caption):
        err("--baseline blind asks no model; --vision / --with-caption do not apply")
        return 2
    from fm_assets.definitions import defs

    llm = defs.resources["llm"]
    overrides = {k: v for k, v in (("api_base", args.api_base), ("concurrency", args.concurrency)) if v is not None}
    if args.no_cache:
        overrides["cache"] = False
    if overrides:
        llm = type(llm)(**{**llm.model_dump(), **overrides})
    con = console()
    try:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("asking"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      disable=not sys.stderr.isatty() or args.baseline == "blind", transient=True) as bar:
            task = bar.add_task("asking", total=None)
            outcome = run_eval(model=args.model, split=args.split, baseline=args.baseline,
                               with_caption=args.with_caption, vision=vision, run_name=args.run_name,
                               limit=args.limit, llm=llm, lake=defs.resources["lake"],
                               warehouse=defs.resources["warehouse"], video_store=defs.resources["video_store"],
                               instance=dagster_instance(), progress=lambda n: bar.advance(task, n))
    except EvalError as exc:
        err(str(exc))
        return 1
    meta, summary = outcome.meta, outcome.summary
    try:
        write_duckdb()  # so $FM_HOME/fm.duckdb (DuckDB clients, BI tools) has the eval_mcq view too
    except Exception as exc:
        err(f"could not refresh fm.duckdb ({exc}); `fm sql` sees the results anyway")
    if args.format == "json":
        sys.stdout.write(json.dumps({**meta, "categories": summary.to_dicts()}, default=str, indent=1) + "\n")
    else:
        from rich.table import Table

        def pct(v):
            return "–" if v is None else f"{100 * v:.1f}%"

        if meta["baseline"] == "blind":
            title = f"blind baseline (always {meta['blind_letter']}, the train split's most frequent answer)"
        elif meta["baseline"]:
            title = f"{meta['model']}, {meta['baseline']} baseline"
        else:
            title = f"{meta['model']}, sees {meta['context']}"
        table = Table(title=f"{title}; split {meta['split']}")
        for c in ("category", "questions", "correct", "accuracy", "95% CI (Wilson)", "invalid", "failed"):
            table.add_column(c, justify="left" if c == "category" else "right")
        for r in summary.iter_rows(named=True):
            table.add_row(r["category"], str(r["questions"]), str(r["correct"]), pct(r["accuracy"]),
                          f"{pct(r['ci95_low'])} – {pct(r['ci95_high'])}", str(r["invalid"]), str(r["failed"]))
        con.print(table)
        if meta["baseline"] == "blind":
            con.print(f"blind baseline: always {meta['blind_letter']} (train answer letters: {meta['train_prior']})")
            if meta["split"] in ("train", "all"):
                con.print("note: the evaluated questions include the train split the prior was counted on")
        if meta["macro_accuracy"] is not None:
            con.print(f"macro accuracy (mean over categories): {pct(meta['macro_accuracy'])}")
        bad = outcome.results.filter(~outcome.results["valid"] & outcome.results["error"].is_null())
        for r in bad.head(5).iter_rows(named=True):
            con.print(f"invalid reply to {r['qa_id']}: {r['raw_reply']!r}")
        if len(bad) > 5:
            con.print(f"... {len(bad) - 5} more invalid replies (column raw_reply)")
        cost = f", cost ${meta['cost_usd']:.4f}" if meta["cost_usd"] else ""
        if meta["baseline"] != "blind":
            con.print(f"tokens {meta['tokens_in']} in / {meta['tokens_out']} out{cost}; replies from the cache: "
                      f"{meta['cached']} of {meta['questions']}")
        con.print(f"results: {outcome.uri}\n"
                  f"  query: fm sql \"select * from eval_mcq where run_name = '{outcome.run_name}'\"\n"
                  f"  Dagster: materialization of asset {ASSET_KEY} (fm ui -> Assets -> {ASSET_KEY})")
    if meta["failed"]:
        failed = outcome.results.filter(outcome.results["error"].is_not_null())
        err(f"{meta['failed']} question(s) got no reply and count as wrong (first: {failed['error'][0]}); "
            "run again to retry them (replies already got come from the cache)")
        return 1
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "mcq", help="ask a litellm model the multiple-choice questions of a split; accuracy per category with 95%% CI",
        description="Ask any litellm model the lake's kept multiple-choice questions (vision models see a frame "
                    "per second of the clip) and score the replies strictly (one letter A-D). Results: "
                    "eval_mcq/<run_name>.parquet in the lake (view eval_mcq) and the asset mcq_eval in `fm ui`.")
    p.add_argument("--model", help="litellm model string (default FM_LLM_MODEL), e.g. openai/gpt-4o-mini, "
                                   "hosted_vllm/Qwen/Qwen2.5-VL-7B-Instruct")
    p.add_argument("--split", choices=SPLIT_CHOICES, default="test", help="which videos' questions (default test)")
    p.add_argument("--baseline", choices=BASELINES,
                   help="blind: always the train split's most frequent answer letter (no model); "
                        "caption-only: the model sees the caption and the options, no frames")
    p.add_argument("--with-caption", action="store_true", help="also give the model the clip's caption")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--vision", action="store_true", help="send frames (1 per second) even if litellm does not "
                                                            "know the model takes images")
    mode.add_argument("--text-only", action="store_true", help="never send frames")
    p.add_argument("--run-name", help="name of the results file eval_mcq/<run_name>.parquet (default: model, "
                                      "mode, split and UTC time); an existing one is replaced")
    p.add_argument("--limit", type=int, help="only the first N questions (by video, clip, qa_id)")
    p.add_argument("--api-base", help="the model's base URL (default: the llm resource's, or FM_LLM_API_BASE)")
    p.add_argument("--concurrency", type=int, help="requests in flight (default: the llm resource's, 4)")
    p.add_argument("--no-cache", action="store_true", help="ask again even when the lake's cache has the reply")
    p.add_argument("--format", choices=["table", "json"], default="table", help="how to print the summary")
    p.set_defaults(func=cmd_mcq)
