"""predict on DICOM series, NIfTI volumes and images; out-of-distribution and modality checks;
parallel decoding that gives exactly the serial answer (issue 15).

A tiny model is trained on the separable synthetic dataset of test_training (seconds), its
checks fitted with :func:`braintumor.ood.fit_ood`; scans are written by pydicom/nibabel.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

keras = pytest.importorskip("keras")

from braintumor import cli  # noqa: E402
from braintumor.inference import Predictor, expand_inputs, predict  # noqa: E402
from braintumor.ood import OOD_NAME, fit_checks, fit_ood, modality_of  # noqa: E402
from braintumor.preprocess import load_prepared, prepare_image  # noqa: E402
from braintumor.scans import read_scan  # noqa: E402
from tests.test_scans import phantom_hu, write_ct, write_nifti  # noqa: E402
from tests.test_training import make_separable  # noqa: E402


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """A trained tiny CT run with its checks fitted, and a copy without them."""
    from braintumor.training import train

    sep = make_separable(tmp_path_factory.mktemp("ood"))
    cfg = sep["config"].replace(epochs_finetune=0, epochs_frozen=30)
    run = train(cfg, verbose=0)
    bare = run.parent / (run.name + "-bare")
    shutil.copytree(run, bare)
    summary = fit_ood(run, cfg, progress=False)
    return {**sep, "run": run, "bare": bare, "summary": summary, "config": cfg}


def _scans(folder: Path) -> dict:
    """A 3-slice CT DICOM series (shuffled file names), a 5-slice NIfTI volume, a PNG head,
    a 10x40 PNG and a noise image."""
    folder.mkdir(parents=True, exist_ok=True)
    series = folder / "patient" / "series1"
    series.mkdir(parents=True)
    hu = phantom_hu(64)
    uid = "1.2.826.0.1.3680043.8.498.1"
    for name, z in (("b.dcm", 2.0), ("a.dcm", 0.0), ("c.dcm", 1.0)):
        write_ct(series / name, hu + 20 * z, position=(0, 0, z), series_uid=uid)
    vol = np.stack([np.where(hu > 0, 300.0 + 50 * k, 0.0) for k in range(5)], axis=-1)
    nifti = write_nifti(folder / "head.nii.gz", vol, np.eye(4))
    rng = np.random.default_rng(0)
    head = np.zeros((60, 60), np.uint8)
    yy, xx = np.mgrid[:60, :60]
    head[(yy - 30) ** 2 + (xx - 30) ** 2 < 22 ** 2] = 90
    Image.fromarray(head).save(folder / "head.png")
    Image.fromarray(np.zeros((10, 40), np.uint8)).save(folder / "thin.png")
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(folder / "noise.png")
    return {"series": series, "nifti": nifti}


# -- the checks on made-up features ------------------------------------------------------------

def test_fit_checks_keeps_99_percent_and_names_the_modality():
    rng = np.random.default_rng(0)
    d = 8
    mri_mean, ct_mean = np.zeros(d), np.r_[10.0, np.zeros(d - 1)]

    def draw(mean, n):
        return mean + rng.normal(size=(n, d))

    train, y = draw(mri_mean, 2000), rng.integers(0, 2, 2000)
    val = draw(mri_mean, 2000)
    mod_train = np.vstack([draw(ct_mean, 500), draw(mri_mean, 500)])
    mod_val = np.vstack([draw(ct_mean, 500), draw(mri_mean, 500)])
    is_ct = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    checks, summary = fit_checks(train, y, val, mod_train, is_ct, mod_val, is_ct, model_modality="MRI")
    assert summary["val_keep_rate"] == pytest.approx(0.99, abs=0.002)
    assert summary["feature_dim"] == d and summary["modality"]["val_accuracy"] > 0.99
    fresh_mri = checks.check(draw(mri_mean, 1000))
    assert 0.97 < fresh_mri["in_distribution"].mean() < 1.0  # ~1% false flags, not 0, not many
    assert (fresh_mri["modality"] == "MRI").mean() > 0.95
    ct = checks.check(draw(ct_mean, 200))
    assert (ct["modality"] == "CT").mean() > 0.95 and not ct["in_distribution"].any()
    assert ct["warning"].str.contains("looks like CT, model is for MRI").mean() > 0.95  # ~1% 'other'
    assert (ct.loc[ct["modality"] == "CT", "warning"].str.startswith("looks like CT, model is for MRI")).all()
    assert ct["warning"].str.contains("far from the training images").all()
    junk = checks.check(np.full((3, d), 40.0))
    assert (junk["modality"] == "other").all() and (~junk["in_distribution"]).all()
    assert junk["warning"].str.startswith("looks like neither CT nor MRI").all()


# -- the checks on a trained model ---------------------------------------------------------------

def test_fit_ood_writes_arrays_and_card_entry(fitted):
    run, summary = fitted["run"], fitted["summary"]
    card = json.loads((run / "model_card.json").read_text())
    assert card["ood"] == summary and (run / OOD_NAME).is_file()
    from braintumor.files import sha256_file

    assert summary["sha256"] == sha256_file(run / OOD_NAME)
    assert summary["feature_dim"] == 16  # the tiny backbone's last conv
    assert summary["n_train"] > 20 and summary["n_val"] > 5 and 0.9 <= summary["val_keep_rate"] <= 1.0
    assert summary["modality"]["model_modality"] == "CT"
    assert summary["modality"]["n_train"]["CT"] > 0 and summary["modality"]["n_train"]["MRI"] > 0


def test_fit_ood_reuses_the_overlap_checks_cached_training_features(fitted, monkeypatch):
    """The study fits the checks after the external sets' overlap check, which caches the
    same model's features of the same training rows: the second pass reads them, not the model."""
    import braintumor.models.classifier as classifier

    cache = sorted((fitted["config"].cache_path / "external").glob("train-features-*.npy"))
    assert len(cache) == 1 and np.load(cache[0]).shape == (fitted["summary"]["n_train"], 16)
    calls = []
    real = classifier.extract_features
    monkeypatch.setattr(classifier, "extract_features", lambda f, images, *a, **k: calls.append(len(images))
                        or real(f, images, *a, **k))
    again = shutil.copytree(fitted["bare"], fitted["bare"].parent / "again")  # same model file: same key
    summary = fit_ood(again, fitted["config"], progress=False)
    assert fitted["summary"]["n_train"] not in calls  # val and the modality samples only
    assert summary["val_keep_rate"] == pytest.approx(fitted["summary"]["val_keep_rate"])


