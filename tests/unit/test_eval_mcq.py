"""`fm eval mcq`'s pure parts: strict parsing of the model's reply, Wilson intervals, the argument parser. Whole
evaluations of a small lake against the test server: tests/assets/test_eval_mcq.py; the `fm` command:
tests/e2e/test_eval_mcq.py."""

import pytest

from fm_assets.evaluation.mcq import parse_answer, wilson


@pytest.mark.parametrize("reply,letter", [
    ("B", "B"), (" B. ", "B"), ("(B)", "B"), ("**B**", "B"), ("B)", "B"), ("'D'\n", "D"), ("Answer: B", "B"),
    ("answer is C", "C"), ("The answer is (A).", "A"),
    ("I think B or C", None), ("B or C", None), ("", None), ("E", None), ("b", None), ("B. moves left", None),
    ("Answer: B C", None), ("A-D", None), (None, None), ("B1", None),
])
def test_strict_parsing(reply, letter):
    assert parse_answer(reply) == letter


def test_wilson_interval_matches_a_hand_computation():
    # 5 of 8, z = 1.959964, z^2 = 3.841459: 1 + z^2/n = 1.480182, centre = (0.625 + z^2/16) / 1.480182
    # = 0.865091 / 1.480182 = 0.584449, half = z / 1.480182 * sqrt(0.625 * 0.375 / 8 + z^2 / 256)
    # = 1.324137 * 0.210482 = 0.278707 -> [0.305742, 0.863156]
    lo, hi = wilson(5, 8)
    assert lo == pytest.approx(0.305742, abs=2e-6) and hi == pytest.approx(0.863156, abs=2e-6)
    # 4 of 4: centre = (1 + z^2/8) / (1 + z^2/4) = 0.755055, half = z / 1.960365 * sqrt(z^2 / 64) = 0.244945
    lo, hi = wilson(4, 4)
    assert lo == pytest.approx(0.510109, abs=2e-6) and hi == pytest.approx(1.0)
    # 0 of 4: the mirror image, [0, 0.489891]
    assert wilson(0, 4)[0] == pytest.approx(0.0) and wilson(0, 4)[1] == pytest.approx(0.489891, abs=2e-6)
    assert wilson(0, 0) == (None, None)


def test_parser_is_registered():
    import argparse

    from fm_assets.cli import eval_mcq as cli_mcq

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="what")
    cli_mcq.add_parser(sub)
    args = parser.parse_args(["mcq", "--model", "m", "--split", "all", "--with-caption"])
    assert args.func is cli_mcq.cmd_mcq and args.split == "all" and args.with_caption
