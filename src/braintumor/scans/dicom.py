"""DICOM files and series folders → :class:`~braintumor.scans.base.Slice` lists (pydicom).

Per frame: stored values → modality LUT (Rescale Slope/Intercept or Modality LUT Sequence,
``pydicom.pixels.apply_modality_lut``) → a window → 8-bit grey → RGB.

* CT: values are Hounsfield units; the brain window (40/80 HU) in all three channels, or
  brain / subdural (80/200) / bone (600/2800) as R/G/B with ``ct_windows='multi'``. The
  header's own window is recorded in ``meta`` but not used (CT headers often carry a body
  window).
* MR and anything else: the header's VOI LUT Sequence (``apply_voi_lut``) or its first
  Window Center/Width (``apply_windowing``); without either, a robust 0.5–99.5 percentile
  window over the non-zero pixels of the whole series (of the file, for a single file).
* MONOCHROME1 (low values shown white) is inverted after windowing, so bright always
  means high signal as on screen; RGB/YBR images pass through as RGB (YBR is converted by
  pydicom), PALETTE COLOR through ``apply_color_lut``.
* Multi-frame files give one slice per frame (``meta['frame']`` and the label's
  ``#frame=N`` use DICOM's 1-based frame numbers); Enhanced CT/MR per-frame functional
  groups (rescale, window, position) are honoured.
* A folder is read as a series: files grouped by Series Instance UID, frames sorted by
  Image Position (Patient) projected on the slice normal (the cross product of the Image
  Orientation (Patient) row and column directions), i.e. inferior→superior for axial
  slices; without positions, by Instance Number; file names never decide the order.

This module reads files and series; the steps live in :mod:`.dicom_files` (detection),
:mod:`.dicom_decode` (datasets, modality LUT, frames), :mod:`.dicom_order` (anatomical
order) and :mod:`.dicom_render` (modality and window → RGB).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import MAX_VOLUME_VOXELS, NoPixelDataError, ScanReadError, Slice
from .dicom_decode import CORRUPT_FIX, Frame, decode, has_pixels, read_dataset, sop_name
from .dicom_files import dicom_files
from .dicom_order import sort_frames
from .dicom_render import needs_percentile, normalise_hint, render, resolve_modality
from .windows import CT_WINDOW_MODES, robust_window


def _plain(v):
    """DICOM values → plain Python (lists of floats, str) for DataFrames and JSON."""
    if v is None:
        return None
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return [float(x) for x in v]
    if isinstance(v, int):  # IS
        return int(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def read_frames(frames: list[Frame], series: str, *, modality_hint: str | None = None,
                ct_windows: str = "brain", skipped: list[str] | None = None) -> list[Slice]:
    """One series' frames → ordered Slices (percentile windows computed over the series)."""
    if ct_windows not in CT_WINDOW_MODES:
        raise ValueError(f"ct_windows must be one of {CT_WINDOW_MODES}, not {ct_windows!r}")
    hint = normalise_hint(modality_hint)
    series_warnings: list[str] = []
    frames, sorted_by, where, sort_warnings = sort_frames(frames)
    series_warnings += sort_warnings
    if skipped:
        series_warnings.append(f"skipped {len(skipped)} non-image DICOM file(s): "
                               + ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else ""))
    modalities = []
    for f in frames:
        w: list[str] = []
        modalities.append((resolve_modality(str(f.ds.get("Modality", "") or ""), hint, w), w))
    series_window = _series_window(frames, modalities)
    out = []
    for index, (f, (modality, mod_warnings), loc) in enumerate(zip(frames, modalities, where)):
        warnings = series_warnings + mod_warnings
        rgb, window = render(f, modality, ct_windows, series_window, f.path, warnings)
        meta = _slice_meta(f, modality, window, loc, sorted_by, len(frames), warnings)
        label = f.path.name + (f"#frame={f.frame}" if f.frame is not None else "")
        out.append(Slice(rgb=rgb, source=str(f.path), index=index, label=label, series=series,
                         meta=meta))
    return out


def _series_window(frames: list[Frame], modalities: list[tuple[str, list[str]]]):
    """A function giving one percentile window per series, computed on first use (only
    frames without a usable CT, VOI LUT or header window need it)."""
    cache: dict[str, tuple] = {}

    def series_window():
        if "w" not in cache:
            parts = [f.pixels[::2, ::2].ravel() if f.pixels.size > 65536 else f.pixels.ravel()
                     for f, (m, _) in zip(frames, modalities) if needs_percentile(f, m)]
            if not parts:  # every frame has a header window, but one was unusable
                parts = [f.pixels.ravel() for f in frames if not f.color]
            w = robust_window(np.concatenate(parts))
            w[2]["scope"] = "series" if len(frames) > 1 else "image"
            cache["w"] = w
        return cache["w"]

    return series_window