def test_predict_fills_checks_and_flags_junk(fitted, tmp_path, capsys):
    s = _scans(tmp_path / "in")
    good = sorted((fitted["root"] / "Brain Tumor CT scan Images" / "Tumor").glob("*.png"))[:2]
    for p in good:
        shutil.copy(p, tmp_path / "in" / p.name)
    out = tmp_path / "results.csv"
    code = cli.main(["predict", str(tmp_path / "in"), "--model", str(fitted["run"]), "--out", str(out),
                     "--no-progress"])
    assert code == 1  # thin.png is refused
    df = pd.read_csv(out, keep_default_na=False)
    ok = df[df["error"] == ""]
    assert set(ok["modality"]) <= {"CT", "MRI", "other"} and (ok["p_ct"] != "").all()
    assert ok["ood_score"].astype(float).min() >= 0
    noise = df[df["path"].str.endswith("noise.png")].iloc[0]
    assert noise["in_distribution"] == "False" and "far from the training images" in noise["warning"]
    err = capsys.readouterr().err
    assert f"warning: {tmp_path / 'in' / 'noise.png'}:" in err
    assert "note:" not in err  # the checks are there
    thin = df[df["path"].str.endswith("thin.png")].iloc[0]
    assert "40x10 px: at least 32 px on each side" in thin["error"] and thin["predicted"] == ""
    assert len(ok) == 2 + 1 + 1 + 3 + 5  # good, head, noise, DICOM slices, NIfTI slices


