"""The ``dfr`` recipe (deep feature reweighting): the refit touches only the logits layer, the
saved Keras model is the sklearn head exactly, it is seeded, and it unlearns a spurious cue.

The data: grey 64-px "heads"; tumours carry a bright blob. Every real tumour image (train
and validation) also carries a red corner marker — a perfect shortcut, like the source of
the Kaggle images. A cue-free held-out set (no markers) tells whether the head sees blobs.
"""
from __future__ import annotations

import json
import types

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from sklearn.metrics import roc_auc_score  # noqa: E402

from braintumor import recipes  # noqa: E402
from braintumor.config import Config  # noqa: E402
from heads import blob_head  # noqa: E402
from braintumor.data.tasks import TASKS  # noqa: E402
from braintumor.models.classifier import LOGITS_LAYER, build_classifier, extract_features  # noqa: E402
from braintumor.recipes import dfr  # noqa: E402
from braintumor.training import TrainingData  # noqa: E402

SIZE = 64
CONFIG = Config(task="ct", batch_size=32, seed=5)


def _head(rng, tumour: bool, marker: bool) -> np.ndarray:
    return blob_head(rng, SIZE, tumour, 8 if marker else 0)


def _split(rng, n_per_class: int, name: str, marker: bool = True):
    y = np.array([0, 1] * n_per_class)
    images = np.stack([_head(rng, t == 1, marker and t == 1) for t in y])
    return types.SimpleNamespace(images=images, y=y, task=TASKS["ct"], name=name)


@pytest.fixture(scope="module")
def world():
    """Train/val with the marker shortcut, a cue-free test set, and a fixed random backbone."""
    rng = np.random.default_rng(0)
    data = TrainingData(_split(rng, 60, "train"), _split(rng, 40, "val"))
    test = _split(rng, 80, "test", marker=False)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    return {"data": data, "test": test, "backbone": keras.Model(inputs, x)}


def _model(world):
    """A classifier on the shared backbone whose head is plain ERM on the real rows."""
    model = build_classifier(world["backbone"], 2, SIZE, 0.0)
    train = world["data"].train
    real = {"real": (extract_features(model, train.images, CONFIG.batch_size), train.y)}
    dfr.fold_into_logits(model, dfr.fit_head(real, 1.0))
    return model


def _auc(model, split) -> float:
    return roc_auc_score(split.y, model.predict(split.images.astype("float32"), verbose=0)[:, 0])


def test_refit_changes_only_the_logits_and_the_saved_model_is_the_sklearn_head(world, tmp_path):
    model = _model(world)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.layers}
    note = dfr.refine(model, world["data"], CONFIG, verbose=0)
    for layer in model.layers:
        same = all(np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
        assert same == (layer.name != LOGITS_LAYER), layer.name
    model.save(tmp_path / "model.keras")
    saved = keras.models.load_model(tmp_path / "model.keras", compile=False)
    logits = keras.Model(saved.input, saved.get_layer(LOGITS_LAYER).output)
    images = world["test"].images.astype("float32")
    head = dfr.fit_head(dfr.groups(model, world["data"], "train", CONFIG), note["C"])
    expected = head.decision_function(extract_features(saved, images, 32).astype(np.float64))
    np.testing.assert_allclose(logits.predict(images, verbose=0)[:, 0], expected, rtol=1e-4, atol=1e-4)
    assert np.ptp(expected) > 1.0  # a real head, not a constant


def test_note_records_the_choice_on_validation(world):
    note = dfr.refine(_model(world), world["data"], CONFIG, verbose=0)
    assert note["C"] in dfr.C_GRID and set(note["grid"]) == {str(c) for c in dfr.C_GRID}
    worst = {c: min(s.values()) for c, s in note["grid"].items()}
    assert worst[str(note["C"])] == max(worst.values())
    assert note["n_rows"]["train"]["real"] == 120 and note["n_rows"]["val"]["real"] == 80
    assert 0 < note["n_rows"]["train"]["pairs"] <= 120 and note["n_rows"]["train"]["pairs"] % 2 == 0
    assert note["pair_seeds"] == {"train": CONFIG.seed + 101, "val": CONFIG.seed + 102}
    json.dumps(note)  # goes into the model card


def test_deterministic_per_seed(world):
    def kernel(seed):
        model = _model(world)
        dfr.refine(model, world["data"], CONFIG.replace(seed=seed), verbose=0)
        return model.get_layer(LOGITS_LAYER).get_weights()[0]

    a, b, c = kernel(5), kernel(5), kernel(6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)  # other lesions in the pairs


def test_spurious_cue_is_learned_less_after_dfr(world):
    model = _model(world)
    erm_val, erm_test = _auc(model, world["data"].val), _auc(model, world["test"])
    assert erm_val > 0.99 and erm_test < 0.8  # the ERM head rides on the marker
    dfr.refine(model, world["data"], CONFIG, verbose=0)
    assert _auc(model, world["data"].val) > 0.99
    assert _auc(model, world["test"]) > max(0.9, erm_test + 0.15)


def test_sample_weights_balance_groups_and_classes():
    parts = {"real": (None, np.array([0, 0, 0, 1])), "pairs": (None, np.array([0, 1] * 4))}
    w = dfr.sample_weights(parts)
    assert w.mean() == pytest.approx(1.0)
    real, pairs = w[:4], w[4:]
    assert real.sum() == pytest.approx(pairs.sum())
    assert real[:3].sum() == pytest.approx(real[3]) and pairs[::2].sum() == pytest.approx(pairs[1::2].sum())


def test_ties_go_to_the_stronger_regularisation():
    scores = {0.01: {"real": 0.9, "pairs": 0.7}, 0.1: {"real": 1.0, "pairs": 0.8},
              1.0: {"real": 0.8, "pairs": 0.95}, 10.0: {"real": 0.99, "pairs": 0.8}}
    assert dfr.choose_c(scores) == 0.1


def test_a_group_without_both_classes_is_a_clear_error(world):
    rng = np.random.default_rng(1)
    no_healthy_val = types.SimpleNamespace(**{**vars(_split(rng, 4, "val")), "y": np.ones(8, int)})
    data = TrainingData(world["data"].train, no_healthy_val)
    with pytest.raises(ValueError, match="val split's real group needs both classes"):
        dfr.refine(_model(world), data, CONFIG, verbose=0)


def test_registered_binary_only_and_combines_with_lesions():
    assert "dfr" in recipes.available()
    recipes.check("lesions+dfr", binary_task=True)
    with pytest.raises(ValueError, match="healthy/tumour"):
        recipes.check("dfr", binary_task=False, task_name="mri_subtype")
    assert not hasattr(dfr, "synthetic") and not hasattr(dfr, "augmentation")


@pytest.mark.slow
def test_train_with_dfr_writes_the_note_into_the_card(tmp_path):
    from braintumor.training import train
    from tests.test_training import make_separable

    config = make_separable(tmp_path)["config"].replace(recipe="dfr", epochs_finetune=1, epochs_frozen=3)
    run = train(config, verbose=0)
    card = json.loads((run / "model_card.json").read_text())
    assert run.parent.name == "ct-dfr" and card["recipe"] == "dfr"
    note = card["training"]["recipe_steps"]["refine"]["dfr"]
    assert note["C"] in dfr.C_GRID and note["n_rows"]["val"]["pairs"] > 0
    assert card["training"]["synthetic_images"] == {"train": 0, "val": 0}
