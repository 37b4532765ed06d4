"""Every `fm` command and subcommand prints its help (argparse formats help strings, so a stray % breaks it)."""

import pytest

from fm_assets.cli import main

COMMANDS = [[], ["demo"], ["run"], ["sql"], ["db"], ["compact"], ["export"], ["ui"], ["eval"], ["eval", "mcq"],
            ["eval", "grounded"], ["eval", "mot"], ["eval", "labels"]]


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c) or "fm" for c in COMMANDS])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fm") and len(out) > 100


def loaded_after(argv: list[str]) -> set[str]:
    """The fm_assets modules a fresh interpreter has loaded after `fm ARGV --help`."""
    import subprocess
    import sys

    code = ("import sys\nfrom fm_assets.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(m for m in sys.modules if m.startswith('fm_assets')))")
    p = subprocess.run([sys.executable, "-c", code, *argv, "--help"], capture_output=True, text=True, check=True)
    return {line for line in p.stdout.splitlines() if line.startswith("fm_assets")}


@pytest.mark.parametrize("argv", [["run"], ["sql"], []], ids=["run", "sql", "fm"])
def test_a_command_loads_only_its_own_code(argv):
    loaded = loaded_after(argv)
    assert "fm_assets.cli" in loaded
    assert not {m for m in loaded if m.startswith(("fm_assets.evaluation", "fm_assets.export", "fm_assets.cli.eval"))}


def test_eval_loads_the_evaluation_code():
    assert {"fm_assets.cli.eval_mot", "fm_assets.cli.eval_labels", "fm_assets.evaluation.mot"} <= loaded_after(["eval"])


def test_the_fm_executable_sets_the_garbage_collector_for_loading_then_working():
    """`fm` (pyproject's script) is entry_point(): main() loading with a larger first GC threshold (collection stays
    on), then, once loaded(), what it loaded frozen and the default pace back; the heap frozen at its end, so that
    interpreter shutdown does not walk it. main() itself, which tests call in-process, leaves the collector alone."""
    import gc
    import subprocess
    import sys
    from pathlib import Path

    from fm_assets import cli

    script = Path(sys.executable).with_name("fm").read_text()  # what pip wrote for pyproject's [project.scripts]
    assert "from fm_assets.cli import entry_point" in script and "sys.exit(entry_point())" in script
    code = ("import gc, sys\nfrom fm_assets import cli\ndefault = gc.get_threshold()\n"
            "def fake_main():\n    print(gc.get_threshold()[0], gc.isenabled(), gc.get_freeze_count())\n"
            "    cli.loaded()\n    print(gc.get_threshold() == default, gc.get_freeze_count())\n    return 3\n"
            "cli.main = fake_main\nrc = cli.entry_point()\nprint(gc.get_freeze_count() > 0)\nsys.exit(rc)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 3, p.stderr  # main's exit code is the process's
    loading, working, at_exit = p.stdout.split("\n")[:3]
    threshold, enabled, frozen = loading.split()
    assert int(threshold) == cli.LOADING_GC_THRESHOLD and enabled == "True" and frozen == "0"
    back_to_default, frozen = working.split()
    assert back_to_default == "True" and int(frozen) > 1000  # at least the modules loaded so far
    assert at_exit == "True"
    threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
    with pytest.raises(SystemExit):
        main(["--help"])
    cli.loaded()  # in-process (as fm_assets.cli.run.run_videos calls it in the tests): nothing changes
    assert gc.get_threshold() == threshold and gc.get_freeze_count() == frozen