def _slice_meta(f: Frame, modality: str, window: dict, loc: float | None, sorted_by: str,
                n_slices: int, warnings: list[str]) -> dict:
    """A slice's ``meta``: how it was read (modality, window, order) and its header geometry."""
    ds, view = f.ds, f.view
    uid = ds.get("SeriesInstanceUID")
    return {
        "format": "dicom",
        "modality": modality,
        "modality_header": str(ds.get("Modality", "") or "") or None,
        "photometric": str(view.get("PhotometricInterpretation", "") or "") or None,
        "window": window,
        "instance_number": _plain(ds.get("InstanceNumber")),
        "frame": f.frame,
        "n_frames": f.n_frames,
        "position": _plain(view.get("ImagePositionPatient")),
        "orientation": _plain(view.get("ImageOrientationPatient")),
        "slice_location": loc,
        "pixel_spacing": _plain(view.get("PixelSpacing")),
        "slice_thickness": _plain(view.get("SliceThickness")),
        "rescale": ({"slope": _plain(view.get("RescaleSlope")),
                     "intercept": _plain(view.get("RescaleIntercept"))}
                    if "RescaleSlope" in view or "RescaleIntercept" in view else None),
        "series_uid": str(uid) if uid else None,
        "series_number": _plain(ds.get("SeriesNumber")),
        "series_description": str(ds.get("SeriesDescription", "") or "") or None,
        "sop_class": sop_name(ds),
        "transfer_syntax": getattr(ds.file_meta.get("TransferSyntaxUID"), "name", None),
        "sorted_by": sorted_by,
        "n_slices_in_series": n_slices,
        "warnings": list(dict.fromkeys(warnings)),
    }


def _check_volume(frames: list[Frame], where: Path) -> None:
    total = sum(int(f.pixels.shape[0]) * int(f.pixels.shape[1]) for f in frames)
    if total > MAX_VOLUME_VOXELS:
        raise ScanReadError(where, f"{total:,} voxels exceeds the {MAX_VOLUME_VOXELS:,}-voxel "
                                   "limit; read fewer files at a time")


def read_dicom_file(path: str | Path, *, modality_hint: str | None = None,
                    ct_windows: str = "brain") -> list[Slice]:
    """One DICOM file (single- or multi-frame) → one Slice per frame."""
    p = Path(path)
    ds = read_dataset(p)
    frames = decode(ds, p)
    _check_volume(frames, p)
    return read_frames(frames, str(p), modality_hint=modality_hint, ct_windows=ct_windows)


def read_dicom_series(files: list[str | Path] | str | Path, *, modality_hint: str | None = None,
                      ct_windows: str = "brain", on_error: str = "raise",
                      name: str | Path | None = None) -> list[Slice]:
    """A folder (or list of files) of DICOM → Slices grouped by series, each series in
    anatomical order. Non-image objects (reports, presentation states) are skipped and noted
    in ``meta['warnings']``; unreadable image files raise (``on_error='raise'``) or are
    skipped with a warning (``'skip'``). Series key: the folder (``name``), with
    ``#series=<uid>`` appended when it holds several series."""
    if on_error not in ("raise", "skip"):
        raise ValueError("on_error must be 'raise' or 'skip'")
    files, name = _series_files(files, name)
    groups, skipped, failed = _read_groups(files, name, on_error)
    out = []
    for uid, frames in groups.items():
        key = name if len(groups) == 1 else f"{name}#series={uid or 'unknown'}"
        slices = read_frames(frames, key, modality_hint=modality_hint, ct_windows=ct_windows,
                             skipped=skipped)
        if failed:
            for s in slices:
                s.meta["warnings"].append(f"skipped {len(failed)} unreadable file(s): "
                                          + "; ".join(failed[:3]))
        out.extend(slices)
    return out


def _series_files(files: list[str | Path] | str | Path,
                  name: str | Path | None) -> tuple[list[Path], str]:
    """The files to read (a folder's DICOM files, or those given) and the series name."""
    if isinstance(files, (str, Path)):
        folder = Path(files)
        if not folder.is_dir():
            raise ScanReadError(folder, "not a folder")
        files = dicom_files(folder)
        name = folder if name is None else name
        if not files:
            raise ScanReadError(folder, "no DICOM files in this folder (looked for *.dcm and files "
                                        "with the 'DICM' marker, not in subfolders); point to the "
                                        "folder that holds the series' files")
    files = [Path(f) for f in files]
    if not files:
        raise ScanReadError(name or "<no files>", "no DICOM files given")
    return files, str(name if name is not None else files[0].parent)


def _read_groups(files: list[Path], name: str,
                 on_error: str) -> tuple[dict[str, list[Frame]], list[str], list[str]]:
    """Decoded frames by Series Instance UID, the skipped non-image files and the failed ones
    (``'name: reason'``); raises when no file gave an image."""
    groups: dict[str, list[Frame]] = {}
    skipped: list[str] = []
    failed: list[str] = []
    voxels = 0
    for f in files:
        try:
            ds = read_dataset(f)
            if not has_pixels(ds) and "Image Storage" not in sop_name(ds):
                skipped.append(f"{f.name} ({sop_name(ds)})")
                continue
            n = (int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
                 * int(ds.get("NumberOfFrames", 1) or 1))
            if voxels + n <= MAX_VOLUME_VOXELS:  # checked before decoding, not after
                frames = decode(ds, f)
        except NoPixelDataError:
            skipped.append(f.name)
            continue
        except ScanReadError as exc:
            if on_error == "raise":
                raise
            failed.append(f"{f.name}: {exc.reason}")
            continue
        voxels += n
        if voxels > MAX_VOLUME_VOXELS:
            raise ScanReadError(name, f"more than {MAX_VOLUME_VOXELS:,} voxels in this series; "
                                      "read fewer files at a time")
        groups.setdefault(str(ds.get("SeriesInstanceUID", "") or ""), []).extend(frames)
    if not groups and failed:
        raise ScanReadError(name, f"no readable DICOM image in this folder ({len(failed)} "
                                  "unreadable: " + "; ".join(failed[:3]) + f"); {CORRUPT_FIX}")
    if not groups:
        raise NoPixelDataError(name, "no DICOM image in this folder (only non-image objects: "
                                     + ", ".join(skipped[:5]) + "); point to an image series")
    return groups, skipped, failed
