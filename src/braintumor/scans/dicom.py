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
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .base import (MAX_SLICE_PIXELS, MAX_VOLUME_VOXELS, DecoderUnavailableError,
                   NoPixelDataError, ScanReadError, Slice, require)
from .windows import (CT_WINDOW_MODES, ct_rgb, grey_rgb, invert, percentile_rgb, robust_window,
                      to_uint8, window_to_grey)

DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})
# Never sniffed for a preamble when scanning a folder (cheap, and never DICOM).
_OTHER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                             ".txt", ".csv", ".json", ".xml", ".html", ".pdf", ".zip", ".gz",
                             ".nii", ".py", ".md"})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
MODALITIES = ("CT", "MR")
_HINT_ALIASES = {"CT": "CT", "MR": "MR", "MRI": "MR"}
_DECODER_FIX = ("install a decoder (`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
                "pylibjpeg-rle`, or `pip install python-gdcm`), or decompress the file first "
                "(`gdcmconv --raw IN.dcm OUT.dcm`, or dcmtk's `dcmdjpeg`)")
_CORRUPT_FIX = ("re-export or re-copy it from the scanner/PACS, or remove it from the input")

# Top-level attributes a frame needs for its transforms and its metadata; Enhanced
# multi-frame files may override them per frame in these functional groups.
_VIEW_KEYWORDS = ("PhotometricInterpretation", "BitsStored", "BitsAllocated",
                  "PixelRepresentation", "SamplesPerPixel", "ModalityLUTSequence",
                  "RescaleSlope", "RescaleIntercept", "RescaleType", "VOILUTSequence",
                  "WindowCenter", "WindowWidth", "VOILUTFunction",
                  "WindowCenterWidthExplanation", "ImagePositionPatient",
                  "ImageOrientationPatient", "PixelSpacing", "SliceThickness")
_FUNCTIONAL_GROUPS = {
    "PixelValueTransformationSequence": ("RescaleSlope", "RescaleIntercept", "RescaleType"),
    "FrameVOILUTSequence": ("WindowCenter", "WindowWidth", "VOILUTFunction",
                            "WindowCenterWidthExplanation"),
    "PlanePositionSequence": ("ImagePositionPatient",),
    "PlaneOrientationSequence": ("ImageOrientationPatient",),
    "PixelMeasuresSequence": ("PixelSpacing", "SliceThickness"),
}


# -- detection ----------------------------------------------------------------------------

