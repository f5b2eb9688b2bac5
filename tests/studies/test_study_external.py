"""A study file's external sets: what they may say, and what a run is scored on."""
import pytest

from braintumor.errors import BrainTumorError
from braintumor.studies.external import evaluate_sets, parse_external


def test_external_sets_read_label_column_and_map():
    (spec,) = parse_external("s.toml", [{"name": "sub", "path": "x.csv", "tasks": ["mri_subtype"],
                                         "label_col": "subtype", "label_map": {"none": "-"}}])
    assert spec.label_col == "subtype" and spec.label_map == {"none": "-"} and spec.tasks == ("mri_subtype",)
    (plain,) = parse_external("s.toml", [{"name": "a", "path": "x.csv", "tasks": ["mri"]}])
    assert plain.label_col == "label"
    with pytest.raises(BrainTumorError, match="unknown keys \\['labels'\\]"):
        parse_external("s.toml", [{"name": "a", "path": "x.csv", "tasks": ["mri"], "labels": "y"}])


def test_a_set_for_other_tasks_or_not_on_disk_is_not_evaluated(tmp_path, monkeypatch):
    from braintumor.config import Config

    monkeypatch.setenv("BRAINTUMOR_EXTERNAL_DIR", str(tmp_path))
    specs = parse_external("s.toml", [{"name": "sub", "path": "absent.csv", "tasks": ["mri_subtype"]},
                                      {"name": "other", "path": "absent.csv", "tasks": ["ct"]}])
    said = []
    result = evaluate_sets(specs, tmp_path / "run", Config(task="mri_subtype"), say=said.append)
    assert set(result) == {"sub"} and "not found" in result["sub"]["missing"] and said
