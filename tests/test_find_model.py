"""Finding the run a ``--model`` path means (predict_files.find_model)."""
from __future__ import annotations

import json

import pytest

from braintumor.config import Config, result_name, task_defaults
from braintumor.errors import ModelCardError
from braintumor.predict_files import find_model
from braintumor.models.modelcard import CARD_NAME, MODEL_NAME


def _run(folder, weights: bool):
    folder.mkdir(parents=True)
    (folder / CARD_NAME).write_text(json.dumps({"task": "mri", "classes": ["healthy", "tumor"],
                                                "image_size": 32, "preprocess": "none"}))
    if weights:
        (folder / MODEL_NAME).write_bytes(b"weights")
    return folder


def test_a_task_folder_means_its_newest_run_with_weights(tmp_path):
    task = tmp_path / "models" / "mri"
    trained = _run(task / "20261201-000000-efficientnet_lite0", weights=True)
    _run(task / "study-main-s3-abc", weights=False)  # a committed card: sorts last, has no weights
    assert find_model(task) == trained
    assert find_model(trained) == trained
    _run(task / "20261202-000000-efficientnet_lite0", weights=True)
    assert find_model(task).name == "20261202-000000-efficientnet_lite0"


def test_cards_only_still_resolve_so_the_error_can_say_the_weights_are_missing(tmp_path):
    task = tmp_path / "models" / "ct"
    newest = _run(task / "20261202-000000-efficientnet_lite0", weights=False)
    _run(task / "20261201-000000-efficientnet_lite0", weights=False)
    assert find_model(task) == newest


def test_a_missing_task_folder_names_where_the_tasks_default_model_lands(tmp_path):
    models = tmp_path / "models"
    _run(models / "mri-crop-mask" / "r1", weights=True)
    defaults = task_defaults("mri")
    default = result_name("mri", defaults["preprocess"], defaults["recipe"])
    with pytest.raises(ModelCardError) as e:
        find_model(models / "mri")
    message = str(e.value)
    assert str(models / "mri") in message and "mri-crop-mask" in message
    if default != "mri":
        assert f"saves to {models / default}" in message
    with pytest.raises(ModelCardError, match="no such model folder"):
        find_model(tmp_path / "nowhere" / "run")


def test_train_says_in_the_card_whether_the_run_used_the_tasks_default(tmp_path):
    from braintumor.cli.models import note_task_defaults
    from braintumor.models.modelcard import read_card

    run = _run(tmp_path / "run", weights=True)
    note_task_defaults(run, Config(task="mri"))
    note = read_card(run)["task_defaults"]
    assert note["this_run_uses_it"] and note["recipe"] == task_defaults("mri")["recipe"]
    assert read_card(run)["task"] == "mri"  # the rest of the card is kept
    note_task_defaults(run, Config(task="mri", preprocess="none", recipe="lesions"))
    assert not read_card(run)["task_defaults"]["this_run_uses_it"]


def _trained_as(folder, created: str, **config):
    run = _run(folder, weights=True)
    card = json.loads((run / CARD_NAME).read_text())
    card |= {"created": created, "training": {"config": Config(task="mri", **config).to_dict()}}
    (run / CARD_NAME).write_text(json.dumps(card))
    return run


def test_a_task_folder_prefers_the_tasks_default_training_then_the_newest(tmp_path):
    """A side study's run on another schedule can share the folder (same preprocessing and
    recipe) and be newer: the task's default run is still what the folder means."""
    folder = tmp_path / "models" / "mri-x"
    other = {2: 4, 4: 2}[task_defaults("mri")["epochs_finetune"]]
    default = _trained_as(folder / "study-main-s1-aaa", "2026-12-02T10:00:00+00:00")
    _trained_as(folder / "study-speed-s1-bbb", "2026-12-03T10:00:00+00:00", epochs_finetune=other)
    assert find_model(folder) == default
    newer = _trained_as(folder / "20261201-000000-efficientnet_lite0", "2026-12-04T10:00:00+00:00")
    assert find_model(folder) == newer  # by the card's time, though its name sorts first