def has_dicom_preamble(path: str | Path) -> bool:
    """True when the file has 'DICM' at byte 128 (the DICOM Part 10 file marker)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def is_dicom_file(path: str | Path) -> bool:
    """A ``.dcm``/``.dicom``/``.ima`` name, or any file with the 'DICM' marker; DICOMDIR
    (an index, not an image) and AppleDouble ``._*`` files are not."""
    p = Path(path)
    if p.name.startswith("._") or p.name.upper() == "DICOMDIR":
        return False
    if p.suffix.lower() in DICOM_SUFFIXES:
        return True
    return p.is_file() and has_dicom_preamble(p)


def dicom_files(folder: str | Path) -> list[Path]:
    """DICOM files directly inside ``folder`` (not recursive), by name."""
    out = []
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or p.suffix.lower() in _OTHER_SUFFIXES or not p.is_file():
            continue
        if is_dicom_file(p):
            out.append(p)
    return out


def is_dicom_folder(folder: str | Path) -> bool:
    p = Path(folder)
    if not p.is_dir():
        return False
    try:
        return bool(dicom_files(p))
    except OSError:
        return False


# -- reading datasets ---------------------------------------------------------------------

def _has_pixels(ds) -> bool:
    return any(k in ds for k in _PIXEL_KEYWORDS)


def _sop_name(ds) -> str:
    uid = ds.get("SOPClassUID") or getattr(getattr(ds, "file_meta", None),
                                           "MediaStorageSOPClassUID", None)
    if uid is None:
        return "unknown SOP class"
    name = getattr(uid, "name", "") or str(uid)
    return name


def read_dataset(path: str | Path):
    """``pydicom.dcmread`` with every failure turned into a ScanReadError naming the file.
    Files without the 128-byte preamble are tried again with ``force=True`` and kept only
    when they hold a recognisable image (Rows, Columns and pixel data)."""
    pydicom = require("pydicom", path)
    errors = require("pydicom.errors", path)
    p = Path(path)
    if not p.exists():
        raise ScanReadError(p, "no such file")
    if p.stat().st_size == 0:
        raise ScanReadError(p, f"empty file (0 bytes); {_CORRUPT_FIX}")
    try:
        return pydicom.dcmread(p)
    except errors.InvalidDicomError:
        pass  # no preamble: maybe a bare (old, ACR-NEMA style) dataset
    except Exception as exc:  # noqa: BLE001 - truncated headers raise many types
        raise ScanReadError(p, f"not a readable DICOM file ({type(exc).__name__}: {exc}); "
                               f"{_CORRUPT_FIX}") from exc
    try:
        ds = pydicom.dcmread(p, force=True)
        ok = "Rows" in ds and "Columns" in ds and _has_pixels(ds)
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        raise ScanReadError(p, "not a DICOM file: no 'DICM' marker at byte 128 and no readable "
                               f"DICOM image header; {_CORRUPT_FIX}")
    if "TransferSyntaxUID" not in ds.file_meta:
        uid = require("pydicom.uid", p)
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (uid.ImplicitVRLittleEndian if implicit else
                                          uid.ExplicitVRLittleEndian if little else
                                          uid.ExplicitVRBigEndian)
    return ds


def _check_pixels(ds, path: Path) -> None:
    if not _has_pixels(ds) and "Image Storage" in _sop_name(ds):
        raise ScanReadError(path, f"{_sop_name(ds)} object whose pixel data is missing: the file "
                                  f"is truncated or corrupt; {_CORRUPT_FIX}")
    if not _has_pixels(ds):
        raise NoPixelDataError(path, f"DICOM object without pixel data ({_sop_name(ds)}, "
                                     f"modality {ds.get('Modality', '?')}): it is not an image; "
                                     "point to the image files or series folder instead")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise ScanReadError(path, f"DICOM image header says {rows}x{cols} pixels; {_CORRUPT_FIX}")
    if rows * cols > MAX_SLICE_PIXELS:
        raise ScanReadError(path, f"{cols}x{rows} pixels exceeds the {MAX_SLICE_PIXELS:,}-pixel "
                                  "limit; downscale the image first")
    ts = ds.file_meta.get("TransferSyntaxUID")
    if ts is None or not ts.is_compressed:
        return
    pixels = require("pydicom.pixels", path)
    try:
        decoder = pixels.get_decoder(ts)
    except NotImplementedError as exc:
        raise DecoderUnavailableError(path, f"pydicom cannot decode transfer syntax {ts} "
                                            f"({ts.name or 'unknown'}); {_DECODER_FIX}") from exc
    if not decoder.is_available:
        missing = "; ".join(decoder.missing_dependencies)
        raise DecoderUnavailableError(path, f"pixel data is compressed as {ts.name} and no "
                                            f"installed plugin decodes it (needs one of: {missing}); "
                                            f"{_DECODER_FIX}")


def _frame_view(ds, frame: int):
    """The attributes that apply to frame ``frame`` (0-based): top level, overridden by the
    shared then the per-frame functional groups of Enhanced multi-frame objects."""
    dataset = require("pydicom.dataset", "<dicom>")
    view = dataset.Dataset()
    for kw in _VIEW_KEYWORDS:
        if kw in ds:
            view[kw] = ds[kw]
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta
    for seq_kw in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        seq = ds.get(seq_kw)
        if not seq:
            continue
        item = seq[0] if seq_kw.startswith("Shared") else (seq[frame] if frame < len(seq) else None)
        if item is None:
            continue
        for group_kw, kws in _FUNCTIONAL_GROUPS.items():
            group = item.get(group_kw)
            if group:
                for kw in kws:
                    if kw in group[0]:
                        view[kw] = group[0][kw]
    return view


@dataclasses.dataclass
class _Frame:
    path: Path
    ds: Any                # the file's dataset (shared by its frames)
    view: Any              # attributes of this frame
    frame: int | None      # 1-based frame number in a multi-frame file, None otherwise
    n_frames: int
    pixels: np.ndarray     # float32 values after the modality LUT, or uint8 RGB
    color: bool


def _decode(ds, path: Path) -> list[_Frame]:
    """All frames of one dataset, after the modality LUT (monochrome) or as uint8 RGB."""
    _check_pixels(ds, path)
    pixels = require("pydicom.pixels", path)
    ts = ds.file_meta.get("TransferSyntaxUID")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise ScanReadError(path, f"could not decode the pixel data ({getattr(ts, 'name', ts)}): "
                                  f"{exc}; the file may be truncated or corrupt: {_CORRUPT_FIX}") from exc
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if n_frames == 1:
        arr = arr[None]
    color = samples == 3 or photometric == "PALETTE COLOR"
    if photometric == "PALETTE COLOR":
        arr = pixels.apply_color_lut(arr, ds)
    frames = []
    for i in range(arr.shape[0]):
        view = _frame_view(ds, i)
        a = arr[i]
        if color:
            bits = int(view.get("BitsStored", 8) or 8) if photometric != "PALETTE COLOR" else (
                16 if a.dtype.itemsize > 1 else 8)
            if a.dtype != np.uint8 or bits > 8:
                a = to_uint8(a.astype(np.float64) * (255.0 / (2 ** bits - 1)))
            values = np.ascontiguousarray(a[..., :3], dtype=np.uint8)
        else:
            try:
                values = np.asarray(pixels.apply_modality_lut(a, view), dtype=np.float32)
            except Exception as exc:  # noqa: BLE001
                raise ScanReadError(path, f"invalid modality LUT / rescale attributes ({exc}); "
                                          f"{_CORRUPT_FIX}") from exc
        frames.append(_Frame(path, ds, view, i + 1 if n_frames > 1 else None, n_frames,
                             values, color))
    return frames


# -- ordering -----------------------------------------------------------------------------

def _floats(view, kw: str, n: int) -> np.ndarray | None:
    try:
        v = np.asarray([float(x) for x in view.get(kw)], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (n,) and np.all(np.isfinite(v)) else None


def _sort_frames(frames: list[_Frame]) -> tuple[list[_Frame], str, list[float | None], list[str]]:
    """Frames in anatomical order, how they were sorted, each frame's position along the
    slice normal (mm) and warnings."""
    warnings: list[str] = []
    positions = [_floats(f.view, "ImagePositionPatient", 3) for f in frames]
    orients = [_floats(f.view, "ImageOrientationPatient", 6) for f in frames]

    def instance(f: _Frame) -> tuple:
        n = f.ds.get("InstanceNumber")
        try:
            n = int(n)
        except (TypeError, ValueError):
            n = None
        return (n is None, n or 0, f.frame or 0, f.path.name)

    if all(p is not None for p in positions) and all(o is not None for o in orients):
        ref = orients[0]
        if all(np.allclose(o, ref, atol=1e-3) for o in orients):
            normal = np.cross(ref[:3], ref[3:])
            where = [float(np.dot(p, normal)) for p in positions]
            order = sorted(range(len(frames)), key=lambda i: (where[i], instance(frames[i])))
            return [frames[i] for i in order], "position", [where[i] for i in order], warnings
        warnings.append("slices have different orientations: sorted by Instance Number")
    elif len(frames) > 1:
        warnings.append("Image Position/Orientation (Patient) missing: sorted by Instance Number "
                        "and frame number")
    order = sorted(range(len(frames)), key=lambda i: instance(frames[i]))
    numbers = {instance(f)[:2] for f in frames if not instance(f)[0]}
    how = ("instance_number" if len(numbers) > 1 else
           "frame" if len({f.path for f in frames}) == 1 else "file_name")
    return [frames[i] for i in order], how, [None] * len(frames), warnings


# -- rendering ----------------------------------------------------------------------------

def _modality(header: str, hint: str | None, warnings: list[str]) -> str:
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


def _render(f: _Frame, modality: str, ct_windows: str, series_window, path: Path,
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


def _needs_percentile(f: _Frame, modality: str) -> bool:
    if f.color or modality == "CT":
        return False
    seq = f.view.get("VOILUTSequence")
    return not seq and _header_window(f.view) is None


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


def read_frames(frames: list[_Frame], series: str, *, modality_hint: str | None = None,
                ct_windows: str = "brain", skipped: list[str] | None = None) -> list[Slice]:
    """One series' frames → ordered Slices (percentile windows computed over the series)."""
    if ct_windows not in CT_WINDOW_MODES:
        raise ValueError(f"ct_windows must be one of {CT_WINDOW_MODES}, not {ct_windows!r}")
    hint = normalise_hint(modality_hint)
    series_warnings: list[str] = []
    frames, sorted_by, where, sort_warnings = _sort_frames(frames)
    series_warnings += sort_warnings
    if skipped:
        series_warnings.append(f"skipped {len(skipped)} non-image DICOM file(s): "
                               + ", ".join(skipped[:5]) + (" …" if len(skipped) > 5 else ""))
    modalities = []
    for f in frames:
        w: list[str] = []
        modalities.append((_modality(str(f.ds.get("Modality", "") or ""), hint, w), w))

    cache: dict[str, tuple] = {}

    def series_window():  # one percentile window per series, computed on first use
        if "w" not in cache:
            parts = [f.pixels[::2, ::2].ravel() if f.pixels.size > 65536 else f.pixels.ravel()
                     for f, (m, _) in zip(frames, modalities) if _needs_percentile(f, m)]
            if not parts:  # every frame has a header window, but one was unusable
                parts = [f.pixels.ravel() for f in frames if not f.color]
            w = robust_window(np.concatenate(parts))
            w[2]["scope"] = "series" if len(frames) > 1 else "image"
            cache["w"] = w
        return cache["w"]

    out = []
    for index, (f, (modality, mod_warnings), loc) in enumerate(zip(frames, modalities, where)):
        warnings = series_warnings + mod_warnings
        rgb, window = _render(f, modality, ct_windows, series_window, f.path, warnings)
        ds, view = f.ds, f.view
        uid = ds.get("SeriesInstanceUID")
        meta = {
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
            "sop_class": _sop_name(ds),
            "transfer_syntax": getattr(ds.file_meta.get("TransferSyntaxUID"), "name", None),
            "sorted_by": sorted_by,
            "n_slices_in_series": len(frames),
            "warnings": list(dict.fromkeys(warnings)),
        }
        label = f.path.name + (f"#frame={f.frame}" if f.frame is not None else "")
        out.append(Slice(rgb=rgb, source=str(f.path), index=index, label=label, series=series,
                         meta=meta))
    return out


