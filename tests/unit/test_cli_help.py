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
