"""Pipeline → training → saved model → evaluation → predict → Grad-CAM, end to end on a
trivially separable synthetic dataset with a tiny backbone loaded from a ``.keras`` file.

Tumour images carry a bright blob inside a disc-shaped "head"; healthy ones do not. A
working pipeline must learn that in a few epochs; a broken one (labels shuffled,
images misaligned with labels, augmentation leaking into evaluation) cannot.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr

keras = pytest.importorskip("keras")

from braintumor import cli  # noqa: E402
from braintumor.config import Config  # noqa: E402
from braintumor.data.index import build_index  # noqa: E402
from braintumor.pipeline import make_dataset, prepare_arrays  # noqa: E402
from braintumor.data.splits import group_aware_split, write_manifest  # noqa: E402

SIZE = 32


def _head(rng, tumour: bool, blob_class: int | None = None) -> np.ndarray:
    h = w = int(rng.integers(40, 56))
    yy, xx = np.mgrid[:h, :w]
    cy, cx = h / 2 + rng.normal(0, 1), w / 2 + rng.normal(0, 1)
    r = h * 0.4
    img = np.zeros((h, w), np.float32)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = 90 + rng.normal(0, 5)
    img += rng.normal(0, 6, img.shape)
    if tumour:
        by, bx = cy + rng.uniform(-r / 3, r / 3), cx + rng.uniform(-r / 3, r / 3)
        radius = 9 + 3 * (blob_class or 0)
        img[(yy - by) ** 2 + (xx - bx) ** 2 < radius ** 2] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    return make_separable(tmp_path_factory.mktemp("separable"))


def make_separable(base: Path) -> dict:
    """A synthetic dataset in Kaggle layout, its manifest, and a project root under ``base``."""
    root = base / "Dataset"
    rng = np.random.default_rng(7)
    layout = {("Brain Tumor CT scan Images", "Healthy"): [("ct_healthy", None)] * 36,
              ("Brain Tumor CT scan Images", "Tumor"): [("ct_tumor", 0)] * 36,
              ("Brain Tumor MRI images", "Healthy"): [("mri_healthy", None)] * 12,
              ("Brain Tumor MRI images", "Tumor"): [("glioma", 0), ("meningioma", 1), ("pituitary", 2)] * 10}
    for (mod, cls), names in layout.items():
        folder = root / mod / cls
        folder.mkdir(parents=True)
        for i, (stem, blob) in enumerate(names):
            Image.fromarray(_head(rng, cls == "Tumor", blob)).save(folder / f"{stem} ({i + 1}).png")
    project = base / "project"
    index = build_index(root, workers=1, progress=False)
    manifest = group_aware_split(index, (0.6, 0.2, 0.2), seed=3)
    write_manifest(manifest, project / "data" / "splits" / "default.csv")
    backbone_file = base / "tiny_backbone.keras"
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    keras.Model(inputs, x).save(backbone_file)
    config = Config(task="ct", backbone=str(backbone_file), image_size=SIZE, batch_size=16,
                    epochs_frozen=40, epochs_finetune=2, lr_frozen=3e-2, lr_finetune=1e-3,
                    finetune_fraction=1.0, data_dir=str(root), root=str(project), seed=5)
    return {"root": root, "project": project, "manifest": manifest, "config": config}


@pytest.fixture(scope="module")
def trained_run(separable):
    from braintumor.training import train

    return train(separable["config"], verbose=0)


def test_dataset_shapes_dtypes_and_label_order(separable):
    rows = separable["manifest"].head(10)
    images = prepare_arrays([separable["root"] / p for p in rows["path"]], SIZE, workers=1, progress=False)
    y = np.array([0, 1, 0, 1, 1, 0, 0, 1, 1, 0])
    x_b, t_b = next(iter(make_dataset(images, y, 2, batch_size=10, training=False, seed=0)))
    assert x_b.shape == (10, SIZE, SIZE, 3) and x_b.dtype.name == "float32"
    assert t_b.shape == (10, 1) and np.array_equal(t_b.numpy()[:, 0], y)
    # evaluation batches are the images themselves, in order, unaugmented
    assert np.array_equal(x_b.numpy(), images.astype(np.float32))
    y3 = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 0])
    _, t_m = next(iter(make_dataset(images, y3, 3, batch_size=10, training=False, seed=0)))
    assert t_m.shape == (10, 3) and np.array_equal(t_m.numpy().argmax(1), y3)


def test_training_batches_are_augmented_shuffled_and_seeded(separable):
    rows = separable["manifest"].head(16)
    images = prepare_arrays([separable["root"] / p for p in rows["path"]], SIZE, workers=1, progress=False)
    y = np.arange(16) % 2

    def first_batch(seed):
        x, t = next(iter(make_dataset(images, y, 2, batch_size=16, training=True, seed=seed)))
        return x.numpy(), t.numpy()[:, 0]

    x1, t1 = first_batch(1)
    assert not np.array_equal(x1, images.astype(np.float32))
    assert x1.min() >= 0 and x1.max() <= 255
    assert sorted(t1.tolist()) == sorted(y.tolist())  # shuffled, nothing lost


def test_training_beats_chance_and_writes_model_card(trained_run):
    card = json.loads((trained_run / "model_card.json").read_text())
    assert card["task"] == "ct" and card["classes"] == ["healthy", "tumor"]
    # AUC, not accuracy at 0.5: the tiny model ranks well long before its bias settles;
    # the threshold is chosen on validation later (see the evaluate test).
    assert card["validation_metrics"]["auc"] > 0.9
    assert card["backbone"]["weights"] is not None or card["backbone"]["name"]
    assert card["data"]["split_manifest_sha256"]
    assert "not for clinical use" in card["intended_use"].lower().replace("not a medical device and ", "")
    history = (trained_run / "history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,phase") and len(history) > 2
    assert (trained_run / "model.keras").is_file()


def test_saved_model_round_trip_gives_identical_predictions(trained_run, separable):
    from braintumor.models.modelcard import load_run

    model, _ = load_run(trained_run)
    rows = separable["manifest"].head(8)
    images = prepare_arrays([separable["root"] / p for p in rows["path"]], SIZE, workers=1,
                            progress=False).astype(np.float32)
    reloaded, _ = load_run(trained_run)
    np.testing.assert_array_equal(model.predict(images, verbose=0), reloaded.predict(images, verbose=0))


def test_evaluate_freezes_threshold_from_validation_and_reports_cis(trained_run, separable):
    from braintumor.evaluate import evaluate_run

    cfg = separable["config"]
    report = evaluate_run(trained_run, cfg.replace(evaluation={"n_resamples": 200}), figures=True, progress=False)
    card = json.loads((trained_run / "model_card.json").read_text())
    assert card["decision_threshold"] == report["threshold"]["threshold"]
    assert card["temperature"] == pytest.approx(report["calibration"]["temperature"])
    acc = report["test"]["metrics"]["accuracy"]
    assert acc["low"] <= acc["value"] <= acc["high"] and acc["value"] > 0.7
    out = Path(cfg.root) / "reports" / "ct"
    for name in ("metrics.json", "roc_pr.png", "confusion_matrix.png", "reliability.png",
                 "training_curves.png", "gradcam.png"):
        assert (out / name).is_file(), name


def test_predict_folder_with_good_and_broken_files(trained_run, separable, tmp_path, capsys):
    folder = tmp_path / "scans"
    folder.mkdir()
    good = sorted((separable["root"] / "Brain Tumor CT scan Images" / "Tumor").glob("*.png"))[:3]
    for p in good:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good[0].read_bytes()[:60])
    (folder / "text.jpg").write_text("not an image")
    out = tmp_path / "results.csv"
    code = cli.main(["predict", str(folder), "--model", str(trained_run), "--out", str(out),
                     "--gradcam", str(tmp_path / "cams"), "--no-progress"])
    assert code == 1  # some files failed
    import pandas as pd

    df = pd.read_csv(out, keep_default_na=False)
    assert len(df) == 6
    bad = df[df["error"] != ""]
    assert sorted(Path(p).name for p in bad["path"]) == ["empty.png", "text.jpg", "truncated.png"]
    ok = df[df["error"] == ""]
    assert set(ok["predicted"]) <= {"healthy", "tumor"}
    assert np.allclose(ok["p_healthy"].astype(float) + ok["p_tumor"].astype(float), 1.0)
    assert (ok["predicted"] == "tumor").sum() >= 2
    assert len(list((tmp_path / "cams").glob("*.png"))) == 3
    assert "3 of 6 file(s) could not be read" in capsys.readouterr().err


def test_predict_missing_model_is_one_clear_error(tmp_path, capsys):
    img = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(img)
    assert cli.main(["predict", str(img), "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nope" in err and "Traceback" not in err


def test_gradcam_depends_on_the_trained_head(trained_run, separable):
    """Sanity check (Adebayo et al. 2018): randomising the head changes the map."""
    from braintumor.explain import gradcam
    from braintumor.models.modelcard import load_run

    model, _ = load_run(trained_run)
    tumour_rows = separable["manifest"][separable["manifest"]["label"] == "tumor"].head(6)
    images = prepare_arrays([separable["root"] / p for p in tumour_rows["path"]], SIZE, workers=1,
                            progress=False)
    trained = gradcam(model, images, class_index=1)
    assert trained.shape == (6, SIZE, SIZE) and trained.min() >= 0 and trained.max() <= 1
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()

    def rank_correlations(other):
        # A map with no evidence left (all zero) shares no ranking with the trained one: 0.
        return [0.0 if np.ptp(b) == 0 or np.ptp(a) == 0 else spearmanr(a.ravel(), b.ravel())[0]
                for a, b in zip(trained, other)]

    # Reversing the head's evidence must move the map off the regions it highlighted.
    dense.set_weights([-kernel, bias])
    assert np.median(rank_correlations(gradcam(model, images, class_index=1))) < 0.5
    # A randomised head (Adebayo et al.'s cascading check, at the last layer) changes the map.
    correlations = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        dense.set_weights([rng.normal(0, kernel.std() + 1e-3, kernel.shape).astype(kernel.dtype), bias])
        correlations += rank_correlations(gradcam(model, images, class_index=1))
    assert np.mean(correlations) < 0.95


def test_multiclass_subtype_task_trains_and_evaluates(separable):
    from braintumor.evaluate import evaluate_run
    from braintumor.training import train

    cfg = separable["config"].replace(task="mri_subtype", epochs_finetune=1)
    run = train(cfg, verbose=0)
    report = evaluate_run(run, cfg.replace(evaluation={"n_resamples": 100}), figures=True, progress=False)
    assert report["classes"] == ["glioma", "meningioma", "pituitary"]
    assert report["threshold"] is None  # arg-max decision; no binary threshold
    assert set(report["test"]["per_class"]) == {"glioma", "meningioma", "pituitary"}
    assert len(report["test"]["confusion_matrix"]) == 3
    card = json.loads((run / "model_card.json").read_text())
    assert card["temperature"] > 0 and card["decision_threshold"] is None
    assert (Path(cfg.root) / "reports" / "mri_subtype" / "confusion_matrix.png").is_file()


def test_pooled_task_reports_each_modality(separable):
    from braintumor.evaluate import evaluate_run
    from braintumor.training import train

    cfg = separable["config"].replace(task="pooled", epochs_finetune=0)
    run = train(cfg, verbose=0)
    report = evaluate_run(run, cfg.replace(evaluation={"n_resamples": 100}), figures=False, progress=False)
    by_modality = report["test_by_modality"]
    assert set(by_modality) == {"CT", "MRI"}
    assert sum(r["n_images"] for r in by_modality.values()) == report["test"]["n_images"]


def test_python_predict_api_accepts_task_folder(trained_run, separable):
    import braintumor

    images = sorted((separable["root"] / "Brain Tumor CT scan Images" / "Healthy").glob("*.png"))[:2]
    rows = braintumor.predict([str(p) for p in images], model=trained_run.parent)  # newest run
    assert list(rows["path"]) == [str(p) for p in images]
    assert (rows["error"] == "").all() and set(rows["model"]) == {f"ct/{trained_run.name}"}


def test_frozen_features_are_cached_and_shared_across_seeds(separable, monkeypatch):
    import braintumor.training as training

    config = separable["config"].replace(epochs_finetune=0, epochs_frozen=2, seed=11)
    training.train(config, verbose=0)
    assert len(list((config.cache_path / "features").glob("pooled-*.npy"))) >= 2  # train and validation
    calls = []
    real_extract = training.extract_features
    monkeypatch.setattr(training, "extract_features", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    training.train(config.replace(seed=12), verbose=0)
    assert calls == []  # another seed reads both splits from the cache
    training.train(config.replace(seed=12, image_size=SIZE + 8), verbose=0)
    assert len(calls) == 2  # another image size is another cache entry


def test_card_records_which_phase_was_kept(trained_run):
    training = json.loads((trained_run / "model_card.json").read_text())["training"]
    selection = training["phase_selection"]
    assert training["kept_phase"] in ("frozen", "finetune") and set(selection) >= {"rule", "frozen", "finetune"}
    better = selection["finetune"]["val_auc"] > selection["frozen"]["val_auc"] + 1e-6
    assert (training["kept_phase"] == "finetune") == better or (
        abs(selection["finetune"]["val_auc"] - selection["frozen"]["val_auc"]) <= 1e-6)


def test_a_finetune_that_hurts_is_discarded(separable):
    """Never keep a worse model: a fine-tuning phase with an absurd learning rate wrecks the
    network; the saved model is the head-only one, and the card says so."""
    from braintumor.training import train

    cfg = separable["config"].replace(lr_finetune=50.0, epochs_finetune=1, epochs_frozen=40, seed=11)
    run = train(cfg, verbose=0)
    card = json.loads((run / "model_card.json").read_text())
    selection = card["training"]["phase_selection"]
    assert card["training"]["kept_phase"] == "frozen"
    assert card["training"]["epochs_run"]["finetune"] == 1  # it did run
    finetune_auc = selection["finetune"]["val_auc"]
    assert not finetune_auc == finetune_auc or finetune_auc < selection["frozen"]["val_auc"]  # NaN or worse
    # The saved model is the head: its validation AUC is the head's.
    assert card["validation_metrics"]["auc"] == pytest.approx(selection["frozen"]["val_auc"], abs=1e-6)
    assert card["validation_metrics"]["auc"] > 0.9
