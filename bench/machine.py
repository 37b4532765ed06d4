"""The machine a benchmark ran on, recorded with every figure (shared by the bench scripts)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def machine_facts(**versions: str) -> dict:
    """CPUs, lscpu's model, RAM, Python, the given package versions and the load average at start."""
    facts = {"nproc": len(os.sched_getaffinity(0)), "python": platform.python_version(),
             "platform": platform.platform(), "versions": versions,
             "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        kv = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        facts["lscpu"] = {k: kv[k].strip() for k in ("Model name", "CPU(s)", "Thread(s) per core", "Hypervisor vendor")
                          if k in kv}
    except (OSError, subprocess.SubprocessError):
        facts["lscpu"] = {}
    try:
        mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal:"))
        facts["ram_gib"] = round(int(mem.split()[1]) / 1024**2, 1)
    except (OSError, StopIteration):
        facts["ram_gib"] = None
    return facts


def machine_line(f: dict) -> str:
    cpu = f["lscpu"]
    versions = ", ".join(f"{name} {v}" for name, v in f["versions"].items())
    return (f"{f['nproc']} CPUs available (lscpu: CPU(s) {cpu.get('CPU(s)', '?')}, {cpu.get('Model name', '?')}, "
            f"hypervisor {cpu.get('Hypervisor vendor', '-')}), {f['ram_gib']} GiB RAM; Python {f['python']}"
            f"{', ' + versions if versions else ''}; load average at start {f['loadavg_at_start']}")


def run_header(result: dict, what: str) -> str:
    """How a BENCHMARKS.md entry starts: the command, the machine, when it started ({"command", "machine",
    "started"} of a bench's result), then `what` ran."""
    return (f"\nCommand: `.venv/bin/python {result['command']}`\n\nMachine: {machine_line(result['machine'])}; "
            f"started {result['started']}. {what}\n")


def rounds_table(times: dict[str, list[float]], unit: str = "ms a frame",
                 extra: tuple[str, dict[str, str]] | None = None) -> str:
    """Markdown: a row per way, with its figure in each round (alternated rounds) and the best; `extra`: another
    column (its title, its value per way)."""
    title, values = extra or ("", {})
    lines = [f"| way | {unit} (each round) | best |" + (f" {title} |" if extra else ""),
             "|---|---|--:|" + ("---|" if extra else "")]
    for name, figures in times.items():
        lines.append(f"| {name} | {', '.join(f'{x:.3f}' for x in figures)} | {min(figures):.3f} |"
                     + (f" {values[name]} |" if extra else ""))
    return "\n".join(lines)
