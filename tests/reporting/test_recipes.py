"""Recipe comparison: matched runs paired seed by seed on external predictions."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from braintumor.errors import BrainTumorError
from braintumor.reporting.recipes import compare_recipes, recipe_table, write_recipe_report

CONFIG = {"task": "mri", "backbone": "efficientnet_lite0", "image_size": 224, "preprocess": "crop-mask",
          "epochs_frozen": 60, "epochs_finetune": 0, "lr_frozen": 1e-3, "lr_finetune": 2e-4,
          "finetune_fraction": 0.4, "batch_size": 32, "dropout": 0.2, "augment": True, "split_name": "default"}


def _run(root, recipe: str, seed: int, signal: float, **changes) -> str:
    folder = "mri-crop-mask" + ("-lesions" if recipe == "lesions" else "")
    run_id = f"run-{recipe}-{seed}"
    card = {"recipe": recipe, "preprocess": "crop-mask", "git_commit": "abc",
            "training": {"config": {**CONFIG, **changes, "seed": seed, "recipe": recipe}}}
    (root / "models" / folder / run_id).mkdir(parents=True)
    (root / "models" / folder / run_id / "model_card.json").write_text(json.dumps(card))
    rng = np.random.default_rng(seed + (100 if recipe == "lesions" else 0))
    patients = np.repeat([f"p{i}" for i in range(30)], 10)
    y = np.tile([0] * 5 + [1] * 5, 30)
    p = 1 / (1 + np.exp(-(signal * (y - 0.5) * 2 + rng.normal(0, 1, y.size))))
    out = root / "reports" / "external" / "lgg-flair-a" / run_id
    out.mkdir(parents=True)
    pd.DataFrame({"path": [f"s{i}.jpg" for i in range(y.size)], "label": np.where(y, "tumor", "healthy"),
                  "group": patients, "p": p, "predicted": np.where(p >= 0.5, "tumor", "healthy"),
                  "excluded": ""}).to_csv(out / "predictions.csv", index=False)
    (out / "metrics.json").write_text("{}")
    return run_id


def test_a_better_recipe_wins_the_paired_comparison(tmp_path):
    for seed in (1, 2, 3):
        _run(tmp_path, "none", seed, 0.0)
        _run(tmp_path, "lesions", seed, 1.5)
    report = compare_recipes(tmp_path / "reports", tmp_path / "models", "mri", "crop-mask", n_resamples=300)
    pooled = report["sets"]["lgg-flair-a"]["pooled"]["roc_auc"]
    assert report["seeds"] == [1, 2, 3] and pooled["n_seeds"] == 3
    assert pooled["difference"] > 0.2 and pooled["low"] > 0 and pooled["p_value"] < 0.01
    assert abs(pooled["a"] - 0.5) < 0.1
    js, md = write_recipe_report(report, tmp_path / "reports" / "comparisons")
    assert "lgg-flair-a" in md.read_text() and json.loads(js.read_text())["b"] == "lesions"
    assert "AUC" in recipe_table(report)


def test_no_difference_is_not_significant(tmp_path):
    for seed in (1, 2, 3):
        _run(tmp_path, "none", seed, 1.0)
        _run(tmp_path, "lesions", seed, 1.0)
    pooled = compare_recipes(tmp_path / "reports", tmp_path / "models", "mri", "crop-mask",
                             n_resamples=300)["sets"]["lgg-flair-a"]["pooled"]["roc_auc"]
    assert pooled["low"] < 0 < pooled["high"]


def test_runs_on_different_schedules_are_not_paired(tmp_path):
    _run(tmp_path, "none", 1, 0.0)
    _run(tmp_path, "lesions", 1, 1.0, epochs_finetune=2)
    with pytest.raises(BrainTumorError, match="no matched seeds"):
        compare_recipes(tmp_path / "reports", tmp_path / "models", "mri", "crop-mask")
