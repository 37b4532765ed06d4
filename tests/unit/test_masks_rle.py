"""The project's COCO RLE codec (fm_assets.labels.masks: rle_of_crop, rle_string, rle_runs) against pycocotools,
the reference the exports' readers use."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from fm_assets.labels.masks import decode_rle, rle_of_crop, rle_runs, rle_string


def _coco(full: np.ndarray) -> str:
    return mask_utils.encode(np.asfortranarray(full.astype(np.uint8)))["counts"].decode("ascii")


@pytest.mark.parametrize("seed", range(4))
def test_a_crop_encodes_exactly_like_pycocotools_on_the_whole_frame(seed):
    """Random frame sizes, crops anywhere (touching every edge, empty, full-frame, single pixels, noise or solid):
    the string is pycocotools' own, and it decodes back to the frame."""
    rng = np.random.default_rng(seed)
    for trial in range(300):
        h, w = int(rng.integers(1, 50)), int(rng.integers(1, 50))
        ch, cw = int(rng.integers(0, h + 1)), int(rng.integers(0, w + 1))
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = rng.random((ch, cw)) < rng.choice([0.0, 0.3, 0.9, 1.0])
        full = np.zeros((h, w), bool)
        full[y : y + ch, x : x + cw] = crop
        rle = rle_of_crop(crop.astype(np.uint8), x, y, h, w)
        assert rle["size"] == [h, w]
        assert rle["counts"] == _coco(full), (trial, h, w, x, y, ch, cw)
        assert np.array_equal(decode_rle(rle), full)


def test_run_lengths_round_trip_through_the_compressed_string():
    rng = np.random.default_rng(9)
    for _ in range(200):
        runs = rng.integers(0, 5000, int(rng.integers(1, 40)))
        s = rle_string(runs)
        assert np.array_equal(rle_runs(s), runs)
    big = np.array([0, 2**31, 3, 2**31 - 7, 1])  # differences far outside a few 5-bit groups, both signs
    assert np.array_equal(rle_runs(rle_string(big)), big)


def test_a_string_cut_inside_a_number_is_refused():
    s = rle_string(np.array([3, 100000, 7]))
    assert np.array_equal(rle_runs(s), [3, 100000, 7])
    with pytest.raises(ValueError, match="ends inside a number"):
        rle_runs(s[:2])  # 100000 takes four characters: cut after its first
    assert len(rle_runs("")) == 0
