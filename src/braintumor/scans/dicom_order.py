"""The anatomical order of a series' frames: Image Position (Patient) projected on the slice
normal, else Instance Number; file names never decide it."""
from __future__ import annotations

import numpy as np

from .dicom_decode import Frame


def _floats(view, kw: str, n: int) -> np.ndarray | None:
    try:
        v = np.asarray([float(x) for x in view.get(kw)], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (n,) and np.all(np.isfinite(v)) else None


def sort_frames(frames: list[Frame]) -> tuple[list[Frame], str, list[float | None], list[str]]:
    """Frames in anatomical order, how they were sorted, each frame's position along the
    slice normal (mm) and warnings."""
    warnings: list[str] = []
    positions = [_floats(f.view, "ImagePositionPatient", 3) for f in frames]
    orients = [_floats(f.view, "ImageOrientationPatient", 6) for f in frames]

    def instance(f: Frame) -> tuple:
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
