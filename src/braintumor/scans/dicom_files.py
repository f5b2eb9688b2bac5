"""Which paths are DICOM: file names, the 'DICM' marker, series folders (cheap: at most
132 bytes read per file, no pydicom)."""
from __future__ import annotations

from pathlib import Path

DICOM_SUFFIXES = frozenset({".dcm", ".dicom", ".ima"})
# Never sniffed for a preamble when scanning a folder (cheap, and never DICOM).
_OTHER_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp",
                             ".txt", ".csv", ".json", ".xml", ".html", ".pdf", ".zip", ".gz",
                             ".nii", ".py", ".md"})


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
