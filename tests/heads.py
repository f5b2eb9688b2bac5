"""Synthetic CT-like heads with burned-in text planted in one class, for the preprocessing
and shortcut-audit tests (``from heads import ...``; the ``images`` fixture is imported by
the test modules that use it); and grey heads with a tumour blob and an optional corner
marker (a planted shortcut) for the recipe tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

SIZE = 160  # small synthetic images keep the tests fast
TEXT_LINES = ("DOE JOHN 48Y", "2019 MAY 21", "ACQ 12:05:56", "HOSP CENTRAL")


def synthetic_head(rng: np.random.Generator, text: bool, size: int = SIZE) -> np.ndarray:
    """A CT-like slice: bright skull ellipse, noisy grey brain, random size and position;
    with ``text``, viewer-style lines burned into the top-left corner."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    cy, cx = size / 2 + rng.uniform(-6, 6, 2)
    ry, rx = size * rng.uniform(0.30, 0.36), size * rng.uniform(0.26, 0.32)
    grey = np.zeros((size, size))
    grey[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 250
    brain = ((yy - cy) / (ry - 5)) ** 2 + ((xx - cx) / (rx - 5)) ** 2 <= 1
    grey[brain] = rng.uniform(80, 120) + rng.normal(0, 6, brain.sum())
    img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    if text:
        draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=8)
        for i, line in enumerate(TEXT_LINES[:3]):
            draw.text((2, 1 + 8 * i), line, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def blob_head(rng: np.random.Generator, size: int, tumour: bool, marker_px: int = 0) -> np.ndarray:
    """A grey disc "head" of noisy tissue; a tumour adds a bright blob inside it; ``marker_px``
    paints a red square of that side in the top-left corner (the shortcut the recipes must
    not learn)."""
    yy, xx = np.mgrid[:size, :size]
    cy, cx = size / 2 + rng.normal(0, 2, 2)
    r = size * rng.uniform(0.34, 0.42)
    inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2
    img = np.where(inside, 90 + rng.normal(0, 8) + rng.normal(0, 6, (size, size)), 0)
    if tumour:
        by, bx = np.array([cy, cx]) + rng.uniform(-r / 2, r / 2, 2)
        img[(yy - by) ** 2 + (xx - bx) ** 2 < rng.uniform(3, 7) ** 2] = rng.uniform(130, 200)
    rgb = np.repeat(np.clip(img, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    rgb[:marker_px, :marker_px] = (255, 0, 0)
    return rgb


def text_pixels(size: int = SIZE) -> np.ndarray:
    """Where the planted text is (drawn alone on black)."""
    img = Image.new("L", (size, size))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=8)
    for i, line in enumerate(TEXT_LINES[:3]):
        draw.text((2, 1 + 8 * i), line, fill=255, font=font)
    return np.asarray(img) > 100


@pytest.fixture(scope="module")
def images():
    """60 images per class: class 1 carries text, class 0 does not; heads alike."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    return [synthetic_head(rng, bool(label)) for label in y], y


def probe_rows(y: np.ndarray) -> pd.DataFrame:
    """Manifest-like rows: 30/15/15 per class in train/val/test, every image its own group."""
    split = np.tile(np.array(["train"] * 30 + ["val"] * 15 + ["test"] * 15), 2)
    return pd.DataFrame({"path": [f"img{i}" for i in range(len(y))], "y": y,
                         "group": [f"g{i}" for i in range(len(y))], "split": split})
