"""The study's external trade-off: per-seed values reach the summary, the figure plots only
arms scored on both sets, and nothing is drawn without them."""
from __future__ import annotations

from braintumor.studies.figures import tradeoff_points, write_tradeoff
from braintumor.studies.report import external_summary


def _record(seed: int, lgg: float | None, sartaj: float) -> dict:
    def entry(v):
        return {"metrics": {"roc_auc": {"value": v, "low": v - 0.05, "high": v + 0.05}}, "n_kept": 10}

    external = {"sartaj": entry(sartaj)}
    if lgg is not None:
        external["lgg-flair-a"] = entry(lgg)
    return {"seed": seed, "external": external}


def _arm(recipe: str, records: list[dict]) -> dict:
    return {"task": "mri", "preprocess": "crop-mask", "recipe": recipe, "n_seeds": len(records),
            "external": external_summary(records)}


def test_external_summary_keeps_each_seeds_value_and_pools_them():
    summary = external_summary([_record(1, 0.70, 0.98), _record(2, 0.74, 0.96)])
    auc = summary["lgg-flair-a"]["metrics"]["roc_auc"]
    assert auc["per_seed"] == {"1": 0.70, "2": 0.74}
    assert abs(auc["value"] - 0.72) < 1e-12 and auc["n_seeds"] == 2


def test_only_arms_scored_on_both_sets_are_points(tmp_path):
    summary = {"arms": {
        "mri-crop-mask-nsa": _arm("nsa", [_record(1, 0.73, 0.985), _record(2, 0.75, 0.98)]),
        "mri-crop-mask-x": _arm("x", [_record(1, None, 0.99)]),  # no same-scan report
        "ct": {"task": "ct", "preprocess": "none", "recipe": "none", "n_seeds": 1, "external": {}},
    }}
    points = tradeoff_points(summary)
    assert [p["arm"] for p in points] == ["mri-crop-mask-nsa"]
    assert points[0]["label"] == "mri: crop-mask + nsa" and points[0]["short"] == "nsa"
    assert points[0]["seeds"] == [(0.73, 0.985), (0.75, 0.98)]
    path = write_tradeoff(summary, tmp_path / "tradeoff.png")
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"


def test_no_figure_without_an_arm_on_both_sets(tmp_path):
    summary = {"arms": {"mri-crop-mask-x": _arm("x", [_record(1, None, 0.99)])}}
    assert write_tradeoff(summary, tmp_path / "t.png") is None
    assert not (tmp_path / "t.png").exists()


def test_annotations_say_what_an_arm_adds_to_crop_mask_and_rounds_share_a_figure():
    import matplotlib.pyplot as plt

    from braintumor.studies.figures import recipe_tradeoff

    zscore_nsa = {**_arm("nsa", [_record(1, 0.8, 0.98)]), "preprocess": "crop-mask-zscore"}
    plain = _arm("none", [_record(1, 0.6, 0.99)])
    summary = {"arms": {"a": zscore_nsa, "b": plain}}
    assert sorted(p["short"] for p in tradeoff_points(summary)) == ["crop-mask", "zscore + nsa"]
    fig, axes = plt.subplots(1, 2)
    assert recipe_tradeoff(summary, ax=axes[1]) is fig
    assert len(axes[1].texts) == 2 and not axes[0].texts
    plt.close(fig)


def test_an_arm_on_its_own_schedule_is_told_apart_from_the_same_recipe():
    zscore_nsa = {**_arm("nsa", [_record(1, 0.8, 0.98)]), "preprocess": "crop-mask-zscore"}
    summary = {"arms": {"a": zscore_nsa, "b": zscore_nsa},
               "own_schedules": {"b": {"image_size": 160, "finetune_fraction": 0.2}}}
    points = {p["arm"]: p for p in tradeoff_points(summary)}
    assert points["a"]["short"] == "zscore + nsa"
    assert points["b"]["short"] == "zscore + nsa [finetune_fraction 0.2, image_size 160]"
    assert points["b"]["label"] == "mri: crop-mask-zscore + nsa [finetune_fraction 0.2, image_size 160]"
