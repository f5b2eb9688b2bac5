"""Reading DICOM datasets (pydicom) and decoding their frames: stored values → modality LUT
(Rescale Slope/Intercept or Modality LUT Sequence) for monochrome images, uint8 RGB for
colour ones, with the per-frame functional groups of Enhanced multi-frame objects applied."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from .base import MAX_SLICE_PIXELS, DecoderUnavailableError, NoPixelDataError, ScanReadError, require
from .windows import to_uint8

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DECODER_FIX = ("install a decoder (`pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg "
                "pylibjpeg-rle`, or `pip install python-gdcm`), or decompress the file first "
                "(`gdcmconv --raw IN.dcm OUT.dcm`, or dcmtk's `dcmdjpeg`)")
CORRUPT_FIX = ("re-export or re-copy it from the scanner/PACS, or remove it from the input")

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


def has_pixels(ds) -> bool:
    return any(k in ds for k in _PIXEL_KEYWORDS)


def sop_name(ds) -> str:
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
        raise ScanReadError(p, f"empty file (0 bytes); {CORRUPT_FIX}")
    try:
        return pydicom.dcmread(p)
    except errors.InvalidDicomError:
        pass  # no preamble: maybe a bare (old, ACR-NEMA style) dataset
    except Exception as exc:  # noqa: BLE001 - truncated headers raise many types
        raise ScanReadError(p, f"not a readable DICOM file ({type(exc).__name__}: {exc}); "
                               f"{CORRUPT_FIX}") from exc
    try:
        ds = pydicom.dcmread(p, force=True)
        ok = "Rows" in ds and "Columns" in ds and has_pixels(ds)
    except Exception:  # noqa: BLE001
        ok = False
    if not ok:
        raise ScanReadError(p, "not a DICOM file: no 'DICM' marker at byte 128 and no readable "
                               f"DICOM image header; {CORRUPT_FIX}")
    if "TransferSyntaxUID" not in ds.file_meta:
        uid = require("pydicom.uid", p)
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (uid.ImplicitVRLittleEndian if implicit else
                                          uid.ExplicitVRLittleEndian if little else
                                          uid.ExplicitVRBigEndian)
    return ds


def _check_pixels(ds, path: Path) -> None:
    if not has_pixels(ds) and "Image Storage" in sop_name(ds):
        raise ScanReadError(path, f"{sop_name(ds)} object whose pixel data is missing: the file "
                                  f"is truncated or corrupt; {CORRUPT_FIX}")
    if not has_pixels(ds):
        raise NoPixelDataError(path, f"DICOM object without pixel data ({sop_name(ds)}, "
                                     f"modality {ds.get('Modality', '?')}): it is not an image; "
                                     "point to the image files or series folder instead")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows < 1 or cols < 1:
        raise ScanReadError(path, f"DICOM image header says {rows}x{cols} pixels; {CORRUPT_FIX}")
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
class Frame:
    path: Path
    ds: Any                # the file's dataset (shared by its frames)
    view: Any              # attributes of this frame
    frame: int | None      # 1-based frame number in a multi-frame file, None otherwise
    n_frames: int
    pixels: np.ndarray     # float32 values after the modality LUT, or uint8 RGB
    color: bool


def decode(ds, path: Path) -> list[Frame]:
    """All frames of one dataset, after the modality LUT (monochrome) or as uint8 RGB."""
    _check_pixels(ds, path)
    pixels = require("pydicom.pixels", path)
    ts = ds.file_meta.get("TransferSyntaxUID")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        raise ScanReadError(path, f"could not decode the pixel data ({getattr(ts, 'name', ts)}): "
                                  f"{exc}; the file may be truncated or corrupt: {CORRUPT_FIX}") from exc
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
                                          f"{CORRUPT_FIX}") from exc
        frames.append(Frame(path, ds, view, i + 1 if n_frames > 1 else None, n_frames,
                             values, color))
    return frames
