"""Parsing of the label-quality check files (sql/checks): a header must name its severity. The checks as Dagster
asset checks, on clean and planted labels, are in tests/assets/test_checks.py."""

import pytest

from fm_assets.defs.checks import parse_check


def test_a_header_without_severity_is_refused(tmp_path):
    bad = tmp_path / "x.sql"
    bad.write_text("-- asset: tracks\n-- scope: partition\nSELECT 1\n")
    with pytest.raises(ValueError, match="severity"):
        parse_check(bad)
