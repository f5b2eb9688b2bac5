"""DICOM and NIfTI input: scans → 2-D RGB slices for the model.

>>> from braintumor.scans import is_scan_path, read_scan, series_summary
>>> slices = read_scan("patient1/series3/")           # a DICOM series folder
>>> slices[0].rgb.shape, slices[0].label, slices[0].meta["window"]["kind"]
>>> read_scan("sub-01_T1w.nii.gz", min_foreground=0.05, stride=2)

* :func:`is_scan_path` — cheap test (name, or 132 bytes read) for DICOM files (``.dcm``,
  or the 'DICM' marker without extension), folders holding DICOM files, ``.nii``/``.nii.gz``.
* :func:`read_scan` — a list of :class:`Slice` (``rgb`` uint8 H×W×3, ``source``, ``index``,
  ``label``, ``series``, ``meta``). DICOM: see :mod:`braintumor.scans.dicom` (modality LUT,
  CT windows, MR header/percentile window, MONOCHROME1, multi-frame, series order). NIfTI:
  see :mod:`braintumor.scans.nifti` (RAS reorientation, radiological display, per-volume
  window).
* :func:`slice_table`, :func:`series_summary` — per-slice / per-series tables;
  :func:`summarise_volume` — per-series summary of per-slice predictions.
* Every failure is a :class:`ScanReadError` (an :class:`~braintumor.errors.ImageReadError`)
  naming the file and the fix; :class:`NoPixelDataError` and
  :class:`DecoderUnavailableError` are the two cases callers may want to tell apart.

This package imports nothing from braintumor but :mod:`braintumor.errors`; ``pydicom`` and
``nibabel`` are imported when a scan is read, not on import.
"""
from __future__ import annotations

from pathlib import Path

from .base import DecoderUnavailableError, NoPixelDataError, ScanReadError, Slice
from .dicom import read_dicom_file, read_dicom_series
from .dicom_files import is_dicom_file, is_dicom_folder
from .nifti import is_nifti_path, read_nifti
from .summary import series_summary, slice_table, summarise_volume
from .windows import CT_WINDOWS

__all__ = ["CT_WINDOWS", "DecoderUnavailableError", "NoPixelDataError", "ScanReadError", "Slice",
           "is_dicom_file", "is_dicom_folder", "is_nifti_path", "is_scan_path", "read_dicom_file",
           "read_dicom_series", "read_nifti", "read_scan", "series_summary", "slice_table",
           "summarise_volume"]


def is_scan_path(path: str | Path) -> bool:
    """True for a DICOM file (``.dcm``/``.dicom``/``.ima``, or 'DICM' at byte 128 whatever
    the name), a folder with DICOM files directly inside, or a ``.nii``/``.nii.gz`` name."""
    p = Path(path)
    if is_nifti_path(p):
        return True
    if p.is_dir():
        return is_dicom_folder(p)
    return is_dicom_file(p)


def read_scan(path: str | Path, modality_hint: str | None = None, *, ct_windows: str = "brain",
              stride: int = 1, min_foreground: float = 0.0,
              on_error: str = "raise") -> list[Slice]:
    """Read a DICOM file, a DICOM series folder or a NIfTI volume as 2-D slices.

    ``modality_hint`` ('CT' or 'MR'): used when the file does not say (NIfTI; DICOM without
    a CT/MR Modality); a DICOM header's CT/MR wins, with a warning in ``meta``.
    ``ct_windows``: ``'brain'`` (40/80 HU in all channels) or ``'multi'`` (brain, subdural
    80/200, bone 600/2800 as R, G, B). ``stride``/``min_foreground``: keep every n-th slice
    / slices with at least that share of ≥10%-grey pixels (series and volumes).
    ``on_error``: for series folders, ``'skip'`` leaves out unreadable files (noted in
    ``meta['warnings']``) instead of raising.
    """
    p = Path(path)
    if int(stride) < 1:
        raise ValueError("stride must be >= 1")
    if is_nifti_path(p):
        return read_nifti(p, modality_hint=modality_hint, ct_windows=ct_windows, stride=stride,
                          min_foreground=min_foreground)
    if p.is_dir():
        slices = read_dicom_series(p, modality_hint=modality_hint, ct_windows=ct_windows,
                                   on_error=on_error)
    elif not p.exists():
        raise ScanReadError(p, "no such file or folder")
    elif is_dicom_file(p):
        slices = read_dicom_file(p, modality_hint=modality_hint, ct_windows=ct_windows)
    else:
        raise ScanReadError(p, "not a DICOM file (no .dcm extension, no 'DICM' marker at byte "
                               "128) nor a NIfTI volume (.nii, .nii.gz)")
    return _select(slices, p, stride, min_foreground)


def _select(slices: list[Slice], path: Path, stride: int, min_foreground: float) -> list[Slice]:
    """Every ``stride``-th slice of each series, then those with enough foreground."""
    if stride == 1 and min_foreground <= 0:
        return slices
    from .windows import foreground_fraction

    out = []
    for s in slices:
        if s.index % stride:
            continue
        fg = foreground_fraction(s.rgb)
        s.meta["foreground"] = fg
        if fg >= min_foreground:
            out.append(s)
    if not out:
        raise ScanReadError(path, f"no slice has at least {min_foreground:.0%} foreground pixels "
                                  f"(of {len(slices)}, stride {stride}); lower min_foreground")
    return out
