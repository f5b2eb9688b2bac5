"""``braintumor serve``: run discovery, the per-file analysis, the page's pieces (Streamlit's
AppTest, no browser), and the whole app in a real headless Chromium.

The browser test starts the real command line (``python -m streamlit run`` on
``braintumor/serve.py``) on a free 127.0.0.1 port with a tiny random-weight model built in
seconds, uploads a good and a broken image, and checks the page against what
:func:`braintumor.inference.predict` says for the same files. Chromium is Debian's
(``.ci/run`` installs it); a missing browser fails the test with the install command.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

import browser  # noqa: E402

from braintumor import serve  # noqa: E402

SERVE_FILE = str(Path(serve.__file__).resolve())


# -- unit: finding models -------------------------------------------------------------------

def _fake_run(folder: Path, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "model_card.json").write_text("{}")
    if weights:
        (folder / "model.keras").write_bytes(b"x")
    return folder


def test_find_runs_lists_trained_runs_and_resolves_the_default(tmp_path):
    models = tmp_path / "models"
    old = _fake_run(models / "mri" / "20250101-000000-a")
    new = _fake_run(models / "mri" / "20260101-000000-b")
    ct = _fake_run(models / "ct" / "20250101-000000-c")
    orphan = _fake_run(models / "ct" / "20240101-000000-d", weights=False)
    (models / "pretrained").mkdir()
    (models / "pretrained" / "backbone.keras").write_bytes(b"x")

    assert serve.find_runs(models) == [ct, old, new]
    assert serve.cards_without_weights(models) == [orphan]
    assert serve.find_runs(tmp_path / "absent") == []
    runs = serve.find_runs(models)
    assert serve.default_run(runs, models / "mri") == new  # a task folder: its newest run
    assert serve.default_run(runs, old) == old
    assert serve.default_run(runs, models / "nothing") is None
    assert serve.default_run(runs, None) is None
    assert serve.default_models_dir(models / "mri").resolve() == models.resolve()
    assert serve.default_models_dir(old).resolve() == models.resolve()
    assert serve.run_label(new, models) == "mri/20260101-000000-b"


def test_cli_parser_and_command_listen_on_localhost_by_default(tmp_path):
    (tmp_path / "models" / "mri").mkdir(parents=True)
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--model", str(tmp_path / "models" / "mri")])
    assert (args.host, args.port, args.func) == ("127.0.0.1", 7860, serve.run)
    cmd = serve.streamlit_command(args)
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4] == SERVE_FILE
    assert cmd[cmd.index("--server.address") + 1] == "127.0.0.1"
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    page_args = cmd[cmd.index("--") + 1:]
    assert page_args == ["--models-dir", str((tmp_path / "models").resolve()),
                         "--model", str((tmp_path / "models" / "mri").resolve())]


def test_import_is_cheap():
    import subprocess

    code = ("import sys, braintumor.serve; "
            "print(sorted(m for m in ('streamlit', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- unit: what the page says about a row ------------------------------------------------------

CARD = {"classes": ["healthy", "tumor"], "decision_threshold": 0.4, "temperature": 1.5}


def test_describe_binary_uses_the_cards_threshold_and_calibration():
    d = serve.describe({"predicted": "tumor", "p_healthy": 0.55, "p_tumor": 0.45}, CARD)
    assert d["predicted"] == "tumor" and d["probability_text"] == "P(tumor) = 0.450"
    assert "0.450 ≥ 0.400" in d["decision_text"] and "card's threshold" in d["decision_text"]
    assert d["calibration_text"].startswith("calibrated")
    d = serve.describe({"predicted": "healthy", "p_healthy": 0.9, "p_tumor": 0.1},
                       {"classes": ["healthy", "tumor"], "decision_threshold": None, "temperature": None})
    assert "0.100 < 0.500" in d["decision_text"] and "default threshold" in d["decision_text"]
    assert "not calibrated" in d["calibration_text"]
    d = serve.describe({"predicted": "glioma", "p_glioma": 0.7, "p_meningioma": 0.2, "p_pituitary": 0.1},
                       {"classes": ["glioma", "meningioma", "pituitary"]})
    assert d["probability"] == pytest.approx(0.7) and "no threshold" in d["decision_text"]


def test_row_warnings_from_the_columns_predict_may_return():
    assert serve.row_warnings({"in_distribution": True, "warning": ""}) == []
    assert serve.row_warnings({}) == []
    assert serve.row_warnings({"in_distribution": None, "warning": None}) == []
    w = serve.row_warnings({"in_distribution": False, "ood_score": 7.25, "warning": "looks like CT, model is MRI"})
    assert len(w) == 2 and "Out of distribution (OOD score 7.25)" in w[0]
    assert w[1] == "looks like CT, model is MRI"
    assert serve.row_warnings({"in_distribution": "False"})  # as read back from a CSV


# -- AppTest: the page without a browser --------------------------------------------------------

def _app_test(monkeypatch, *argv):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setattr(sys, "argv", [SERVE_FILE, *map(str, argv)])
    at = AppTest.from_file(SERVE_FILE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_no_model_page_says_so_and_gives_the_train_command(monkeypatch, tmp_path):
    models = tmp_path / "models"
    _fake_run(models / "mri" / "20250101-000000-a", weights=False)  # a card from git, no weights
    at = _app_test(monkeypatch, "--models-dir", models, "--model", models / "mri")
    assert serve.BANNER in at.warning[0].value
    assert [s.value for s in at.subheader] == ["No trained model yet"]
    assert [c.value for c in at.code] == ["braintumor train --task mri --epochs-finetune 0"]
    assert "no weights" in at.caption[0].value and "mri/20250101-000000-a" in at.caption[0].value
    assert not at.selectbox and not at.error


def test_a_model_folder_that_is_not_there_gives_the_no_model_page(monkeypatch, tmp_path):
    models = tmp_path / "models"
    _fake_run(models / "mri-crop-mask" / "20250101-000000-a", weights=False)
    # No such folder: the page falls back to the project's models/ instead of failing.
    assert serve.default_models_dir(models / "mri") == Path(os.environ["BRAINTUMOR_ROOT"]).expanduser() / "models"
    assert serve.default_run([models / "mri-crop-mask" / "20250101-000000-a"], models / "mri") is None
    at = _app_test(monkeypatch, "--models-dir", models, "--model", models / "mri")
    assert [s.value for s in at.subheader] == ["No trained model yet"]
    assert f"--model {models / 'mri'}" in at.info[0].value


def test_results_block_shows_errors_predictions_and_warnings():
    from streamlit.testing.v1 import AppTest

    script = f"""
