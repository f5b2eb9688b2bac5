"""DICOM and NIfTI input (braintumor.scans), on files the tests write themselves.

DICOM: pydicom FileDatasets (Explicit VR Little Endian) holding a synthetic head phantom
(skull ring, brain, a bright disc 'tumour'); NIfTI: nibabel images with RAS, LPS and
permuted affines, so reorientation is exercised. No patient data.
"""
from __future__ import annotations

import ast
import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pydicom = pytest.importorskip("pydicom")
nib = pytest.importorskip("nibabel")

from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import (ExplicitVRLittleEndian, JPEGLSLossless, generate_uid)  # noqa: E402

from braintumor.errors import BrainTumorError, ImageReadError  # noqa: E402
from braintumor.scans import (DecoderUnavailableError, NoPixelDataError, ScanReadError,  # noqa: E402
                              is_scan_path, read_scan, series_summary, slice_table,
                              summarise_volume)

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"


# -- writers ------------------------------------------------------------------------------

def phantom_hu(n: int = 64) -> np.ndarray:
    """Axial head phantom in HU: air -1000, skull ring 1000, brain 30, a 'tumour' disc at
    60 and a 40 HU square (the test pixel for the brain window's centre)."""
    yy, xx = np.mgrid[:n, :n]
    c = (n - 1) / 2
    r = ((yy - c) / (0.45 * n)) ** 2 + ((xx - c) / (0.38 * n)) ** 2
    hu = np.full((n, n), -1000.0)
    hu[r <= 1.0] = 1000.0
    hu[r <= 0.8] = 30.0
    hu[(yy - 0.4 * n) ** 2 + (xx - 0.6 * n) ** 2 <= (0.08 * n) ** 2] = 60.0
    hu[n // 2 - 2:n // 2 + 2, n // 2 - 2:n // 2 + 2] = 40.0
    return hu


def make_ds(path: Path, pixels: np.ndarray, *, modality: str = "CT", sop_class: str = CT_IMAGE,
            photometric: str = "MONOCHROME2", slope: float | None = None,
            intercept: float | None = None, window: tuple[float, float] | None = None,
            position=None, orientation=(1, 0, 0, 0, 1, 0), instance: int | None = None,
            series_uid: str | None = None, ts=ExplicitVRLittleEndian) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ts
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyInstanceUID = "1.2.3"
    if pixels is not None:
        if pixels.ndim == 3 and pixels.shape[-1] == 3 and pixels.dtype == np.uint8:
            ds.set_pixel_data(pixels, photometric_interpretation="RGB", bits_stored=8)
        else:
            ds.set_pixel_data(pixels, photometric_interpretation="MONOCHROME2",
                              bits_stored=pixels.dtype.itemsize * 8)
            ds.PhotometricInterpretation = photometric
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if position is not None:
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = list(orientation)
    if instance is not None:
        ds.InstanceNumber = instance
    return ds


def write_dcm(path: Path, pixels: np.ndarray, **kw) -> Path:
    make_ds(path, pixels, **kw).save_as(path, enforce_file_format=True)
    return path


def write_ct(path: Path, hu: np.ndarray, slope: float = 2.0, intercept: float = -1024.0,
             **kw) -> Path:
    stored = np.round((hu - intercept) / slope).astype(np.int16)
    return write_dcm(path, stored, slope=slope, intercept=intercept, **kw)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), str(path))
    return path


