"""NIfTI volumes (``.nii``, ``.nii.gz``) → axial :class:`~braintumor.scans.base.Slice` lists
(nibabel).

Orientation. The volume is first reoriented to the closest canonical RAS+ orientation
(``nibabel.as_closest_canonical``: axis 0 runs to the patient's Right, axis 1 to Anterior,
axis 2 to Superior; an oblique volume is only permuted/flipped, never resampled). Axial
slice ``k`` is ``data[:, :, k]``, so slice numbers run inferior→superior like a DICOM
axial series. Each slice is displayed in the radiological convention used by DICOM
viewers and by the axial PNG/JPEG exports the model was trained on: anterior at the top
(row 0 = most anterior), the patient's left on the image's right (column 0 = patient's
right), i.e. as if looking up from the patient's feet. In array terms
``image = data[:, :, k].T[::-1, ::-1]``.

Intensities. MR and unknown modality: one robust window per volume, from the 0.5 and 99.5
percentiles of its finite non-zero voxels (zero is background in most MR and in every
skull-stripped volume). ``modality_hint='CT'``: values are taken as HU and shown in the CT
brain window (or brain/subdural/bone channels), as for DICOM CT.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import MAX_SLICE_PIXELS, MAX_VOLUME_VOXELS, ScanReadError, Slice, require
from .dicom_render import normalise_hint
from .windows import CT_WINDOW_MODES, ct_rgb, foreground_fraction, percentile_rgb, robust_window

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DISPLAY = "radiological: anterior up, patient's left on image right, slices inferior→superior"
_FIX = "re-export or re-download it (a .nii.gz must be complete: `gzip -t FILE` checks it)"
# Percentiles are computed on at most this many voxels (a regular subsample).
_PERCENTILE_SAMPLE = 4_000_000


def is_nifti_path(path: str | Path) -> bool:
    name = Path(path).name.lower()
    return name.endswith(NIFTI_SUFFIXES) and not name.startswith("._")


def axial_display(slice_ras: np.ndarray) -> np.ndarray:
    """A RAS+ axial slice ``data[:, :, k]`` (index [x, y]) → image rows/columns in the
    radiological convention: transpose so rows follow y and columns x, then flip both so
    row 0 is the most anterior and column 0 the patient's right."""
    return slice_ras.T[::-1, ::-1]


def _orientation_warnings(img) -> list[str]:
    warnings = []
    try:
        sform_code = int(img.header["sform_code"])
        qform_code = int(img.header["qform_code"])
        if sform_code == 0 and qform_code == 0:
            warnings.append("no qform/sform in the header: orientation unknown, voxel axes "
                            "taken as RAS")
    except (KeyError, TypeError, ValueError):
        pass
    rot = img.affine[:3, :3]
    col_norm = np.linalg.norm(rot, axis=0)
    col_norm[col_norm == 0] = 1
    cos = np.abs(rot / col_norm)
    if np.any((cos > 1e-3) & (cos < 1 - 1e-3)):
        warnings.append("oblique volume: slices follow the closest canonical axes (not resampled)")
    return warnings


