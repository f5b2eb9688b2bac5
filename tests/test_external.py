"""braintumor.external: external test sets, evaluation only (issue 14).

Generated images only, except one integration test that reads the shared ``lgg-flair-a`` CSV.
The end-to-end tests train a tiny model on the synthetic Kaggle-layout set of
``tests/test_training.py`` whose MRI images are made to look different from its CT images
(inverted: bright background), so the CT-vs-MRI check has something to learn.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from braintumor.errors import BrainTumorError
from braintumor.external import analysis
from braintumor.external.inputs import DROP, load_external, parse_label_map

CLASSES = ("healthy", "tumor")


def _png(path: Path, value: int = 0, size: int = 24) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), value, np.uint8)).save(path)
    return path


# -- inputs --------------------------------------------------------------------------------

def test_folder_input_with_label_map(tmp_path):
    for name, n in (("no_tumor", 2), ("yes", 3)):
        for i in range(n):
            _png(tmp_path / "set" / name / f"{i}.png")
    ext = load_external(tmp_path / "set", CLASSES, parse_label_map(["healthy=no_tumor,yes=tumor"]))
    assert sorted(ext.rows["label"].value_counts().items()) == [("healthy", 2), ("tumor", 3)]
    assert ext.rows["group"].nunique() == 5  # no group column: one group per image
    assert set(ext.rows["y"]) == {0, 1} and ext.rows["path"].iloc[0].startswith("no_tumor/")
    with pytest.raises(BrainTumorError, match=r"set \(sub-folder names\).*no_tumor.*--label-map"):
        load_external(tmp_path / "set", CLASSES)


def _csv(tmp_path, rows, name="set.csv") -> Path:
    for r in rows:
        _png(tmp_path / r["path"])
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_csv_input_paths_relative_to_the_csv_groups_and_strata(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path.parent)  # paths must not depend on the working directory
    rows = [{"path": f"img/{lab}_{i}.png", "label": lab, "patient": f"P{i % 2}", "size": 100 * i}
            for lab in ("normal", "tumour") for i in range(4)]
    ext = load_external(_csv(tmp_path, rows), CLASSES, {"normal": "healthy"}, group_col="patient", strata=["size"])
    assert len(ext.rows) == 8 and ext.rows["group"].nunique() == 2
    assert (ext.rows["label"] == "tumor").sum() == 4  # British spelling accepted
    assert all(Path(f).is_file() for f in ext.rows["file"])
    assert list(ext.rows.columns[-1:]) == ["size"]
    # a label the model does not know can be dropped explicitly (e.g. healthy images for a sub-type model)
    ext = load_external(tmp_path / "set.csv", CLASSES, {"healthy": "tumour", DROP: "normal"})
    assert len(ext.rows) == 4 and ext.n_dropped == {"normal": 4}


@pytest.mark.parametrize("case, match", [
    ("missing", r"nope: no such file or folder; --data takes a folder"),
    ("label", r"set\.csv \(column 'label'\): label\(s\) \['maybe'\].*--label-map healthy=maybe"),
    ("column", r"set\.csv: no column 'patient' \(columns: path, label\); fix --group-col"),
    ("path", r"set\.csv: 1 path\(s\) do not exist relative to .*'img/gone\.png'"),
    ("map", r"--label-map a=b: neither side is one of the model's classes"),
])
def test_input_errors_are_one_line_naming_the_file_and_the_fix(tmp_path, case, match):
    rows = [{"path": "img/a.png", "label": "healthy"}, {"path": "img/b.png", "label": "tumor"}]
    if case == "label":
        rows[1]["label"] = "maybe"
    csv = _csv(tmp_path, rows)
    if case == "path":
        pd.DataFrame(rows + [{"path": "img/gone.png", "label": "tumor"}]).to_csv(csv, index=False)
    kwargs = {"group_col": "patient"} if case == "column" else {}
    data = tmp_path / "nope" if case == "missing" else csv
    with pytest.raises(BrainTumorError, match=match) as err:
        load_external(data, CLASSES, {"a": "b"} if case == "map" else None, **kwargs)
    assert "\n" not in str(err.value)


@pytest.mark.integration
def test_real_lgg_flair_a_csv_loads():
    shared = os.environ.get("BRAINTUMOR_SHARED_DIR")
    csv = Path(shared or "/nonexistent") / "datasets" / "external" / "lgg-flair-a" / "lgg_flair_a.csv"
    if not csv.is_file():
        if os.environ.get("BRAINTUMOR_REQUIRE_DATA") == "1":
            pytest.fail(f"BRAINTUMOR_REQUIRE_DATA=1 but {csv} is missing (set BRAINTUMOR_SHARED_DIR)")
        pytest.skip("set BRAINTUMOR_SHARED_DIR to the folder holding datasets/external/")
    ext = load_external(csv, CLASSES, group_col="patient", strata=["mask_pixels", "slices_from_tumour"])
    assert len(ext.rows) == 904 and ext.rows["group"].nunique() == 55
    assert set(ext.rows["label"]) == set(CLASSES)
    bins = analysis.stratum_bins(ext.rows["mask_pixels"], [1000, 4000])
    assert set(bins[ext.rows["label"] == "tumor"]) == {"<1000", "1000–4000", "≥4000"}


# -- analysis ------------------------------------------------------------------------------

def test_within_group_auc_is_computed_inside_each_group():
    # P1 ranks perfectly, P2 backwards, P3 ties; P4 has no healthy image and is left out.
    y = [0, 1, 0, 1, 0, 1, 1]
    p = [0.1, 0.9, 0.9, 0.1, 0.5, 0.5, 0.7]
    g = ["P1", "P1", "P2", "P2", "P3", "P3", "P4"]
    w = analysis.within_group_auc(y, p, g, n_resamples=200)
    assert {k: v["auc"] for k, v in w["per_group"].items()} == {"P1": 1.0, "P2": 0.0, "P3": 0.5}
    assert w["n_groups"] == 3 and w["n_groups_total"] == 4 and w["median"] == 0.5
    assert w["mean"]["value"] == pytest.approx(0.5) and 0.0 <= w["mean"]["low"] <= 0.5 <= w["mean"]["high"] <= 1.0
    # pooled over patients, P4's high score would count; within patients it cannot


def test_group_bootstrap_intervals_widen_when_images_cluster():
    from braintumor.external.inputs import ExternalSet
    from braintumor.external.run import Options, score

    rng = np.random.default_rng(0)
    n_patients, per = 20, 10
    y = np.tile(np.r_[np.zeros(per // 2), np.ones(per // 2)], n_patients).astype(int)
    patient_shift = np.repeat(rng.normal(0, 0.25, n_patients), per)  # images of a patient move together
    p = np.clip(0.5 + 0.1 * (y - 0.5) + patient_shift + rng.normal(0, 0.02, y.size), 0, 1)
    rows = pd.DataFrame({"y": y, "label": np.where(y, "tumor", "healthy"),
                         "patient": np.repeat([f"P{i}" for i in range(n_patients)], per)})
    probs = pd.DataFrame({"p_healthy": 1 - p, "p_tumor": p})
    chosen, keep = {"threshold": 0.5, "rule": "fixed"}, np.ones(y.size, bool)
    width = {}
    for col in ("patient", None):
        ext = ExternalSet(Path("x.csv"), rows.assign(group=rows["patient"] if col else np.arange(y.size).astype(str)),
                          CLASSES, group_col=col)
        m = score(ext, probs, keep, chosen, Options("x", n_resamples=400))["test"]["metrics"]["sensitivity"]
        width[col] = m["high"] - m["low"]
    assert width["patient"] > 2 * width[None]


def test_stratum_bins_edges_categories_and_per_bin_entries():
    values = pd.Series([0, 999, 1000, 3999, 4000, 5000])
    assert list(analysis.stratum_bins(values, [1000, 4000])) == ["<1000", "<1000", "1000–4000", "1000–4000",
                                                                 "≥4000", "≥4000"]
    assert list(analysis.stratum_bins(pd.Series([0, 1, 2, 1]), None)) == ["0", "1", "2", "1"]
    assert analysis.parse_strata(["mask_pixels:4000,1000", "subtype"]) == {"mask_pixels": [1000.0, 4000.0],
                                                                           "subtype": None}
    with pytest.raises(BrainTumorError, match="bin edges must be numbers"):
        analysis.parse_strata(["size:small"])
    rows = pd.DataFrame({"y": [0, 0, 1, 1, 1, 1], "group": list("abcdef"), "size": [0, 0, 500, 800, 5000, 6000]})
    p = np.array([0.1, 0.6, 0.2, 0.3, 0.9, 0.8])
    out = analysis.by_stratum(rows, {"size": [1000]}, p, threshold=0.5, n_resamples=100)["size"]["bins"]
    assert list(out) == ["<1000", "≥1000"]
    small, large = out["<1000"], out["≥1000"]
    assert (small["n"], small["n_tumor"], small["n_healthy"]) == (4, 2, 2)
    assert small["sensitivity"]["value"] == 0.0 and large["sensitivity"]["value"] == 1.0
    assert small["auc_vs_all_healthy"]["value"] == pytest.approx(0.5)  # 0.2, 0.3 vs healthy 0.1, 0.6
    assert large["auc_vs_all_healthy"]["value"] == 1.0 and "specificity" not in large
    assert small["specificity"]["value"] == 0.5


def test_feature_threshold_is_calibrated_on_known_pairs_and_distinct_neighbours():
    from braintumor.external import overlap

    rng = np.random.default_rng(0)
    base = rng.normal(size=(60, 32)).astype(np.float32)
    copies = base[:30] + rng.normal(scale=0.05, size=(30, 32)).astype(np.float32)  # near-duplicates
    feats = np.vstack([base, copies])
    hashes = rng.integers(0, 2**63, size=60, dtype=np.uint64)
    hashes = np.r_[hashes, hashes[:30] ^ np.uint64(0b101)]  # the copies are 2 bits away
    cal = overlap.calibrate_similarity(feats, hashes, [f"sha{i}" for i in range(90)])
    assert cal["n_pairs"] == 30 and cal["known_pairs_level"] > 0.95
    assert cal["distinct_images_level"] < cal["known_pairs_level"] == cal["threshold"]
    sim, arg = overlap.nearest_feature(np.vstack([copies[:3], rng.normal(size=(3, 32))]), base)
    assert (sim[:3] >= cal["threshold"]).all() and list(arg[:3]) == [0, 1, 2] and (sim[3:] < cal["threshold"]).all()
    few = overlap.calibrate_similarity(base, hashes[:60], [f"sha{i}" for i in range(60)])
    assert few["known_pairs_level"] is None and few["threshold"] == few["distinct_images_level"]
    dist, idx = overlap.nearest_hash(hashes[60:63], hashes[:60])
    assert list(dist) == [2, 2, 2] and list(idx) == [0, 1, 2]


def test_operating_point_comes_from_the_card_or_fails_with_the_fix():
    from braintumor.external.run import operating_point

    card = {"classes": ["healthy", "tumor"], "temperature": 1.3, "decision_threshold": 0.42,
            "threshold_rule": {"threshold": 0.42, "rule": "youden", "val_sensitivity": 0.9}}
    assert operating_point(card, Path("models/mri/r1")) == card["threshold_rule"]
    with pytest.raises(BrainTumorError, match=r"models/mri/r1: .*run `braintumor evaluate --model models/mri/r1`"):
        operating_point({"classes": ["healthy", "tumor"]}, Path("models/mri/r1"))
    assert operating_point({"classes": ["a", "b", "c"], "temperature": 1.0}, Path("r")) is None


# -- end to end with a tiny model -----------------------------------------------------------

def _invert(path: Path) -> None:
    Image.fromarray(255 - np.asarray(Image.open(path))).save(path)


@pytest.fixture(scope="module")
def tiny_ct(tmp_path_factory):
    """A tiny CT model (threshold and temperature set by ``evaluate`` on validation), trained on
    the synthetic set whose MRI images are inverted (a different-looking modality)."""
    keras = pytest.importorskip("keras")
    from tests.test_training import make_separable

    from braintumor.data.index import build_index
    from braintumor.data.splits import group_aware_split, write_manifest
    from braintumor.evaluate import evaluate_run
    from braintumor.training import train

    keras.utils.set_random_seed(0)  # the tiny backbone's initial weights
    sep = make_separable(tmp_path_factory.mktemp("external"))
    for f in (sep["root"] / "Brain Tumor MRI images").rglob("*.png"):
        _invert(f)
    index = build_index(sep["root"], workers=1, progress=False)
    manifest = group_aware_split(index, (0.6, 0.2, 0.2), seed=3)
    write_manifest(manifest, sep["project"] / "data" / "splits" / "default.csv")
    config = sep["config"].replace(epochs_finetune=1)
    run = train(config, verbose=0)
    evaluate_run(run, config.replace(evaluation={"n_resamples": 50}), figures=False, progress=False)
    return {**sep, "config": config, "run": run, "manifest": manifest}


def _external_ct_set(folder: Path, tiny: dict) -> Path:
    """Four 'patients' with healthy and tumour slices drawn afresh (off-centre on a larger canvas,
    so they are not near-duplicates of training), a resized copy of a training image and an
    MRI-looking (inverted) image; a CSV with patient and size columns."""
    from tests.test_training import _head

    rng = np.random.default_rng(123)
    rows = []
    for i in range(24):
        tumour = i % 2 == 1
        canvas = np.zeros((64, 64), np.uint8)
        head = _head(rng, tumour)
        top, left = (int(v) for v in rng.integers(0, 64 - head.shape[0], size=2))
        canvas[top:top + head.shape[0], left:left + head.shape[1]] = head
        path = f"{'tumor' if tumour else 'healthy'}/s{i}.png"
        _png(folder / path)
        Image.fromarray(canvas).save(folder / path)
        rows.append({"path": path, "label": "tumor" if tumour else "healthy",
                     "patient": f"P{i % 4 // 2 + 2 * (i // 12)}",  # four patients with both classes
                     "size": 0 if not tumour else int(rng.integers(100, 3000))})
    train_rows = tiny["manifest"]
    seen = train_rows[(train_rows["split"] == "train") & (train_rows["modality"] == "CT")
                      & (train_rows["label"] == "tumor")]["path"].iloc[0]
    image = Image.open(tiny["root"] / seen)
    image.resize((image.width * 3 // 2, image.height * 3 // 2)).save(folder / "tumor" / "copy.png")
    rows.append({"path": "tumor/copy.png", "label": "tumor", "patient": "P9", "size": 500})
    Image.fromarray(255 - np.asarray(Image.open(folder / "tumor" / "s1.png"))).save(folder / "tumor" / "mri.png")
    rows.append({"path": "tumor/mri.png", "label": "tumor", "patient": "P9", "size": 500})
    pd.DataFrame(rows).to_csv(folder / "set.csv", index=False)
    return folder / "set.csv"


def test_evaluate_external_end_to_end(tiny_ct, tmp_path, capsys):
    from braintumor import cli

    csv = _external_ct_set(tmp_path / "ext", tiny_ct)
    card_before = (tiny_ct["run"] / "model_card.json").read_text()
    cfg = tiny_ct["config"]
    args = ["evaluate-external", "--model", str(tiny_ct["run"]), "--data", str(csv), "--name", "toy",
            "--group-col", "patient", "--strata", "size:1000", "--resamples", "100", "--workers", "1",
            "--no-progress", "--data-dir", cfg.data_dir]
    os.environ["BRAINTUMOR_ROOT"] = cfg.root  # the CLI's project root (reset by the autouse fixture)
    assert cli.main(args) == 0
    out = Path(cfg.root) / "reports" / "external" / "toy" / tiny_ct["run"].name
    report = json.loads((out / "metrics.json").read_text())
    preds = pd.read_csv(out / "predictions.csv", keep_default_na=False).set_index("path")
    # nothing is refitted: the card is untouched and its threshold is the one applied
    assert (tiny_ct["run"] / "model_card.json").read_text() == card_before
    assert report["test"]["threshold"]["threshold"] == json.loads(card_before)["decision_threshold"]
    # the planted near-duplicate and the other-modality image are flagged and left out
    assert preds.loc["tumor/copy.png", "excluded"] == "overlap" and preds.loc["tumor/copy.png", "phash_distance"] <= 4
    assert preds.loc["tumor/mri.png", "excluded"] == "modality" and preds.loc["tumor/mri.png", "modality"] == "MRI"
    ex = report["exclusions"]
    assert ex["n_images"] == 26 and report["test"]["n_images"] == ex["n_kept"] == (preds["excluded"] == "").sum()
    assert ex["modality"]["excluded"].get("tumor", 0) >= 1 and ex["overlap_check"]["n_overlap"] >= 1
    assert ex["n_kept"] >= 20  # the fresh images are mostly kept
    # groups, within-group AUC and strata
    assert report["test"]["n_groups"] == len(set(preds.loc[preds["excluded"] == "", "group"]))
    assert report["within_group_auc"]["n_groups"] >= 3
    assert set(report["strata"]["size"]["bins"]) <= {"<1000", "≥1000"}
    assert {"p", "predicted", "group", "label", "modality"} <= set(preds.columns)
    for name in ("roc_pr.png", "within_group_auc.png", "strata.png"):
        assert (out / name).is_file(), name
    printed = capsys.readouterr().out
    assert "roc_auc" in printed and "within-group AUC" in printed


def test_evaluate_external_cli_error_is_one_line(tiny_ct, tmp_path, capsys):
    from braintumor import cli

    csv = _csv(tmp_path, [{"path": "a.png", "label": "healthy"}, {"path": "b.png", "label": "no"}])
    code = cli.main(["evaluate-external", "--model", str(tiny_ct["run"]), "--data", str(csv), "--name", "x"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error:") and "set.csv" in err and "--label-map" in err
    assert err.count("\n") == 1


def test_subtype_model_scores_tumour_images_by_subtype(tmp_path):
    """A multi-class (sub-type) model: healthy rows dropped by the label map, arg-max accuracy and macro AUC."""
    from braintumor.external.run import Options, score

    subtypes = ("glioma", "meningioma", "pituitary")
    rows = [{"path": f"img/{s}_{i}.png", "label": "tumor", "subtype": s} for s in subtypes for i in range(3)]
    rows += [{"path": "img/h.png", "label": "healthy", "subtype": "none"}]
    ext = load_external(_csv(tmp_path, rows), subtypes, parse_label_map(["-=none"]), label_col="subtype")
    assert len(ext.rows) == 9 and ext.n_dropped == {"none": 1}
    q = np.full((9, 3), 0.1)
    q[np.arange(9), ext.rows["y"]] = 0.8
    probs = pd.DataFrame(q, columns=[f"p_{s}" for s in subtypes])
    test = score(ext, probs, np.ones(9, bool), None, Options("x", n_resamples=50))["test"]
    assert test["metrics"]["accuracy"]["value"] == 1.0 and test["metrics"]["macro_auc_ovr"]["value"] == 1.0


# -- speed without changing a result: one network pass, caches of what the model does not change --

def test_one_pass_gives_the_probabilities_and_features_of_the_two_passes(tiny_ct):
    """predict_images' single pass (Predictor.logits_and_features) equals, bit for bit, the
    probabilities of Predictor.predict_arrays and the features of feature_model that
    evaluate-external used to compute in two passes (several batches and a partial one)."""
    from braintumor.external.run import PREDICT_BATCH, predict_images
    from braintumor.inference import Predictor
    from braintumor.models.classifier import POOL_LAYER, extract_features, feature_model

    predictor = Predictor.load(tiny_ct["run"])
    features = feature_model(predictor.model)
    assert features.output is predictor.model.get_layer(POOL_LAYER).output  # the same layer
    rng = np.random.default_rng(0)
    size = int(predictor.card["image_size"])
    images = rng.integers(0, 256, size=(2 * 256 + 37, size, size, 3), dtype=np.uint8)  # > extract_features' chunk
    probs, pooled = predict_images(predictor, images)
    old_probs = predictor.predict_arrays(images)
    assert isinstance(old_probs, np.ndarray)  # if predict_arrays grows columns, predict_images must follow
    assert list(probs.columns) == [f"p_{c}" for c in predictor.card["classes"]]
    assert np.array_equal(probs.to_numpy(), old_probs)
    old_features = extract_features(features, images, PREDICT_BATCH)
    assert pooled.dtype == old_features.dtype and np.array_equal(pooled, old_features)


def _read_report(config, name: str, run: Path) -> tuple[dict, str]:
    from braintumor.external.run import report_dir

    out = report_dir(config, name, run)
    return json.loads((out / "metrics.json").read_text()), (out / "predictions.csv").read_text()


def test_cached_single_pass_reports_equal_the_uncached_two_pass_ones(tiny_ct, tmp_path, monkeypatch):
    """metrics.json and predictions.csv are byte for byte those of the former code path (images
    decoded, pHashed and featurised afresh, a second network pass for the overlap features),
    both when the caches are cold and when they are warm; the warm run decodes, pHashes and
    featurises nothing."""
    import braintumor.models.classifier as classifier
    import braintumor.pipeline as pipeline
    from braintumor.external import cache, overlap, run as ext_run
    from braintumor.pipeline import prepare_arrays

    csv = _external_ct_set(tmp_path / "ext", tiny_ct)
    config = tiny_ct["config"].replace(batch_size=ext_run.PREDICT_BATCH)
    opts = ext_run.Options("eq", group_col="patient", strata=["size:1000"], n_resamples=100, workers=1,
                           figures=False, progress=False)
    monkeypatch.setattr(cache, "cache_dir", lambda config: tmp_path / "cache")

    def evaluate() -> tuple[dict, str]:
        ext_run.evaluate_external(tiny_ct["run"], csv, opts, config)
        return _read_report(config, "eq", tiny_ct["run"])

    with monkeypatch.context() as old:  # the former path: no caches, predict_arrays, features again
        def two_pass(predictor, images):
            probs = predictor.predict_arrays(images)
            return pd.DataFrame(probs, columns=[f"p_{c}" for c in predictor.card["classes"]]), None

        old.setattr(ext_run, "predict_images", two_pass)
        old.setattr(cache, "prepared_images", lambda files, shas, size, preprocess, config, workers, progress:
                    prepare_arrays(files, size, preprocess, workers=workers, progress=progress))
        old.setattr(cache, "phashes", lambda files, shas, config, workers, progress:
                    overlap.phashes([str(f) for f in files], workers, progress))
        old.setattr(cache, "cached_array", lambda path, compute, shape=None, mmap=False: compute())
        reference = evaluate()
    assert not (tmp_path / "cache").exists()

    cold = evaluate()
    written = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").iterdir())
    assert written == ["frozen", "images", "phashes"], written
    calls = {"decode": 0, "phash": 0, "features": 0}

    def counting(name, real):
        def wrapped(*a, **k):
            calls[name] += 1
            return real(*a, **k)
        return wrapped

    monkeypatch.setattr(pipeline, "prepare_arrays", counting("decode", pipeline.prepare_arrays))
    monkeypatch.setattr(overlap, "phashes", counting("phash", overlap.phashes))
    monkeypatch.setattr(classifier, "extract_features", counting("features", classifier.extract_features))
    warm = evaluate()
    assert calls == {"decode": 0, "phash": 0, "features": 0}
    for got in (cold, warm):
        assert got[0] == reference[0]  # every number, exclusion and interval
        assert got[1] == reference[1]  # predictions.csv, byte for byte
    assert reference[0]["exclusions"]["overlap_check"]["n_overlap"] >= 1  # the checks had work to do
    assert reference[0]["exclusions"]["modality"]["excluded"]


def test_external_caches_follow_the_files_contents(tmp_path, monkeypatch):
    """A changed file gives a new key (never stale pixels or hashes); an unchanged set is read
    back; an interrupted (wrong-shape) cache file is recomputed."""
    import braintumor.pipeline as pipeline
    from braintumor.config import Config
    from braintumor.external import cache, overlap

    rng = np.random.default_rng(0)
    files = [tmp_path / "set" / f"{i}.png" for i in range(4)]
    for f in files:
        f.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(f)
    config = Config(root=str(tmp_path / "project"))
    calls = {"decode": 0, "phash": 0}
    real_prepare, real_phashes = pipeline.prepare_arrays, overlap.phashes

    def prepare(*a, **k):
        calls["decode"] += 1
        return real_prepare(*a, **k)

    def phash(*a, **k):
        calls["phash"] += 1
        return real_phashes(*a, **k)

    monkeypatch.setattr(pipeline, "prepare_arrays", prepare)
    monkeypatch.setattr(overlap, "phashes", phash)

    def both():
        shas = cache.file_hashes(files)
        return (cache.prepared_images(files, shas, 16, "none", config, workers=1, progress=False),
                cache.phashes(files, shas, config, workers=1, progress=False))

    images, hashes = both()
    assert calls == {"decode": 1, "phash": 1}
    again, hashes_again = both()
    assert calls == {"decode": 1, "phash": 1}  # read back
    assert np.array_equal(again, images) and again.dtype == np.uint8 and hashes_again == hashes
    # one file's content changes under the same name
    Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8)).save(files[2])
    changed, changed_hashes = both()
    assert calls == {"decode": 2, "phash": 2}
    assert np.array_equal(changed, real_prepare(files, 16, "none", workers=1, progress=False))
    assert not np.array_equal(changed[2], images[2]) and np.array_equal(changed[[0, 1, 3]], images[[0, 1, 3]])
    assert changed_hashes == real_phashes([str(f) for f in files], 1, False) and changed_hashes[2] != hashes[2]
    # an interrupted or foreign cache file of the wrong shape is recomputed, not trusted
    key_file = next(p for p in cache.cache_dir(config).glob("images-*.npy")
                    if np.array_equal(np.load(p), changed))
    np.save(key_file, np.zeros((1, 16, 16, 3), np.uint8))
    assert np.array_equal(both()[0], changed) and calls["decode"] == 3
    # the key covers size, preprocessing and the backbone
    shas = cache.file_hashes(files)
    keys = {cache.content_key(shas, "images", 16, "none"), cache.content_key(shas, "images", 32, "none"),
            cache.content_key(shas, "images", 16, "crop-mask"), cache.content_key(shas[:3], "images", 16, "none")}
    assert len(keys) == 4
    assert cache.backbone_identity({"backbone": {"name": "a", "weight_sha256": "1"}}) != \
        cache.backbone_identity({"backbone": {"name": "a", "weight_sha256": "2"}})
