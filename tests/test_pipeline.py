"""The decoded-image cache: keyed by content, and a new row set reuses images that
earlier caches hold instead of decoding them again."""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from PIL import Image

from braintumor import pipeline


def _rows(folder, names) -> pd.DataFrame:
    paths = [folder / n for n in names]
    return pd.DataFrame({"path": [p.name for p in paths],
                         "sha256": [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]})


def test_new_row_set_decodes_only_images_no_cache_holds(tmp_path, monkeypatch):
    images, cache = tmp_path / "images", tmp_path / "cache"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(images / f"{i}.png")
    decoded: list[str] = []
    real = pipeline.prepare_arrays

    def counting(paths, size, preprocess="none", **kw):
        decoded.extend(p.name for p in paths)
        return real(paths, size, preprocess, **kw)

    monkeypatch.setattr(pipeline, "prepare_arrays", counting)
    first = _rows(images, ["0.png", "1.png", "2.png", "3.png"])
    a = pipeline.cached_arrays(images, first, 32, "none", cache, progress=False)
    assert decoded == ["0.png", "1.png", "2.png", "3.png"]

    decoded.clear()  # same rows again: the cache file itself
    assert np.array_equal(pipeline.cached_arrays(images, first, 32, "none", cache, progress=False), a)
    assert decoded == []

    # Overlapping rows in another order, one repeated: only the two new images are decoded.
    second = _rows(images, ["5.png", "2.png", "0.png", "4.png", "2.png"])
    b = pipeline.cached_arrays(images, second, 32, "none", cache, progress=False)
    assert decoded == ["5.png", "4.png"]
    assert np.array_equal(b, real([images / n for n in ["5.png", "2.png", "0.png", "4.png", "2.png"]],
                                  32, progress=False))

    # A cache written before listings existed gets one on its next use, then lends images.
    for listing in cache.glob("*.rows.txt"):
        listing.unlink()
    decoded.clear()
    pipeline.cached_arrays(images, first, 32, "none", cache, progress=False)
    third = _rows(images, ["1.png", "3.png"])
    assert np.array_equal(pipeline.cached_arrays(images, third, 32, "none", cache, progress=False), a[[1, 3]])
    assert decoded == []

    decoded.clear()  # another size (or preprocessing) never borrows pixels
    pipeline.cached_arrays(images, first, 24, "none", cache, progress=False)
    assert decoded == ["0.png", "1.png", "2.png", "3.png"]
