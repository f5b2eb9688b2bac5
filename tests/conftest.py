"""Shared fixtures: isolation from the developer's environment, synthetic data, real data.

Every test runs with ``BRAINTUMOR_ROOT`` pointing at its own temp folder (so no cache or
report lands in the repository), without ``BRAINTUMOR_DATA_DIR``, and with
:func:`braintumor.data.dataset.download` replaced by a function that fails (so no test can reach
the network by accident). Tests that need either set it up explicitly.

The real dataset is found once per session, from the environment as it was when pytest
started: ``$BRAINTUMOR_DATA_DIR``, else the shared mirror beside the checkout
(``../shared/datasets/brain-tumor-multimodal-ct-mri/Dataset``, what the Makefile uses).
Without it integration tests skip, unless ``BRAINTUMOR_REQUIRE_DATA=1`` (CI), where they fail.
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import synthetic` from any test

import synthetic  # noqa: E402

import braintumor.data.dataset  # noqa: E402
from braintumor.config import DATA_DIR_ENV, ROOT_ENV, Config  # noqa: E402
from braintumor.errors import DatasetError  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
REQUIRE_DATA_ENV = "BRAINTUMOR_REQUIRE_DATA"
MIRROR_RELPATH = Path("shared/datasets/brain-tumor-multimodal-ct-mri/Dataset")
# Captured at import, before any test's monkeypatching of the environment.
_ENV_AT_START = {k: os.environ.get(k) for k in (DATA_DIR_ENV, REQUIRE_DATA_ENV, "BRAINTUMOR_SHARED_DIR")}


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "project"))

    def no_download(dest):
        raise DatasetError(f"download disabled in tests (asked for {dest})")

    monkeypatch.setattr(braintumor.data.dataset, "download", no_download)


# -- synthetic data ---------------------------------------------------------------------

@pytest.fixture(scope="session")
def synthetic_ds(tmp_path_factory) -> synthetic.SyntheticDataset:
    """One synthetic dataset per session. Read-only: use ``synthetic_copy`` to modify."""
    return synthetic.make_dataset(tmp_path_factory.mktemp("synthetic") / "archive")


@pytest.fixture
def synthetic_copy(synthetic_ds, tmp_path) -> synthetic.SyntheticDataset:
    """A private, writable copy of the session's synthetic dataset."""
    base = tmp_path / "archive"
    shutil.copytree(synthetic_ds.base, base)
    return dataclasses.replace(synthetic_ds, base=base, root=base / "Dataset",
                               files=synthetic_ds.files.copy())


@pytest.fixture(scope="session")
def synthetic_index(synthetic_ds):
    """The index of the synthetic dataset, built once (in-process, no cache)."""
    from braintumor.data.index import build_index

    return build_index(synthetic_ds.root, workers=1, progress=False)


# -- real data --------------------------------------------------------------------------

def resolve_real_dataset(env: dict, project: Path = PROJECT) -> tuple[Path | None, str, str]:
    """Where the real dataset is, or what to do without it: ``(root, action, message)``.

    ``action`` is ``"use"``, ``"skip"`` (absent) or ``"fail"`` (absent while
    ``BRAINTUMOR_REQUIRE_DATA=1``, or ``$BRAINTUMOR_DATA_DIR`` set to a folder without it:
    a broken setup, not an absent dataset, is never silently skipped).
    """
    from braintumor.data.dataset import find_root

    if env.get(DATA_DIR_ENV):
        path = Path(env[DATA_DIR_ENV])
        root = find_root(path)
        if root is not None:
            return root, "use", ""
        return None, "fail", (f"${DATA_DIR_ENV}={path} is set but does not hold the dataset (expected "
                              "'Brain Tumor CT scan Images/' and 'Brain Tumor MRI images/')")
    candidates = []
    if env.get("BRAINTUMOR_SHARED_DIR"):
        candidates.append(Path(env["BRAINTUMOR_SHARED_DIR"]) / MIRROR_RELPATH.relative_to("shared"))
    candidates.append(project.parent / MIRROR_RELPATH)
    for path in candidates:
        root = find_root(path)
        if root is not None:
            return root, "use", ""
    msg = (f"real dataset not found (${DATA_DIR_ENV} not set; tried "
           + ", ".join(map(str, candidates)) + f"); set {DATA_DIR_ENV} to run integration tests")
    if env.get(REQUIRE_DATA_ENV) == "1":
        return None, "fail", f"{REQUIRE_DATA_ENV}=1 but {msg}"
    return None, "skip", msg


@pytest.fixture(scope="session")
def real_dataset() -> Path:
    """The root of the real dataset mirror; see :func:`resolve_real_dataset`."""
    root, action, msg = resolve_real_dataset(_ENV_AT_START)
    if action == "fail":
        pytest.fail(msg)
    if action == "skip":
        pytest.skip(msg)
    return root


@pytest.fixture(scope="session")
def real_index(real_dataset, tmp_path_factory):
    """The real index, built once per session from the files (never from the repo cache),
    through the same cached entry point the CLI uses, into a temp project root."""
    from braintumor.data.index import load_index

    config = Config(root=str(tmp_path_factory.mktemp("real-root")))
    return load_index(config, root=real_dataset, progress=False)
