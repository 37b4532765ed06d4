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