def read_nifti(path: str | Path, *, modality_hint: str | None = None, ct_windows: str = "brain",
               stride: int = 1, min_foreground: float = 0.0) -> list[Slice]:
    """Axial slices of a NIfTI volume, inferior→superior; every ``stride``-th slice, and only
    those with at least ``min_foreground`` of their pixels ≥ 10% grey (e.g. 0.05 drops the
    empty slices above and below the head). 4-D volumes: the first volume, with a warning
    in ``meta``."""
    nib = require("nibabel", path)
    p = Path(path)
    if ct_windows not in CT_WINDOW_MODES:
        raise ValueError(f"ct_windows must be one of {CT_WINDOW_MODES}, not {ct_windows!r}")
    if int(stride) < 1:
        raise ValueError("stride must be >= 1")
    hint = normalise_hint(modality_hint)
    if not p.exists():
        raise ScanReadError(p, "no such file")
    if p.stat().st_size == 0:
        raise ScanReadError(p, f"empty file (0 bytes); {_FIX}")
    try:
        img = nib.load(p)
    except Exception as exc:  # noqa: BLE001 - nibabel raises many types for bad headers
        raise ScanReadError(p, f"not a readable NIfTI file ({type(exc).__name__}: {exc}); "
                               f"{_FIX}") from exc
    dtype = img.get_data_dtype()
    if dtype.fields is not None or dtype.kind == "c":
        raise ScanReadError(p, f"voxel type {dtype} (RGB or complex) is not supported; convert "
                               "the volume to one grey value per voxel")
    warnings: list[str] = []
    shape = tuple(int(n) for n in img.shape)
    if len(shape) < 2 or min(shape) < 1:
        raise ScanReadError(p, f"NIfTI image of shape {shape} holds no 2-D slices")
    if len(shape) > 3:
        n_volumes = int(np.prod(shape[3:]))
        if n_volumes > 1:
            warnings.append(f"{len(shape)}-D volume of shape {shape}: only the first of "
                            f"{n_volumes} volumes was read")
        img = img.slicer[(slice(None),) * 3 + (0,) * (len(shape) - 3)]
    if int(np.prod(img.shape)) > MAX_VOLUME_VOXELS or shape[0] * shape[1] > MAX_SLICE_PIXELS:
        raise ScanReadError(p, f"volume of shape {shape} exceeds the {MAX_VOLUME_VOXELS:,}-voxel "
                               "limit; crop or downsample it first")
    original = "".join(nib.aff2axcodes(img.affine))
    warnings += _orientation_warnings(img)
    try:
        data = np.asarray(img.dataobj).astype(np.float32) if len(img.shape) == 2 else None
        if data is not None:  # a single 2-D slice: give it a third axis
            img = nib.Nifti1Image(data[..., None], img.affine)
        canon = nib.as_closest_canonical(img)
        data = canon.get_fdata(dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - truncated gzip: EOFError, zlib.error, OSError…
        raise ScanReadError(p, f"could not read the voxel data ({type(exc).__name__}: {exc}); the "
                               f"file is truncated or corrupt: {_FIX}") from exc
    if not np.all(np.isfinite(data)):
        warnings.append("NaN/inf voxels set to 0")
        data = np.nan_to_num(data, nan=0.0, posinf=0.0, neginf=0.0)
    zooms = [float(z) for z in canon.header.get_zooms()[:3]]
    if zooms[0] > 0 and zooms[1] > 0 and max(zooms[:2]) / min(zooms[:2]) > 1.1:
        warnings.append(f"anisotropic in-plane voxels {zooms[0]:g}x{zooms[1]:g} mm: slices are "
                        "not resampled, so they look stretched")

    modality = hint or "unknown"
    if modality == "CT":
        if data.min() > -200:
            warnings.append("modality_hint='CT' but no voxel below -200: values may not be HU")
        window = None
    else:
        flat = data.ravel()
        step = max(1, flat.size // _PERCENTILE_SAMPLE)
        window = robust_window(flat[::step])
        window[2]["scope"] = "volume"
        if "warning" in window[2]:
            warnings.append(window[2]["warning"])

    n_slices = data.shape[2]
    out = []
    for k in range(0, n_slices, int(stride)):
        plane = axial_display(data[:, :, k])
        if window is None:
            rgb, info = ct_rgb(plane, ct_windows)
        else:
            rgb = percentile_rgb(plane, window)
            info = {**window[2], "center": window[0], "width": window[1],
                    "function": "LINEAR_EXACT"}
        fg = foreground_fraction(rgb)
        if min_foreground > 0 and fg < min_foreground:
            continue
        meta = {
            "format": "nifti",
            "modality": modality,
            "window": info,
            "slice": k,
            "n_slices": n_slices,
            "volume_shape": list(shape),
            "orientation_original": original,
            "orientation": "RAS",
            "display": DISPLAY,
            "voxel_size": zooms,
            "foreground": fg,
            "warnings": list(warnings),
        }
        out.append(Slice(rgb=np.ascontiguousarray(rgb), source=str(p), index=k,
                         label=f"{p.name}#slice={k}", series=str(p), meta=meta))
    if not out:
        raise ScanReadError(p, f"no slice has at least {min_foreground:.0%} foreground pixels "
                               f"(of {n_slices}, stride {stride}); lower min_foreground")
    return out