def _check_volume(frames: list[_Frame], where: Path) -> None:
    total = sum(int(f.pixels.shape[0]) * int(f.pixels.shape[1]) for f in frames)
    if total > MAX_VOLUME_VOXELS:
        raise ScanReadError(where, f"{total:,} voxels exceeds the {MAX_VOLUME_VOXELS:,}-voxel "
                                   "limit; read fewer files at a time")


def read_dicom_file(path: str | Path, *, modality_hint: str | None = None,
                    ct_windows: str = "brain") -> list[Slice]:
    """One DICOM file (single- or multi-frame) → one Slice per frame."""
    p = Path(path)
    ds = read_dataset(p)
    frames = _decode(ds, p)
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
    name = str(name if name is not None else files[0].parent)
    groups: dict[str, list[_Frame]] = {}
    skipped: list[str] = []
    failed: list[str] = []
    voxels = 0
    for f in files:
        try:
            ds = read_dataset(f)
            if not _has_pixels(ds) and "Image Storage" not in _sop_name(ds):
                skipped.append(f"{f.name} ({_sop_name(ds)})")
                continue
            n = (int(ds.get("Rows", 0) or 0) * int(ds.get("Columns", 0) or 0)
                 * int(ds.get("NumberOfFrames", 1) or 1))
            if voxels + n <= MAX_VOLUME_VOXELS:  # checked before decoding, not after
                frames = _decode(ds, f)
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
                                  "unreadable: " + "; ".join(failed[:3]) + f"); {_CORRUPT_FIX}")
    if not groups:
        raise NoPixelDataError(name, "no DICOM image in this folder (only non-image objects: "
                                     + ", ".join(skipped[:5]) + "); point to an image series")
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
