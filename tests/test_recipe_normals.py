"""The ``normals`` recipe: with an anomaly recipe, training sees the healthy real images and
their synthetic anomalies only, validation keeps its real tumours; alone it is a clear error."""
from __future__ import annotations

import types

import numpy as np
import pytest

from braintumor.config import Config
from braintumor.data.tasks import TASKS
from braintumor.recipes import normals


def _split(name: str, y) -> types.SimpleNamespace:
    return types.SimpleNamespace(name=name, y=np.asarray(y), task=TASKS["mri"])


def test_select_keeps_the_healthy_training_rows_and_all_validation_rows():
    config = Config(task="mri", recipe="nsa+normals")
    assert normals.select(_split("train", [1, 0, 0, 1, 0]), config).tolist() == [1, 2, 4]
    assert normals.select(_split("val", [1, 0, 0, 1, 0]), config) is None


@pytest.mark.parametrize("recipe", ["normals", "balanced+normals", "dfr+normals"])
def test_without_an_anomaly_recipe_it_says_what_to_combine_it_with(recipe):
    with pytest.raises(ValueError, match="nsa\\+normals"):
        normals.select(_split("train", [1, 0]), Config(task="mri", recipe=recipe))


def test_training_data_holds_healthy_rows_and_their_lesioned_copies_only(tmp_path):
    pytest.importorskip("keras")
    from braintumor.training import load_training_data
    from tests.test_training import make_separable

    config = make_separable(tmp_path)["config"].replace(recipe="lesions+normals")
    data = load_training_data(config, progress=False)
    images, y = data.arrays("train")
    healthy = np.flatnonzero(data.train.y == 0)
    n_lesioned = len(data.synthetic["train"][1])
    assert n_lesioned > 0 and len(y) == len(healthy) + n_lesioned
    assert (y[:len(healthy)] == 0).all() and (y[len(healthy):] == 1).all()
    np.testing.assert_array_equal(images[:len(healthy)], data.train.images[healthy])
    val_images, val_y = data.arrays("val")  # real tumours still validate
    assert (data.val.y == 1).any() and len(val_y) == len(data.val.y) + len(data.synthetic["val"][1])
