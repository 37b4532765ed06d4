"""`fm export`: the lake to LLaMA-Factory, FoundationMotion, GroundMoRe or MOTChallenge files."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def cmd_export(args) -> int:
    import polars as pl

    from fm_assets import export as exports
    from fm_assets.definitions import defs
    from fm_assets.labels.hygiene import CAPTION_TEXT, QUESTION_TEXT, sql_filter
    from fm_resources.registry import GONE_STATUSES

    wh = defs.resources["warehouse"]
    lake = defs.resources["lake"]
    tables = wh.tables()
    out = Path(args.out_dir)
    if args.format == "mot":
        if "tracks" not in tables:
            print("fm export: no tracks in the lake yet (run `fm run PATH --until tracks` first)", file=sys.stderr)
            return 1
        ids = wh.query("select video_id from videos where status = 'ok' order by 1")["video_id"].to_list()
        manifest = exports.export_mot(wh.query("select * from tracks"), ids, out, interpolate=not args.no_interpolate)
        print(f"wrote {manifest['n_files']} file(s) to {out} (manifest: {out / 'manifest.json'})")
        if args.no_interpolate:
            print("fm export mot: --no-interpolate: only the frames the tracker saw (every k-th frame, by the "
                  "detections' sample_fps) are written; scored against ground truth on every frame, the frames in "
                  "between count as misses (MOTA drops by about 1 - 1/k)", file=sys.stderr)
        return 0
    needs = {"llamafactory": ("raw_clips", "tracks", "qa_pairs"),
             "fm-json": ("raw_clips", "trajectories", "captions", "qa_pairs"),
             "groundmore": ("raw_clips", "tracks", "qa_pairs")}[args.format]
    missing = [t for t in needs if t not in tables]
    if missing:
        print(f"fm export {args.format}: no {', '.join(missing)} in the lake yet (run `fm run PATH` first)",
              file=sys.stderr)
        return 1
    if "splits" not in tables:  # tables() lists a view whose files exist: splits/all.parquet
        print(f"fm export {args.format}: no splits table in the lake yet; train / val / test come from the `splits` "
              "asset, which `fm run PATH` materializes after the videos: run `fm run` first", file=sys.stderr)
        return 1
    live = ("video_id NOT IN (SELECT video_id FROM videos WHERE status IN ("
            + ", ".join(f"'{s}'" for s in GONE_STATUSES) + "))")
    splits = wh.query(f"select * from splits where {live}")
    source = exports.lake_sources(lake, defs.resources["video_store"])
    # flagged text (instruction-like, markup, URLs: labels/hygiene.py) and retired videos stay out of exports
    qa = wh.query(f"select * from qa_pairs where {sql_filter(QUESTION_TEXT)} and {live}")
    n_flagged = wh.query(f"select count(*) as n from qa_pairs where not ({sql_filter(QUESTION_TEXT)})")["n"][0]
    if n_flagged:
        print(f"fm export {args.format}: {n_flagged} question(s) left out: instruction-like text, markup or a URL "
              "(see `fm sql -f sql/checks/qa_text_hygiene.sql`)", file=sys.stderr)
    clips = wh.query("select * from raw_clips")
    try:
        if args.format == "llamafactory":
            manifest = exports.export_llamafactory(qa, clips, wh.query("select * from tracks"), splits, source, out)
        elif args.format == "fm-json":
            manifest = exports.export_fm_json(qa, clips, wh.query("select * from trajectories"),
                                              wh.query(f"select * from captions where {sql_filter(CAPTION_TEXT)}"),
                                              splits, source, out)
        else:
            dets = pl.DataFrame()
            if "detections" in tables:
                dets = wh.query("select clip_id, frame_idx, x1, y1, x2, y2, mask_rle from detections "
                                "where mask_rle is not null and clip_id in "
                                "(select clip_id from qa_pairs where kept and grounded)")
            manifest = exports.export_groundmore(qa, clips, wh.query("select * from tracks"), dets, splits, source,
                                                 out, fps=args.fps)
    except exports.ExportError as exc:
        print(f"fm export {args.format}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {manifest['n_files']} file(s) to {out} (manifest: {out / 'manifest.json'})")
    print(f"counts: {json.dumps(manifest['counts'])}")
    for s in manifest["skipped"]:
        print(f"fm export {args.format}: skipped {s['clip_id']}: {s['reason']}", file=sys.stderr)
    if manifest["skipped"]:
        print(f"fm export {args.format}: {len(manifest['skipped'])} clip(s) skipped, the rest written "
              f"(reasons under 'skipped' in {out / 'manifest.json'})", file=sys.stderr)
    return 0