def test_scans_give_one_row_per_slice_and_a_volume_summary(fitted, tmp_path, capsys):
    s = _scans(tmp_path / "in")
    out = tmp_path / "results.csv"
    code = cli.main(["predict", str(s["series"]), str(s["nifti"]), str(tmp_path / "in" / "head.png"),
                     "--model", str(fitted["run"]), "--out", str(out), "--no-progress"])
    assert code == 0
    df = pd.read_csv(out, keep_default_na=False)
    dicom = df[df["series"] == str(s["series"])]
    assert list(dicom["slice"]) == ["a.dcm", "c.dcm", "b.dcm"]  # ordered by position, not name
    assert [Path(p).name for p in dicom["path"]] == ["a.dcm", "c.dcm", "b.dcm"]
    vol = df[df["series"] == str(s["nifti"])]
    assert list(vol["slice"]) == [f"head.nii.gz#slice={k}" for k in range(5)]
    image = df[df["path"].str.endswith("head.png")]
    assert len(image) == 1 and image["slice"].iloc[0] == "" and image["series"].iloc[0] == ""
    # the same preprocessing and resize as images
    predictor = Predictor.load(fitted["run"])
    size, pre = int(predictor.card["image_size"]), predictor.card["preprocess"]
    slices = read_scan(s["nifti"])
    expected = predictor.predict_arrays(np.stack([prepare_image(x.rgb, size, pre) for x in slices]))[:, 1]
    np.testing.assert_allclose(vol["p_tumor"].astype(float), expected, atol=1e-5)
    volumes = pd.read_csv(tmp_path / "results.volumes.csv", keep_default_na=False)
    assert list(volumes["series"]) == [str(s["series"]), str(s["nifti"])]
    assert list(volumes["n_slices"]) == [3, 5] and list(volumes["n_scored"]) == [3, 5]
    nii = volumes.iloc[1]
    assert nii["max_p_tumor"] == pytest.approx(expected.max(), abs=1e-3)
    assert nii["mean_p_tumor"] == pytest.approx(expected.mean(), abs=1e-3)
    assert nii["top_slices"].split(", ")[0] == f"head.nii.gz#slice={int(expected.argmax())}"
    printed = capsys.readouterr().out
    assert "Per series / volume:" in printed and "results.volumes.csv" in printed


def test_api_returns_volumes_and_expands_folders(fitted, tmp_path):
    s = _scans(tmp_path / "in")
    sources = expand_inputs([tmp_path / "in"])
    assert s["series"] in sources and s["nifti"] in sources
    assert not any(p.suffix == ".dcm" for p in sources)  # the series is one source
    df = predict([tmp_path / "in"], model=fitted["run"])
    assert len(df) == 3 + 5 + 3  # slices, slices, three PNGs (one refused)
    assert list(df.attrs["volumes"]["n_slices"]) == [5, 3]  # folder order: the volume, then the series


def test_model_without_checks_still_predicts_with_one_note(fitted, tmp_path, capsys):
    s = _scans(tmp_path / "in")
    out = tmp_path / "r.csv"
    assert cli.main(["predict", str(s["nifti"]), "--model", str(fitted["bare"]), "--out", str(out),
                     "--no-progress"]) == 0
    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 5 and (df["predicted"] != "").all()
    assert (df[["modality", "p_ct", "ood_score", "in_distribution"]] == "").all().all()
    # slice 0 windows to black: the flat-image rule needs no fitted checks
    assert list(df["warning"]) == ["flat image: a single grey level, nothing to classify"] + [""] * 4
    err = capsys.readouterr().err
    assert err.count("note: no out-of-distribution/modality checks") == 1 and "fit-ood" in err
    with pytest.raises(Exception, match="fit-ood"):
        modality_of(fitted["bare"], [s["nifti"]])