def linear(x: float, center: float, width: float) -> int:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR window onto 0..255 (the test's own oracle)."""
    c, w = center - 0.5, width - 1
    if x <= c - w / 2:
        return 0
    if x > c + w / 2:
        return 255
    return round(((x - c) / w + 0.5) * 255)


def single(slices):
    assert len(slices) == 1
    return slices[0]


# -- DICOM: intensities -------------------------------------------------------------------

def test_ct_rescale_then_brain_window(tmp_path):
    hu = phantom_hu()
    s = single(read_scan(write_ct(tmp_path / "ct.dcm", hu)))
    assert s.rgb.dtype == np.uint8 and s.rgb.shape == (64, 64, 3)
    assert np.array_equal(s.rgb[..., 0], s.rgb[..., 1]) and np.array_equal(s.rgb[..., 0], s.rgb[..., 2])
    grey = s.rgb[..., 0]
    # stored 532 is 40 HU only once slope 2 / intercept -1024 are applied: mid-grey
    assert abs(int(grey[32, 32]) - 128) <= 1 and grey[32, 32] == linear(40, 40, 80)
    assert grey[0, 0] == 0                     # air
    assert grey[hu == 1000].min() == 255       # skull, above 80 HU
    assert grey[hu == 30][0] == linear(30, 40, 80)   # brain
    assert grey[hu == 60][0] == linear(60, 40, 80)   # tumour
    assert s.meta["modality"] == "CT" and s.meta["window"]["kind"] == "ct-brain"
    assert s.meta["rescale"] == {"slope": 2.0, "intercept": -1024.0}
    assert s.label == "ct.dcm" and s.index == 0 and s.source == str(tmp_path / "ct.dcm")


def test_ct_multi_windows_are_brain_subdural_bone(tmp_path):
    hu = phantom_hu()
    s = single(read_scan(write_ct(tmp_path / "ct.dcm", hu), ct_windows="multi"))
    r, g, b = (s.rgb[..., i].astype(int) for i in range(3))
    centre = (32, 32)                                        # 40 HU
    assert abs(r[centre] - 128) <= 2                         # brain 40/80
    assert g[centre] == linear(40, 80, 200)          # subdural
    assert b[centre] == linear(40, 600, 2800)        # bone
    skull = hu == 1000
    assert r[skull].min() == 255 and g[skull].min() == 255
    assert b[skull][0] == linear(1000, 600, 2800) < 200  # bone window: skull not saturated
    assert [c["name"] for c in s.meta["window"]["channels"]] == ["brain", "subdural", "bone"]


def test_monochrome1_is_inverted(tmp_path):
    img = (np.arange(64 * 64).reshape(64, 64) % 1000).astype(np.uint16)
    m2 = single(read_scan(write_dcm(tmp_path / "m2.dcm", img, modality="MR", sop_class=MR_IMAGE,
                                    window=(500, 1000))))
    m1 = single(read_scan(write_dcm(tmp_path / "m1.dcm", img, modality="MR", sop_class=MR_IMAGE,
                                    window=(500, 1000), photometric="MONOCHROME1")))
    assert np.array_equal(m1.rgb.astype(int), 255 - m2.rgb.astype(int))
    assert m1.rgb[0, 0, 0] == 255 and m2.rgb[0, 0, 0] == 0   # stored 0: white in MONOCHROME1
    assert m1.meta["window"]["inverted"] == "MONOCHROME1"


def test_mr_header_window_is_honoured_after_rescale(tmp_path):
    img = np.zeros((32, 32), np.uint16)
    img[:, :8], img[:, 8:16], img[:, 16:24], img[:, 24:] = 100, 200, 250, 300
    # rescale x2: values 200, 400, 500, 600; header window 500/200 spans 400..600
    s = single(read_scan(write_dcm(tmp_path / "mr.dcm", img, modality="MR", sop_class=MR_IMAGE,
                                   slope=2.0, intercept=0.0, window=(500, 200))))
    grey = s.rgb[0, :, 0]
    assert grey[0] == 0 and grey[8] == 0            # 200, 400: at or below the window
    assert abs(int(grey[16]) - 128) <= 2            # 500: centre
    assert grey[24] == 255                          # 600: top
    assert s.meta["window"] == {"kind": "header", "center": 500.0, "width": 200.0,
                                "function": "LINEAR"}


def test_mr_voi_lut_sequence_preferred_over_window(tmp_path):
    img = np.tile(np.arange(0, 256, 16, dtype=np.uint16), (4, 1))   # 0, 16, ..., 240
    ds = make_ds(tmp_path / "lut.dcm", img, modality="MR", sop_class=MR_IMAGE, window=(10, 5))
    item = pydicom.dataset.Dataset()
    item.LUTDescriptor = [256, 0, 16]             # 256 entries from 0, declared 16-bit
    item.LUTData = (4 * (255 - np.arange(256))).astype("<u2").tobytes()  # OW, inverting, 0..1020
    ds.VOILUTSequence = [item]
    ds.save_as(tmp_path / "lut.dcm", enforce_file_format=True)
    s = single(read_scan(tmp_path / "lut.dcm"))
    expected = np.rint((255 - img.astype(float)) * 4 * 255 / 1020).astype(np.uint8)
    assert np.array_equal(s.rgb[..., 0], expected)
    assert s.meta["window"]["kind"] == "voi-lut"


def test_mr_without_window_uses_robust_percentiles(tmp_path):
    rng = np.random.default_rng(0)
    img = np.zeros((64, 64), np.uint16)
    yy, xx = np.mgrid[:64, :64]
    head = (yy - 32) ** 2 + (xx - 32) ** 2 <= 26 ** 2
    img[head] = rng.integers(200, 400, head.sum())
    img[32, 32] = 60000                              # one hot pixel
    s = single(read_scan(write_dcm(tmp_path / "mr.dcm", img, modality="MR", sop_class=MR_IMAGE)))
    grey = s.rgb[..., 0]
    assert grey[0, 0] == 0 and grey[32, 32] == 255
    # a min-max window would crush the head to ~1; the percentile window spreads it
    assert 90 <= np.median(grey[head]) <= 170
    assert s.meta["window"]["kind"] == "percentile"


def test_rgb_dicom_passes_through(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    s = single(read_scan(write_dcm(tmp_path / "sc.dcm", rgb, modality="OT", sop_class=SC_IMAGE)))
    assert np.array_equal(s.rgb, rgb)


def test_modality_hint_used_only_when_header_does_not_say(tmp_path):
    hu = phantom_hu(32)
    ot = write_ct(tmp_path / "ot.dcm", hu, modality="OT")
    assert single(read_scan(ot, modality_hint="CT")).meta["window"]["kind"] == "ct-brain"
    assert single(read_scan(ot)).meta["window"]["kind"] == "percentile"
    s = single(read_scan(write_ct(tmp_path / "ct.dcm", hu), modality_hint="MR"))
    assert s.meta["modality"] == "CT" and any("ignored" in w for w in s.meta["warnings"])
    with pytest.raises(ValueError):
        read_scan(ot, modality_hint="PET")


def test_file_without_extension_and_without_preamble(tmp_path):
    hu = phantom_hu(32)
    bare = write_ct(tmp_path / "IM0001", hu)
    assert is_scan_path(bare)
    assert abs(int(single(read_scan(bare)).rgb[16, 16, 0]) - 128) <= 2
    # an old-style dataset without preamble or file meta, named .dcm
    ds = make_ds(tmp_path / "old.dcm", np.round((hu + 1024) / 2).astype(np.int16),
                 slope=2.0, intercept=-1024.0)
    ds.preamble = None
    ds.file_meta = FileMetaDataset()
    pydicom.dcmwrite(tmp_path / "old.dcm", ds, implicit_vr=True, little_endian=True)
    assert (tmp_path / "old.dcm").read_bytes()[128:132] != b"DICM"
    assert abs(int(single(read_scan(tmp_path / "old.dcm")).rgb[16, 16, 0]) - 128) <= 2


# -- DICOM: series and frames ------------------------------------------------------------

def test_series_sorted_by_position_not_file_name_or_instance(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    uid = generate_uid()
    zs = [10.0, -5.0, 15.0, 0.0, 5.0]
    names = ["a.dcm", "b.dcm", "c.dcm", "d.dcm", "e.dcm"]
    for name, z, inst in zip(names, zs, [1, 2, 3, 4, 5]):
        hu = np.full((16, 16), -1000.0)
        hu[:, : int(z) + 6] = 40.0           # content differs per slice
        write_ct(folder / name, hu, position=(0, 0, z), instance=inst, series_uid=uid)
    (folder / "notes.txt").write_text("not dicom")
    slices = read_scan(folder)
    assert [s.meta["position"][2] for s in slices] == sorted(zs)
    assert [s.label for s in slices] == ["b.dcm", "d.dcm", "e.dcm", "a.dcm", "c.dcm"]
    assert [s.index for s in slices] == [0, 1, 2, 3, 4]
    assert {s.series for s in slices} == {str(folder)}
    assert all(s.meta["sorted_by"] == "position" for s in slices)
    summary = series_summary(slices)
    assert summary.loc[0, "n_slices"] == 5 and summary.loc[0, "slice_spacing"] == 5.0
    assert summary.loc[0, "sorted_by"] == "position"


def test_series_without_positions_falls_back_to_instance_number(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid = generate_uid()
    for name, inst in [("x1.dcm", 3), ("x2.dcm", 1), ("x3.dcm", 2)]:
        write_ct(folder / name, phantom_hu(16), instance=inst, series_uid=uid)
    slices = read_scan(folder)
    assert [s.meta["instance_number"] for s in slices] == [1, 2, 3]
    assert slices[0].meta["sorted_by"] == "instance_number"


def test_series_folder_skips_reports_and_splits_series(tmp_path):
    folder = tmp_path / "study"
    folder.mkdir()
    u1, u2 = generate_uid(), generate_uid()
    for i in range(3):
        write_ct(folder / f"ct{i}.dcm", phantom_hu(16), position=(0, 0, i), series_uid=u1)
    for i in range(2):
        write_dcm(folder / f"mr{i}.dcm", np.full((16, 16), 100 + i, np.uint16), modality="MR",
                  sop_class=MR_IMAGE, position=(0, 0, i), series_uid=u2)
    write_dcm(folder / "report.dcm", None, modality="SR", sop_class=BASIC_TEXT_SR)
    slices = read_scan(folder)
    assert len(slices) == 5
    by_series = series_summary(slices).set_index("series")
    assert sorted(by_series["n_slices"]) == [2, 3]
    assert all(k.startswith(f"{folder}#series=") for k in by_series.index)
    assert set(by_series["modality"]) == {"CT", "MR"}
    assert all("report.dcm" in w for w in by_series["warnings"])


def test_multiframe_gives_one_slice_per_frame(tmp_path):
    frames = np.stack([np.full((8, 8), v, np.uint16) for v in (100, 200, 300)])
    frames[:, 0, 0] = 0
    ds = make_ds(tmp_path / "mf.dcm", frames, modality="MR", sop_class=MR_IMAGE)
    ds.NumberOfFrames = 3
    ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
    slices = read_scan(tmp_path / "mf.dcm")
    assert [s.label for s in slices] == ["mf.dcm#frame=1", "mf.dcm#frame=2", "mf.dcm#frame=3"]
    assert [s.meta["frame"] for s in slices] == [1, 2, 3]
    # one percentile window for the whole file: the frames keep their relative brightness
    means = [float(s.rgb[1:, 1:, 0].mean()) for s in slices]
    assert means[0] < means[1] < means[2]


def test_enhanced_multiframe_uses_per_frame_groups(tmp_path):
    """Enhanced CT: per-frame rescale and positions (frames stored superior→inferior)."""
    Dataset = pydicom.dataset.Dataset
    hu = [phantom_hu(16) for _ in range(3)]
    intercepts = [-1024.0, -1000.0, -2000.0]
    stored = np.stack([np.round(h - b).astype(np.int16) for h, b in zip(hu, intercepts)])
    ds = make_ds(tmp_path / "enh.dcm", stored, sop_class=ENHANCED_CT)
    ds.NumberOfFrames = 3
    per_frame = []
    for i, (b, z) in enumerate(zip(intercepts, [20.0, 10.0, 0.0])):
        item, pos, pvt = Dataset(), Dataset(), Dataset()
        pos.ImagePositionPatient = [0, 0, z]
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = 1, b, "HU"
        item.PlanePositionSequence = [pos]
        item.PixelValueTransformationSequence = [pvt]
        per_frame.append(item)
    shared, orient = Dataset(), Dataset()
    orient.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PlaneOrientationSequence = [orient]
    ds.SharedFunctionalGroupsSequence = [shared]
    ds.PerFrameFunctionalGroupsSequence = per_frame
    ds.save_as(tmp_path / "enh.dcm", enforce_file_format=True)
    slices = read_scan(tmp_path / "enh.dcm")
    assert [s.meta["frame"] for s in slices] == [3, 2, 1]       # inferior first
    for s in slices:                                            # each frame's own intercept
        assert abs(int(s.rgb[8, 8, 0]) - 128) <= 2


# -- DICOM: errors -------------------------------------------------------------------------

def test_corrupt_truncated_and_empty_dicom_name_the_file(tmp_path):
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    with pytest.raises(ScanReadError, match="junk.dcm") as info:
        read_scan(junk)
    assert "re-export" in str(info.value)
    good = write_ct(tmp_path / "cut.dcm", phantom_hu())
    data = good.read_bytes()
    good.write_bytes(data[: len(data) - 3000])
    with pytest.raises(ScanReadError, match="cut.dcm"):
        read_scan(good)
    head = write_ct(tmp_path / "head.dcm", phantom_hu())
    head.write_bytes(head.read_bytes()[:300])          # cut inside the header
    with pytest.raises(ScanReadError, match=r"head\.dcm.*truncated") as info:
        read_scan(head)
    assert not isinstance(info.value, NoPixelDataError)
    (tmp_path / "zero.dcm").write_bytes(b"")
    with pytest.raises(ScanReadError, match=r"zero\.dcm.*empty"):
        read_scan(tmp_path / "zero.dcm")


def test_dicom_without_pixels_is_refused(tmp_path):
    sr = write_dcm(tmp_path / "report.dcm", None, modality="SR", sop_class=BASIC_TEXT_SR)
    with pytest.raises(NoPixelDataError, match=r"report\.dcm.*Basic Text SR.*not an image") as info:
        read_scan(sr)
    assert isinstance(info.value, ImageReadError) and isinstance(info.value, BrainTumorError)
    only = tmp_path / "only_sr"
    only.mkdir()
    write_dcm(only / "sr.dcm", None, modality="SR", sop_class=BASIC_TEXT_SR)
    with pytest.raises(NoPixelDataError, match="only_sr"):
        read_scan(only)


def test_empty_folder_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanReadError, match=r"empty.*no DICOM files"):
        read_scan(tmp_path / "empty")
    with pytest.raises(ScanReadError, match="nothere"):
        read_scan(tmp_path / "nothere")
    (tmp_path / "photo.png").write_bytes(b"x")
    with pytest.raises(ScanReadError, match="photo.png"):
        read_scan(tmp_path / "photo.png")


def test_compressed_without_decoder_names_file_and_fix(tmp_path):
    from pydicom.encaps import encapsulate
    from pydicom.pixels import get_decoder

    ds = make_ds(tmp_path / "jls.dcm", np.zeros((8, 8), np.uint16), modality="MR",
                 sop_class=MR_IMAGE)
    ds.file_meta.TransferSyntaxUID = JPEGLSLossless
    ds.PixelData = encapsulate([b"\xff\xd8not really jpeg-ls\xff\xd9"])
    ds["PixelData"].VR = "OB"
    ds.save_as(tmp_path / "jls.dcm", enforce_file_format=True)
    expected = ScanReadError if get_decoder(JPEGLSLossless).is_available else DecoderUnavailableError
    with pytest.raises(expected, match="jls.dcm") as info:
        read_scan(tmp_path / "jls.dcm")
    if expected is DecoderUnavailableError:
        assert "JPEG-LS" in str(info.value) and "pip install" in str(info.value)
        assert "gdcmconv" in str(info.value)


def test_on_error_skip_keeps_the_readable_slices(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    uid = generate_uid()
    for i in range(3):
        write_ct(folder / f"{i}.dcm", phantom_hu(16), position=(0, 0, i), series_uid=uid)
    (folder / "3.dcm").write_bytes(b"garbage" * 50)
    with pytest.raises(ScanReadError, match="3.dcm"):
        read_scan(folder)
    slices = read_scan(folder, on_error="skip")
    assert len(slices) == 3 and any("3.dcm" in w for w in slices[0].meta["warnings"])


# -- NIfTI ---------------------------------------------------------------------------------

AFFINES = {
    # voxel (i, j, k) → world (x, y, z) in RAS+ mm, each covering the box [0, 15]^3
    "RAS": np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
    "LPS": np.array([[-1, 0, 0, 15], [0, -1, 0, 15], [0, 0, 1, 0], [0, 0, 0, 1]], float),
    # i runs anterior, j runs to the left, k superior: needs a transpose as well as a flip
    "ALS": np.array([[0, -1, 0, 15], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], float),
}


@pytest.mark.parametrize("codes", sorted(AFFINES))
def test_nifti_orientation_radiological(tmp_path, codes):
    """World anterior-left → image top-right; anterior-right → top-left; superior slices
    have higher indices — whatever the voxel order on disk."""
    affine = AFFINES[codes]
    data = np.full((16, 16, 16), -1000.0)
    inv = np.linalg.inv(affine)

    def put(world, value):
        i, j, k = np.rint(inv @ np.array([*world, 1.0]))[:3].astype(int)
        data[i, j, k] = value

    put((0, 15, 11), 40.0)     # anterior (y max), left (x min), superior-ish (z=11)
    put((15, 15, 11), 1000.0)  # anterior-right
    path = write_nifti(tmp_path / f"vol_{codes}.nii.gz", data, affine)
    slices = read_scan(path, modality_hint="CT")
    assert len(slices) == 16
    s = slices[11]
    assert s.index == 11 and s.label == f"vol_{codes}.nii.gz#slice=11"
    assert s.meta["orientation_original"] == codes and s.meta["orientation"] == "RAS"
    grey = s.rgb[..., 0]
    assert abs(int(grey[0, 15]) - 128) <= 2    # anterior-left: top-right, mid-grey (40 HU)
    assert grey[0, 0] == 255                   # anterior-right: top-left
    assert int((grey > 0).sum()) == 2
    assert all(t.rgb.max() == 0 for t in slices if t.index != 11)


def test_nifti_mr_window_foreground_and_stride(tmp_path):
    zz, yy, xx = np.mgrid[:20, :32, :32]
    data = np.zeros((32, 32, 20))
    ball = ((xx - 16) ** 2 + (yy - 16) ** 2 + ((zz - 10) * 2) ** 2 <= 14 ** 2).transpose(2, 1, 0)
    data[ball] = 500.0 + 100 * np.random.default_rng(3).random(ball.sum())
    data[16, 16, 10] = 1e6                  # outlier
    path = write_nifti(tmp_path / "t1.nii", data, np.diag([1.0, 1.0, 2.0, 1.0]))
    everything = read_scan(path)
    assert len(everything) == 20
    assert everything[10].meta["window"]["scope"] == "volume"
    assert np.median(everything[10].rgb[..., 0][everything[10].rgb[..., 0] > 0]) > 60
    kept = read_scan(path, min_foreground=0.05)
    assert 0 < len(kept) < 20 and all(s.meta["foreground"] >= 0.05 for s in kept)
    assert kept[0].index > 0 and kept[-1].index < 19
    assert [s.index for s in read_scan(path, stride=4)] == [0, 4, 8, 12, 16]
    with pytest.raises(ScanReadError, match="lower min_foreground"):
        read_scan(path, min_foreground=0.99)


def test_nifti_4d_reads_first_volume_with_warning(tmp_path):
    data = np.zeros((8, 8, 4, 3))
    data[2:6, 2:6, :, 0] = 100.0
    data[:, :, :, 1:] = 7.0
    slices = read_scan(write_nifti(tmp_path / "bold.nii.gz", data, np.eye(4)))
    assert len(slices) == 4
    assert any("first of 3 volumes" in w for w in slices[0].meta["warnings"])
    assert slices[0].rgb[0, 0, 0] == 0 and slices[0].rgb[4, 4, 0] == 255   # volume 0's content


def test_truncated_and_corrupt_nifti_name_the_file(tmp_path):
    path = write_nifti(tmp_path / "vol.nii.gz", np.random.default_rng(4).random((32, 32, 32)),
                       np.eye(4))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ScanReadError, match=r"vol\.nii\.gz.*truncated or corrupt"):
        read_scan(path)
    (tmp_path / "text.nii").write_text("hello " * 100)
    with pytest.raises(ScanReadError, match=r"text\.nii"):
        read_scan(tmp_path / "text.nii")
    bad_gz = tmp_path / "bad.nii.gz"
    bad_gz.write_bytes(gzip.compress(b"not a nifti header" * 30))
    with pytest.raises(ScanReadError, match=r"bad\.nii\.gz"):
        read_scan(bad_gz)


# -- detection, tables, independence -------------------------------------------------------

def test_is_scan_path(tmp_path):
    write_ct(tmp_path / "IMG0001", phantom_hu(16))
    (tmp_path / "plain").write_bytes(b"\0" * 300)
    (tmp_path / "x.png").write_bytes(b"\0" * 300)
    series = tmp_path / "series"
    series.mkdir()
    write_ct(series / "IM1", phantom_hu(16))
    (tmp_path / "pngs").mkdir()
    (tmp_path / "pngs" / "a.png").write_bytes(b"\0" * 300)
    assert is_scan_path(tmp_path / "IMG0001")
    assert is_scan_path(tmp_path / "whatever.dcm")
    assert is_scan_path(tmp_path / "sub.nii.gz") and is_scan_path(tmp_path / "sub.NII")
    assert is_scan_path(series)
    assert not is_scan_path(tmp_path / "plain")
    assert not is_scan_path(tmp_path / "x.png")
    assert not is_scan_path(tmp_path / "pngs")
    assert not is_scan_path(tmp_path / "._x.dcm")


def test_summarise_volume():
    rows = pd.DataFrame({
        "source": ["v.nii.gz"] * 4 + ["s/1.dcm", "s/2.dcm", "photo.png"],
        "series": ["v.nii.gz"] * 4 + ["s", "s", None],
        "label": [f"v.nii.gz#slice={k}" for k in range(4)] + ["1.dcm", "2.dcm", "photo.png"],
        "p_tumour": [0.1, 0.9, 0.5, np.nan, 0.2, 0.4, 0.99],
    })
    out = summarise_volume(rows, "p_tumour").set_index("series")
    assert list(out.index) == ["v.nii.gz", "s"]                  # plain image left out
    v = out.loc["v.nii.gz"]
    assert v["n_slices"] == 4 and v["n_scored"] == 3
    assert v["max_p_tumour"] == 0.9 and v["mean_p_tumour"] == pytest.approx(0.5)
    assert v["top_slices"] == "v.nii.gz#slice=1, v.nii.gz#slice=2, v.nii.gz#slice=0"
    assert out.loc["s", "top_slices"] == "2.dcm, 1.dcm"
    by_source = summarise_volume(rows.drop(columns="series"), "p_tumour")
    assert list(by_source["source"]) == ["v.nii.gz", "s/1.dcm", "s/2.dcm", "photo.png"]


def test_slice_table_has_one_row_per_slice(tmp_path):
    path = write_nifti(tmp_path / "v.nii", np.ones((8, 8, 3)), np.eye(4))
    table = slice_table(read_scan(path))
    assert list(table["label"]) == [f"v.nii#slice={k}" for k in range(3)]
    assert set(table["series"]) == {str(path)} and set(table["format"]) == {"nifti"}


def test_scans_imports_only_errors_from_braintumor():
    root = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "scans"
    for py in root.glob("*.py"):
        for node in ast.walk(ast.parse(py.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 2:
                assert node.module == "errors", f"{py.name} imports ..{node.module}"
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith("braintumor"), py.name
