"""The layout holds: the labeling core is pure (no Dagster, no fm_resources, no synthetic, no evaluation, export
or CLI), the packages import each other without cycles, nothing imports the CLI, only settings.py reads the
environment (and never at import), and each stage's Dagster Config is generated from its parameters dataclass."""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fm_assets", "fm_resources")


def modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def area(module: str) -> str | None:
    """The package a module belongs to, as the architecture names them."""
    parts = module.split(".")
    if parts[0] == "fm_resources":
        return "fm_resources.detection" if parts[1:2] == ["detection"] else "fm_resources"
    if parts[0] == "fm_assets":
        if len(parts) == 1:
            return None  # the top package's docstring
        if parts[1] in ("labels", "defs", "evaluation", "export", "synthetic", "cli"):
            return f"fm_assets.{parts[1]}"
        return module  # fm_assets.definitions
    return None


MODULES = modules()
CORE = {m: p for m, p in MODULES.items() if m.startswith("fm_assets.labels")}


def test_the_core_imports_neither_dagster_nor_fm_resources_nor_the_outer_packages():
    assert len(CORE) >= 10
    forbidden = ("dagster", "fm_resources", "fm_assets.defs", "fm_assets.definitions", "fm_assets.synthetic",
                 "fm_assets.evaluation", "fm_assets.export", "fm_assets.cli")
    bad = {m: sorted(i for i in imports(p) if i.split(".")[0] == "dagster" or i.startswith(forbidden))
           for m, p in CORE.items()}
    assert not {m: b for m, b in bad.items() if b}


def test_importing_the_whole_core_loads_no_dagster_and_no_resources():
    """The same, at run time: a fresh interpreter imports every core module and nothing pulls dagster in."""
    code = ("import sys\n" + "".join(f"import {m}\n" for m in sorted(CORE))
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dagster', 'fm_resources')"
              " or m.startswith(('fm_assets.defs', 'fm_assets.synthetic', 'fm_assets.cli'))))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for m, p in MODULES.items():
        src = area(m)
        if src is None:
            continue
        graph.setdefault(src, set())
        for i in imports(p):
            dst = area(i) if i.split(".")[0] in PACKAGES else None
            if dst is not None and dst != src and dst in {area(x) for x in MODULES}:
                graph[src].add(dst)
    return graph


def test_the_packages_import_each_other_without_a_cycle():
    graph = package_graph()
    assert {"fm_assets.labels", "fm_assets.defs", "fm_assets.cli", "fm_resources", "fm_resources.detection"} <= set(graph)
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_nothing_imports_the_cli_and_the_core_never_imports_the_generator():
    graph = package_graph()
    assert not [src for src, dsts in graph.items() if "fm_assets.cli" in dsts]
    assert "fm_assets.synthetic" not in graph["fm_assets.labels"]
    assert "fm_assets.labels" in graph["fm_assets.synthetic"]  # the generator speaks the core's vocabulary


def env_reads(path: Path) -> list[tuple[int, bool]]:
    """(line, at module level) of every os.environ / os.getenv use in a file."""
    tree = ast.parse(path.read_text())
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            in_function |= {id(n) for n in ast.walk(node)}
    return [(node.lineno, id(node) not in in_function) for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "os"
            and node.attr in ("environ", "getenv", "putenv")]


def test_only_settings_reads_the_environment_and_never_at_import():
    settings = ROOT / "fm_resources" / "settings.py"
    others = {m: env_reads(p) for m, p in MODULES.items() if p != settings}
    assert not {m: r for m, r in others.items() if r}
    reads = env_reads(settings)
    assert reads and not [line for line, top in reads if top]


def test_settings_are_read_when_the_definitions_are_built(monkeypatch, tmp_path):
    from fm_assets.definitions import build_defs

    monkeypatch.setenv("FM_HOME", str(tmp_path))
    monkeypatch.setenv("FM_BACKFILL_BATCH", "7")
    monkeypatch.setenv("FM_BACKFILL_CRON", "15 1 * * *")
    monkeypatch.setenv("FM_COMPACT_CRON", "45 2 * * *")
    defs = build_defs()
    graph = defs.resolve_asset_graph()
    assert graph.get(next(k for k in graph.get_all_asset_keys() if k.path == ["tracks"])).backfill_policy \
        .max_partitions_per_run == 7
    assert next(s for s in defs.schedules if s.name == "nightly_compaction").cron_schedule == "45 2 * * *"
    assert "15 1 * * *" in next(s for s in defs.sensors if s.name == "nightly_backfill").description


STAGES = [("fm_assets.defs.ingest", "ClipConfig", "fm_assets.labels.clipping", "ClipParams"),
          ("fm_assets.defs.perception", "DetectionConfig", "fm_assets.labels.tracking", "DetectionParams"),
          ("fm_assets.defs.motion", "TrajectoryConfig", "fm_assets.labels.motion_facts", "TrajectoryParams"),
          ("fm_assets.defs.language", "QAConfig", "fm_assets.labels.qa", "QAParams"),
          ("fm_assets.defs.dataset", "SplitsConfig", "fm_assets.labels.splits", "SplitParams")]


@pytest.mark.parametrize(("config_module", "config", "params_module", "params"), STAGES,
                         ids=[s[1] for s in STAGES])
def test_each_stage_config_has_every_parameter_with_its_default(config_module, config, params_module, params):
    import importlib

    cfg_cls = getattr(importlib.import_module(config_module), config)
    par_cls = getattr(importlib.import_module(params_module), params)
    fields = dataclasses.fields(par_cls)
    assert list(cfg_cls.model_fields) == [f.name for f in fields]
    assert cfg_cls().to_params() == par_cls()  # same defaults, round trip
    for f in fields:
        assert cfg_cls.model_fields[f.name].description == (f.metadata.get("description") or None), f.name


def test_a_config_value_reaches_the_core_and_bounds_are_enforced_both_ways():
    from fm_assets.defs.ingest import ClipConfig
    from fm_assets.defs.language import QAConfig
    from fm_assets.labels.clipping import ClipParams

    assert ClipConfig(max_clip_s=8.0).to_params() == ClipParams(max_clip_s=8.0)
    assert QAConfig(category_weights={"repetition_count": 1.0}).to_params().category_weights == (("repetition_count", 1.0),)
    with pytest.raises(ValueError, match="max_clip_s"):
        ClipConfig(min_clip_s=8, max_clip_s=6)  # the dataclass's own cross-field check, at config time
    with pytest.raises(ValueError, match="greater than 0"):
        ClipConfig(min_clip_s=0)
    with pytest.raises(ValueError, match="min_clip_s must be > 0"):
        ClipParams(min_clip_s=0)  # the same bound when the core is called directly


def test_each_stage_has_its_own_code_version_from_its_files():
    """Dagster's staleness follows these: a stage's version changes with its own files (and the shared core), never
    with another stage's files, the CLI or the checks."""
    from fm_assets.defs import versions

    stages = {a: versions.code_version(a) for a in ("videos", "raw_clips", "detections", "tracks", "trajectories",
                                                    "captions", "qa_pairs", "splits")}
    assert stages["videos"] == stages["raw_clips"]  # one multi-asset step
    assert len(set(stages.values())) == 7
    tracker = {f.name for f in versions._files(versions.STAGE_FILES["tracks"])}
    assert "trackers.py" in tracker and "motion.py" not in tracker
    every = {str(f) for s in versions.STAGE_FILES.values() for f in versions._files(versions.COMMON + s)}
    assert not any("/cli/" in f or f.endswith(".sql") or "settings.py" in f for f in every)
    with pytest.raises(KeyError):
        versions.code_version("nonesuch")