def test_stale_checks_file_is_ignored(fitted, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(fitted["run"], run)
    with np.load(run / OOD_NAME) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["threshold"] = np.asarray(1e9)
    np.savez(run / OOD_NAME, **arrays)
    predictor = Predictor.load(run)
    assert predictor.checks is None and "does not match" in predictor.checks_note


def test_modality_of_paths_and_arrays(fitted, tmp_path):
    s = _scans(tmp_path / "in")
    by_path = modality_of(fitted["run"], [s["nifti"], tmp_path / "in" / "thin.png"])
    assert list(by_path.columns[:3]) == ["path", "slice", "series"]
    assert len(by_path) == 6 and by_path["error"].iloc[-1] != ""
    assert set(by_path["model_modality"]) == {"CT"}
    predictor = Predictor.load(fitted["run"])
    arrays = np.stack([load_prepared(tmp_path / "in" / n, 32, "none") for n in ("head.png", "noise.png")])
    by_array = modality_of(predictor, arrays)
    assert len(by_array) == 2 and set(by_array["modality"]) <= {"CT", "MRI", "other"}
    assert not by_array["in_distribution"].iloc[1]  # noise


# -- parallel decoding ------------------------------------------------------------------------

def test_workers_give_the_serial_answer_with_crop_mask_and_error_rows(fitted, tmp_path):
    """Files decoded and crop-masked in worker processes, in order, errors in place, the same
    probabilities as the serial path and as load_prepared + predict_arrays."""
    folder = tmp_path / "many"
    folder.mkdir()
    files = sorted((fitted["root"] / "Brain Tumor MRI images").rglob("*.png"))[:14]
    for p in files:
        shutil.copy(p, folder / p.name)
    (folder / "zz_empty.png").write_bytes(b"")
    (folder / "aa_text.jpg").write_text("not an image")
    paths = expand_inputs([folder])
    predictor = Predictor.load(fitted["run"])
    predictor.card = {**predictor.card, "preprocess": "crop-mask"}
    parallel = predictor.predict_paths(paths, batch_size=4, progress=False, workers=2)
    serial = predictor.predict_paths(paths, batch_size=4, progress=False, workers=1)
    pd.testing.assert_frame_equal(parallel, serial)
    assert list(parallel["path"]) == [str(p) for p in paths]
    assert list(parallel["error"] != "") == [p.name in ("zz_empty.png", "aa_text.jpg") for p in paths]
    ok = [p for p in paths if p.name.endswith(".png") and p.name != "zz_empty.png"]
    direct = predictor.predict_arrays(np.stack([load_prepared(p, 32, "crop-mask") for p in ok]))[:, 1]
    np.testing.assert_allclose(parallel.loc[parallel["error"] == "", "p_tumor"], direct, atol=1e-5)


def test_prefetch_passes_errors_from_the_reading_thread():
    from braintumor.predict_files import _prefetch

    def chunks():
        yield 1
        yield 2
        raise RuntimeError("disk gone")

    got = []
    with pytest.raises(RuntimeError, match="disk gone"):
        for x in _prefetch(chunks()):
            got.append(x)
    assert got == [1, 2]


def test_flat_images_are_flagged_with_or_without_checks(fitted, tmp_path):
    for v in (0, 128):
        Image.fromarray(np.full((48, 48), v, np.uint8)).save(tmp_path / f"flat{v}.png")
    Image.fromarray(np.full((48, 48), 128, np.uint8) + np.eye(48, dtype=np.uint8) * 40).save(tmp_path / "line.png")
    paths = [tmp_path / "flat0.png", tmp_path / "flat128.png", tmp_path / "line.png"]
    with_checks = predict(paths, model=fitted["run"])
    assert list(with_checks["in_distribution"][:2]) == [False, False]
    assert with_checks["warning"][:2].str.startswith("flat image").all()
    assert not with_checks["warning"][2].startswith("flat image")
    without = predict(paths, model=fitted["bare"])
    assert list(without["warning"]) == ["flat image: a single grey level, nothing to classify"] * 2 + [""]


def test_decoding_workers_run_below_the_network():
    """Decoders take the cores only when the network leaves them (predict_files.start_pool)."""
    import os

    from braintumor.predict_files import WORKER_NICENESS, start_pool

    pool = start_pool(1)
    try:
        assert pool.submit(os.nice, 0).result() == min(19, os.nice(0) + WORKER_NICENESS)
    finally:
        pool.shutdown()
    same = start_pool(1, niceness=0)
    try:
        assert same.submit(os.nice, 0).result() == os.nice(0)
    finally:
        same.shutdown()
