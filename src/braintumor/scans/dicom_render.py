"""One decoded DICOM frame → RGB and a description of the window used: the modality
(header or hint), then CT windows, the header's VOI LUT or window, or a percentile window;
MONOCHROME1 inverted after windowing."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import require
from .dicom_decode import Frame
from .windows import ct_rgb, grey_rgb, invert, percentile_rgb, robust_window, window_to_grey

MODALITIES = ("CT", "MR")
_HINT_ALIASES = {"CT": "CT", "MR": "MR", "MRI": "MR"}


def resolve_modality(header: str, hint: str | None, warnings: list[str]) -> str:
    h = (header or "").upper()
    if h in MODALITIES:
        if hint and hint != h:
            warnings.append(f"modality hint {hint} ignored: the header says {h}")
        return h
    if hint:
        if h:
            warnings.append(f"header modality {h} read as {hint} (modality_hint)")
        return hint
    if h:
        warnings.append(f"modality {h} is neither CT nor MR: read with its header or a "
                        "percentile window")
        return h
    warnings.append("no Modality in the header: read with its header or a percentile window")
    return "unknown"


def normalise_hint(modality_hint: str | None) -> str | None:
    if modality_hint is None:
        return None
    hint = _HINT_ALIASES.get(str(modality_hint).upper())
    if hint is None:
        raise ValueError(f"modality_hint must be 'CT', 'MR' or None, not {modality_hint!r}")
    return hint


def _header_window(view) -> tuple[float, float, str] | None:
    if view.get("WindowCenter") is None or view.get("WindowWidth") is None:
        return None
    try:
        c, w = view["WindowCenter"], view["WindowWidth"]
        center = float(c.value[0] if c.VM > 1 else c.value)
        width = float(w.value[0] if w.VM > 1 else w.value)
    except (TypeError, ValueError, IndexError):
        return None
    return center, width, str(view.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()


def _voi_lut(values: np.ndarray, view, path: Path) -> tuple[np.ndarray, dict] | None:
    seq = view.get("VOILUTSequence")
    if not seq or seq[0].get("LUTDescriptor") is None or seq[0].get("LUTData") is None:
        return None
    pixels = require("pydicom.pixels", path)
    # LUT inputs are integers (modality-LUT output rounded), as the standard indexes them.
    out = np.asarray(pixels.apply_voi_lut(np.rint(values).astype(np.int64), view, prefer_lut=True),
                     dtype=np.float64)
    # Scale by the LUT's own output range (LUT Descriptor bit depths are often wrong).
    lut = np.asarray(seq[0].LUTData if not isinstance(seq[0].LUTData, bytes) else
                     np.frombuffer(seq[0].LUTData, "<u2"), dtype=np.float64)
    lo, hi = float(lut.min()), float(lut.max())
    grey = (out - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(out)
    return grey_rgb(grey), {"kind": "voi-lut", "source": "header",
                            "explanation": str(seq[0].get("LUTExplanation", "") or "")}


def render(f: Frame, modality: str, ct_windows: str, series_window, path: Path,
            warnings: list[str]) -> tuple[np.ndarray, dict]:
    photometric = str(f.view.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if f.color:
        return f.pixels, {"kind": "none", "note": f"{photometric} passed through as RGB"}
    header = _header_window(f.view)
    if modality == "CT":
        if "RescaleIntercept" not in f.view and "ModalityLUTSequence" not in f.view:
            warnings.append("CT without Rescale Slope/Intercept: stored values taken as HU")
        rgb, info = ct_rgb(f.pixels, ct_windows)
        if header:
            info["header_window"] = {"center": header[0], "width": header[1]}
    else:
        rgb = info = None
        try:
            lut = _voi_lut(f.pixels, f.view, path)
        except Exception as exc:  # noqa: BLE001 - malformed LUTs raise many types
            warnings.append(f"VOI LUT unusable ({type(exc).__name__}: {exc}): window used instead")
            lut = None
        if lut is not None:
            rgb, info = lut
        elif header is not None:
            try:
                rgb = grey_rgb(window_to_grey(f.pixels, header[0], header[1], header[2]))
                info = {"kind": "header", "center": header[0], "width": header[1],
                        "function": header[2]}
            except ValueError as exc:
                warnings.append(f"header window unusable ({exc}): percentile window used")
        if rgb is None:
            window = series_window() if series_window is not None else robust_window(f.pixels)
            rgb = percentile_rgb(f.pixels, window)
            info = {**window[2], "center": window[0], "width": window[1],
                    "function": "LINEAR_EXACT"}
            if "warning" in info:
                warnings.append(info["warning"])
    if photometric == "MONOCHROME1":
        rgb = invert(rgb)
        info["inverted"] = "MONOCHROME1"
    return rgb, info


def needs_percentile(f: Frame, modality: str) -> bool:
    if f.color or modality == "CT":
        return False
    seq = f.view.get("VOILUTSequence")
    return not seq and _header_window(f.view) is None
