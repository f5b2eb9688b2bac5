"""The ``dann`` recipe (class-conditional domain-adversarial fine-tuning): the reversal layer
negates gradients, the adversary's source signal is removed from the features, synthetic
rows do not train it, a step validation rejects is undone, and ``refine`` reads the sources
of the rows training selected.

The data: grey 64-px "heads"; tumours carry a bright blob. Each image comes from source
``a`` or ``b``; source ``a`` draws a red corner marker, and it holds most tumours (80 %) and
few healthy images (20 %), as the Kaggle sources do. Within each class the marker tells only
the source — what a conditional adversary can see and the reversal must remove.
"""
from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import cross_val_predict  # noqa: E402

from braintumor.config import Config  # noqa: E402
from heads import blob_head  # noqa: E402
from braintumor.data.tasks import TASKS  # noqa: E402
from braintumor.models.classifier import build_classifier, extract_features  # noqa: E402
from braintumor.recipes import dann  # noqa: E402
from braintumor.training import TrainingData  # noqa: E402

SIZE = 64
CONFIG = Config(task="ct", batch_size=16, seed=3, finetune_fraction=1.0, lr_finetune=5e-3, augment=False)


def _head(rng, tumour: bool, marker: bool) -> np.ndarray:
    return blob_head(rng, SIZE, tumour, 16 if marker else 0)


def _split(rng, n_per_class: int, name: str):
    y = np.array([0, 1] * n_per_class)
    source = np.where(rng.random(len(y)) < np.where(y == 1, 0.8, 0.2), 0, 1)  # 0 = "a" (marker)
    images = np.stack([_head(rng, t == 1, s == 0) for t, s in zip(y, source)])
    return types.SimpleNamespace(images=images, y=y, task=TASKS["ct"], name=name, source=source)


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    return TrainingData(_split(rng, 80, "train"), _split(rng, 40, "val"))


def _model(seed: int = 0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    return build_classifier(keras.Model(inputs, x, name="backbone"), 2, SIZE, 0.0)


def _source_auc_within_class(model, split) -> float:
    """Cross-validated AUC of a linear probe for the source from the pooled features and the
    class: what the features say about the source beyond the class."""
    f = extract_features(model, split.images, 32)
    f = np.concatenate([f, split.y[:, None] * 10.0], axis=1)
    probe = LogisticRegression(C=1.0, max_iter=5000)
    scores = cross_val_predict(probe, f, split.source, cv=5, method="decision_function")
    return float(roc_auc_score(split.source, scores))


def test_gradient_reversal_is_identity_forward_and_negated_backward():
    x = tf.constant([[1.0, -2.0, 3.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = dann.gradient_reversal(x, 0.3)
        loss = tf.reduce_sum(2.0 * y)
    np.testing.assert_allclose(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(loss, x).numpy(), [[-0.6, -0.6, -0.6]], rtol=1e-6)


def test_reversal_weight_rises_from_zero_to_the_final_weight():
    w = [dann.reversal_weight(p, 1.0) for p in np.linspace(0, 1, 11)]
    assert w[0] == 0.0 and np.all(np.diff(w) > 0)
    assert w[-1] == pytest.approx(2 / (1 + np.exp(-10)) - 1)


def _finetune(world, reversal: float, monkeypatch, epochs: int = 12):
    monkeypatch.setattr(dann, "LAMBDA", reversal)
    monkeypatch.setattr(dann, "EPOCHS", epochs)
    monkeypatch.setattr(dann, "MAX_AUC_DROP", 1.0)  # keep whatever it learns: the effect is tested
    model = _model()
    train = world.train
    note = dann.adversarial_finetune(model, train.images, train.y, train.source, world.arrays("val"),
                                     TASKS["ct"], CONFIG)
    return model, note


def test_the_reversal_removes_the_source_from_the_features(world, monkeypatch):
    plain, plain_note = _finetune(world, 0.0, monkeypatch)
    adversarial, note = _finetune(world, 1.0, monkeypatch)
    # Same data, steps and initialisation; only the reversed gradient differs.
    assert note["steps"] == plain_note["steps"] == 12 * 10
    without, with_reversal = (_source_auc_within_class(m, world.val) for m in (plain, adversarial))
    assert without > 0.9  # the marker is in the features when nothing removes it
    assert with_reversal < without - 0.1
    # The adversary itself finds the source harder to read by the end.
    assert note["last_tenth"]["source_accuracy"] < plain_note["last_tenth"]["source_accuracy"]


def test_synthetic_rows_do_not_train_the_adversary(world, monkeypatch):
    monkeypatch.setattr(dann, "EPOCHS", 1)
    model = _model()
    train = world.train
    note = dann.adversarial_finetune(model, train.images, train.y, np.full(len(train.y), -1),
                                     world.arrays("val"), TASKS["ct"], CONFIG)
    assert note["first_tenth"]["source_loss"] == 0.0 and note["last_tenth"]["source_accuracy"] == 0.0


def test_a_step_validation_rejects_is_undone(world, monkeypatch):
    monkeypatch.setattr(dann, "EPOCHS", 1)
    monkeypatch.setattr(dann, "MAX_AUC_DROP", -2.0)  # would need validation AUC to rise by 2
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    train = world.train
    note = dann.adversarial_finetune(model, train.images, train.y, train.source, world.arrays("val"),
                                     TASKS["ct"], CONFIG)
    assert note["kept"] is False
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_refine_reads_the_sources_of_the_selected_rows(world, monkeypatch):
    from braintumor.recipes import _sources

    monkeypatch.setattr(dann, "EPOCHS", 1)
    names = np.array(["a", "b"])
    monkeypatch.setattr(_sources, "split_sources",
                        lambda split, config: pd.Series(names[split.source]))
    chosen = np.concatenate([np.flatnonzero(world.train.source == 0)[:30],
                             np.repeat(np.flatnonzero(world.train.source == 1)[:5], 2)])  # repeats count
    data = TrainingData(world.train, world.val, selection={"train": chosen})
    note = dann.refine(_model(), data, CONFIG)
    assert note["sources"] == {"a": 30, "b": 10}
    assert note["steps"] == int(np.ceil(40 / CONFIG.batch_size))
