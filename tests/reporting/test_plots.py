"""Embedded notebook figures are re-encoded smaller and stay valid PNGs of the same picture."""
from __future__ import annotations

import base64
import io
import json

import numpy as np
from PIL import Image

from braintumor.reporting.plots import compact_notebook_images


def test_compact_notebook_images_shrinks_and_keeps_the_picture(tmp_path):
    rng = np.random.default_rng(0)
    picture = (np.linspace(0, 255, 1600)[None, :, None] * np.ones((400, 1, 3))).astype("uint8")
    picture[100:300, 200:600] = rng.integers(0, 255, (200, 400, 3), dtype=np.uint8) // 64 * 64
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    nb = {"cells": [{"cell_type": "code", "source": [], "outputs": [
        {"output_type": "display_data", "data": {"image/png": base64.b64encode(buffer.getvalue()).decode()}},
        {"output_type": "stream", "text": ["kept\n"]}]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    before, after = compact_notebook_images(path, max_width=800)
    assert after < before
    out = json.loads(path.read_text())
    outputs = out["cells"][0]["outputs"]
    assert outputs[1]["text"] == ["kept\n"]
    image = Image.open(io.BytesIO(base64.b64decode(outputs[0]["data"]["image/png"])))
    assert image.size == (800, 200)
    small = np.asarray(Image.fromarray(picture).resize((800, 200), Image.LANCZOS), dtype=float)
    assert np.abs(np.asarray(image.convert("RGB"), dtype=float) - small).mean() < 8
