"""Benchmark: the `mmdet` detector backend on a GPU (issue 14): frames per second of `MMDetDetector.detect_clip` at
batch 1, 8 and 32, in float32 and under float16 autocast, then `fm run` end to end with the mmdet detector against
PyAV decode-only time of the same video.

The model is a real mmdet config (default `rtmdet_tiny_8xb32-300e_coco`, any packaged config name or file works)
with random weights this script makes and saves as an mmengine checkpoint (no weights can be downloaded on the
machines this runs on). The network's cost does not depend on the weights' values; what follows it (NMS, mask
decoding) does a little, through the number of boxes over `--score-thr`. Frames: a real video (default
../shared/data/videos/TUD-Campus.mp4, 640x480), decoded once with fm_resources.video.decode and converted to RGB
before timing; each setting runs once to warm up (cuDNN autotuning, allocator) and then `--repeats` times over
the frames, with torch.cuda.synchronize() around each pass.

Without CUDA it says so and exits 0 (nothing measured). `--device cpu` runs the same code on the CPU (no fp16),
with `--batches 1 2 --frames 8` a quick check that the script works.

    .venv/bin/python bench/gpu_detector.py --markdown
    .venv/bin/python bench/gpu_detector.py --config rtmdet_s_8xb32-300e_coco --frames 512 --json /tmp/gpu.json
    .venv/bin/python bench/gpu_detector.py --device cpu --batches 1 2 --frames 8 --no-e2e
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine  # bench/machine.py (bench/ is the script folder, first on sys.path)

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
DEFAULT_VIDEO = ROOT.parent / "shared" / "data" / "videos" / "TUD-Campus.mp4"
FM = ROOT / ".venv" / "bin" / "fm"


def frames_of(video: Path, n: int) -> list:
    """n RGB frames of the video (repeated from the start when it is shorter)."""
    from fm_resources.video import decode

    frames = [f.rgb() for f in decode(video)]
    if not frames:
        raise SystemExit(f"{video}: no frames")
    return [frames[i % len(frames)] for i in range(n)]


def decode_only_s(video: Path) -> float:
    import av

    started = time.perf_counter()
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for _ in container.decode(stream):
            pass
    return time.perf_counter() - started


def throughput(config: str, ckpt: str, device: str, batch: int, fp16: bool, frames: list, repeats: int,
               score_thr: float) -> dict:
    import torch

    from fm_resources.detection.mmdet import MMDetDetector

    det = MMDetDetector(config, ckpt, device=device, batch_size=batch, fp16=fp16, score_thr=score_thr)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    det.detect_clip(frames[:max(batch, 1) * 2])  # warm-up
    sync()
    times = []
    boxes = 0
    for _ in range(repeats):
        started = time.perf_counter()
        out = det.detect_clip(frames)
        sync()
        times.append(time.perf_counter() - started)
        boxes = sum(len(d) for d in out)
    best = min(times)
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    return {"batch": batch, "fp16": fp16, "frames": len(frames), "best_s": best, "frames_per_s": len(frames) / best,
            "boxes": boxes, "peak_mib": peak}


def end_to_end(video: Path, config: str, ckpt: str, device: str, batch: int, fp16: bool, base: Path) -> dict:
    """`fm run` on the one video, fresh FM_HOME, mmdet detector with these settings; wall seconds."""
    folder = base / "e2e-videos"
    folder.mkdir(exist_ok=True)
    (folder / video.name).unlink(missing_ok=True)
    (folder / video.name).symlink_to(video.resolve())
    run_config = base / "detector.yaml"
    run_config.write_text(json.dumps({"resources": {"detector": {"config": {
        "backend": "mmdet", "mmdet_config": config, "mmdet_checkpoint": ckpt, "device": device,
        "batch_size": batch, "fp16": fp16}}}}))  # JSON is YAML
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FM_", "DAGSTER_"))}
    env.update(FM_HOME=str(base / f"home-{batch}-{int(fp16)}"), LITELLM_LOCAL_MODEL_COST_MAP="True")
    started = time.perf_counter()
    p = subprocess.run([str(FM), "run", str(folder), "-q", "--config", str(run_config)], env=env,
                       capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - started
    if p.returncode:
        raise SystemExit(f"fm run with the mmdet detector failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return {"batch": batch, "fp16": fp16, "fm_run_s": seconds, "closing": p.stderr.strip().splitlines()[-1]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="rtmdet_tiny_8xb32-300e_coco", help="mmdet config name or file")
    ap.add_argument("--video", type=Path, default=DEFAULT_VIDEO)
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--frames", type=int, default=256, help="frames per timed pass")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--score-thr", type=float, default=0.3)
    ap.add_argument("--no-e2e", action="store_true", help="skip the `fm run` end-to-end runs")
    ap.add_argument("--json")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"no CUDA device here (torch {torch.__version__}, cuda available: False): nothing measured. "
              "Run this on a machine with a GPU, or use --device cpu.")
        return 0
    if not args.video.exists():
        print(f"{args.video} not found: pass --video (../shared/data holds TUD-Campus.mp4)", file=sys.stderr)
        return 2
    from fm_resources.detection.mmdet import build_random_model, save_checkpoint

    base = Path(tempfile.mkdtemp(prefix="fm-bench-gpu-"))
    ckpt = save_checkpoint(build_random_model(args.config), base / "random.pth", classes=None)
    frames = frames_of(args.video, args.frames)
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else None
    result: dict = {"machine": machine.machine_facts(torch=torch.__version__, GPU=gpu or "none"),
                    "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "command": " ".join(["bench/gpu_detector.py", *argv]), "config": args.config,
                    "video": str(args.video), "device": args.device, "decode_only_s": decode_only_s(args.video)}
    precisions = [False, True] if args.device.startswith("cuda") else [False]
    result["throughput"] = [throughput(args.config, ckpt, args.device, b, fp16, frames, args.repeats, args.score_thr)
                            for fp16 in precisions for b in args.batches]
    for r in result["throughput"]:
        print(f"batch {r['batch']:3d} {'fp16' if r['fp16'] else 'fp32'}: {r['frames_per_s']:8.1f} frames/s "
              f"({r['frames']} frames in {r['best_s']:.3f} s, {r['boxes']} boxes"
              + (f", peak {r['peak_mib']:.0f} MiB)" if r["peak_mib"] is not None else ")"), flush=True)
    if not args.no_e2e:
        best = max(result["throughput"], key=lambda r: r["frames_per_s"])
        result["end_to_end"] = end_to_end(args.video, args.config, ckpt, args.device, best["batch"], best["fp16"], base)
        e = result["end_to_end"]
        print(f"fm run, mmdet batch {e['batch']} {'fp16' if e['fp16'] else 'fp32'}: {e['fm_run_s']:.1f} s "
              f"(decode-only {result['decode_only_s']:.2f} s: {e['fm_run_s'] / result['decode_only_s']:.0f}x); "
              f"{e['closing']}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    if args.markdown:
        print(machine.run_header(result, f"Model: `{args.config}`, random weights; video {args.video.name}."))
        print("| batch | precision | frames/s | peak MiB |\n|--:|---|--:|--:|")
        for r in result["throughput"]:
            peak = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "-"
            print(f"| {r['batch']} | {'fp16' if r['fp16'] else 'fp32'} | {r['frames_per_s']:.1f} | {peak} |")
        if "end_to_end" in result:
            e = result["end_to_end"]
            print(f"\n`fm run` end to end with the mmdet detector (batch {e['batch']}, "
                  f"{'fp16' if e['fp16'] else 'fp32'}): {e['fm_run_s']:.1f} s; PyAV decode-only "
                  f"{result['decode_only_s']:.2f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