import sys
sys.path.insert(0, {str(Path(SERVE_FILE).parents[1])!r})
import streamlit as st
from braintumor import serve
rows = [
    {{"name": "a.png", "error": "", "predicted": "tumor", "p_healthy": 0.3, "p_tumor": 0.7,
      "thumbnail": None, "gradcam": None, "gradcam_error": "", "modality": "CT", "ood_score": 9.5,
      "in_distribution": False, "warning": "this looks like CT; the model is for MRI"}},
    {{"name": "b.png", "error": "not an image (cannot identify image file)"}},
]
for r in rows:
    r["warnings"] = serve.row_warnings(r)
serve._results_block(st, rows, {{"classes": ["healthy", "tumor"], "decision_threshold": 0.4,
                                "temperature": 1.5}})
"""
    at = AppTest.from_string(script, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "Results: 1 of 2 file(s) analysed" in text
    assert "Predicted: tumor" in text and "P(tumor) = 0.700" in text and "0.700 ≥ 0.400" in text
    assert "modality: `CT`" in text and "in_distribution: `False`" in text
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Out of distribution (OOD score 9.5)") for w in warnings)
    assert "this looks like CT; the model is for MRI" in warnings
    assert [e.value for e in at.error] == ["Could not analyse b.png: not an image (cannot identify image file)"]


# -- with a real (tiny) model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    base = tmp_path_factory.mktemp("serve")
    run = browser.make_tiny_run(base / "models")
    good, broken = browser.write_good_and_broken(base / "uploads")
    from braintumor.inference import predict

    expected = predict([good, broken], model=run)
    return {"base": base, "models": base / "models", "run": run, "good": good, "broken": broken,
            "expected": expected}


def test_analyse_predicts_each_file_and_draws_gradcam(tiny):
    from braintumor.inference import Predictor

    tiff = io.BytesIO()
    Image.open(tiny["good"]).save(tiff, "TIFF")
    files = [("scan_good.png", tiny["good"].read_bytes()), ("scan_broken.png", tiny["broken"].read_bytes()),
             ("scan_good.tif", tiff.getvalue())]
    rows = serve.analyse(Predictor.load(tiny["run"]), files)
    exp = tiny["expected"]
    assert [r["name"] for r in rows] == ["scan_good.png", "scan_broken.png", "scan_good.tif"]
    good, broken, tif = rows
    assert good["error"] == "" and good["predicted"] == exp.loc[0, "predicted"]
    assert good["p_tumor"] == pytest.approx(exp.loc[0, "p_tumor"], abs=1e-6)
    assert tif["p_tumor"] == pytest.approx(good["p_tumor"], abs=1e-6)
    assert broken["error"] == exp.loc[1, "error"] != "" and broken["gradcam"] is None
    for r in (good, tif):
        assert Image.open(io.BytesIO(r["gradcam"])).size == (browser.SIZE, browser.SIZE)
        assert Image.open(io.BytesIO(r["thumbnail"])).mode == "RGB"


def test_app_in_headless_chromium(tiny):
    t0 = time.perf_counter()
    exp = tiny["expected"]
    predicted, p_tumor, error = exp.loc[0, "predicted"], exp.loc[0, "p_tumor"], exp.loc[1, "error"]
    with browser.running_app(tiny["models"], model=tiny["models"] / "mri") as url, browser.chromium_page() as page:
        page.goto(url)
        page.get_by_text(serve.BANNER).wait_for()
        page.get_by_text("About this model").wait_for()
        body = page.inner_text("body")
        assert browser.INTENDED_USE in body and browser.LIMITATION in body
        assert page.get_by_role("combobox").input_value() == f"mri/{browser.RUN_ID}"  # --model's run
        page.locator("input[type=file]").set_input_files([str(tiny["good"]), str(tiny["broken"])])
        page.get_by_text("Results: 1 of 2 file(s) analysed").wait_for(timeout=120_000)
        page.get_by_text(f"Could not analyse scan_broken.png: {error}").wait_for()
        page.get_by_text(f"Predicted: {predicted}").wait_for()
        body = page.inner_text("body")
        assert f"P(tumor) = {p_tumor:.3f}" in body
        sign = "≥" if p_tumor >= 0.4 else "<"
        assert f"{p_tumor:.3f} {sign} 0.400" in body and "calibrated (temperature 1.5)" in body
        assert serve.BANNER in body
        # the Grad-CAM overlay is a loaded image, not a broken one
        cam = page.locator("img[alt*='Grad-CAM'], [data-testid='stImage']:has-text('Grad-CAM') img").first
        cam.wait_for()
        assert page.evaluate("img => img.complete && img.naturalWidth > 0", cam.element_handle())
        shot = page.screenshot(full_page=True)
    assert len(shot) > 10_000
    print(f"\nbrowser test: {time.perf_counter() - t0:.1f} s")


def test_analyse_shows_each_slice_of_a_nifti_upload(tiny, tmp_path):
    """A volume gives one result per slice (capped on the page), each with its own prediction;
    an image uploaded beside it keeps its single row."""
    nib = pytest.importorskip("nibabel")
    from braintumor.inference import Predictor

    volume = np.zeros((48, 48, 15), np.float32)
    yy, xx = np.mgrid[:48, :48]
    volume[((yy - 24) ** 2 + (xx - 24) ** 2) < 18 ** 2] = 100.0
    volume += np.random.default_rng(0).normal(0, 5, volume.shape).astype(np.float32)
    path = tmp_path / "vol.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.eye(4)), str(path))
    files = [("vol.nii.gz", path.read_bytes()), ("scan_good.png", tiny["good"].read_bytes())]
    rows = serve.analyse(Predictor.load(tiny["run"]), files)
    slices = [r for r in rows if r["name"].startswith("vol.nii.gz")]
    assert len(slices) == serve.MAX_SLICES_SHOWN and rows[-1]["name"] == "scan_good.png"
    assert all(r["error"] == "" and r["gradcam"] is not None for r in slices)
    assert len({r["name"] for r in slices}) == len(slices)  # each slice named
    assert any("15 slices" in w for w in slices[-1]["warnings"])
