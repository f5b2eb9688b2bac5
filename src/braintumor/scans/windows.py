"""Intensity windows: from scanner values (HU for CT, arbitrary units for MR) to 0-255 grey.

Every window goes through ``pydicom.pixels.apply_windowing`` (the DICOM PS3.3 C.11.2
formulas, LINEAR / LINEAR_EXACT / SIGMOID) on a tiny stand-in dataset declaring an 8-bit
unsigned output, so the result is already on the 0-255 scale.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .base import require

# (centre, width) in Hounsfield units. Brain: grey/white matter and blood; subdural:
# extra-axial blood against the skull; bone: fractures, calcification.
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "bone": (600.0, 2800.0),
}
# ct_windows='multi' stacks these as the R, G, B channels.
CT_MULTI = ("brain", "subdural", "bone")
CT_WINDOW_MODES = ("brain", "multi")
PERCENTILES = (0.5, 99.5)
# A pixel counts as foreground when its grey (primary window) is at least 10% of full scale.
FOREGROUND_GREY = 26


def window_to_grey(values: np.ndarray, center: float, width: float,
                   function: str = "LINEAR") -> np.ndarray:
    """Apply a DICOM window to ``values`` and return float grey levels in [0, 255]."""
    pixels = require("pydicom.pixels", "<window>")
    dataset = require("pydicom.dataset", "<window>")
    ds = dataset.Dataset()
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsStored = 8  # output range 0..255 ...
    ds.PixelRepresentation = 0  # ... unsigned, and no rescale: y_min=0, y_max=255
    ds.WindowCenter = float(center)
    ds.WindowWidth = float(width)
    ds.VOILUTFunction = function
    return pixels.apply_windowing(np.asarray(values, dtype=np.float64), ds)


def to_uint8(grey: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


def robust_window(values: np.ndarray, percentiles: tuple[float, float] = PERCENTILES
                  ) -> tuple[float, float, dict[str, Any]]:
    """(centre, width) spanning the given percentiles of the finite non-zero values
    (zero is the usual background/padding of MR and of skull-stripped volumes), for a
    LINEAR_EXACT window: the low percentile maps to 0 and the high one to 255."""
    v = np.asarray(values)
    v = v[np.isfinite(v) & (v != 0)]
    info: dict[str, Any] = {"kind": "percentile", "percentiles": list(percentiles)}
    if v.size == 0:
        info["warning"] = "no non-zero pixels: image is empty (all background)"
        return 0.5, 1.0, info  # everything <= 0 → black
    lo, hi = (float(x) for x in np.percentile(v, percentiles))
    if hi <= lo:
        info["warning"] = f"flat image (every non-zero value is {lo:g})"
        lo, hi = lo - 1.0, lo  # the single value shows white, zero background black
    info.update(low=lo, high=hi)
    return (lo + hi) / 2.0, hi - lo, info


def percentile_rgb(values: np.ndarray, window: tuple[float, float, dict[str, Any]]
                   ) -> np.ndarray:
    center, width, _ = window
    grey = to_uint8(window_to_grey(values, center, width, "LINEAR_EXACT"))
    return np.repeat(grey[..., None], 3, axis=2)


def ct_rgb(hu: np.ndarray, mode: str = "brain") -> tuple[np.ndarray, dict[str, Any]]:
    """CT values in HU → RGB: the brain window in all three channels (``'brain'``), or the
    brain, subdural and bone windows as R, G, B (``'multi'``)."""
    if mode not in CT_WINDOW_MODES:
        raise ValueError(f"ct_windows must be one of {CT_WINDOW_MODES}, not {mode!r}")
    names = ("brain",) * 3 if mode == "brain" else CT_MULTI
    grey = {n: to_uint8(window_to_grey(hu, *CT_WINDOWS[n])) for n in set(names)}
    rgb = np.stack([grey[n] for n in names], axis=-1)
    info = {"kind": f"ct-{mode}", "channels": [
        {"name": n, "center": CT_WINDOWS[n][0], "width": CT_WINDOWS[n][1]} for n in names]}
    return rgb, info


def grey_rgb(grey: np.ndarray) -> np.ndarray:
    g = to_uint8(grey)
    return np.repeat(g[..., None], 3, axis=2)


def invert(rgb: np.ndarray) -> np.ndarray:
    """MONOCHROME1 (minimum value shown white) → the usual white-is-high display."""
    return (255 - rgb).astype(np.uint8)


def foreground_fraction(rgb: np.ndarray) -> float:
    """Share of pixels at least 10% grey in the first channel (the primary window)."""
    return float(np.mean(rgb[..., 0] >= FOREGROUND_GREY)) if rgb.size else 0.0
