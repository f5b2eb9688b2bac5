"""Finding the dataset (explicit > env > data/raw > download) and listing its files."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

import braintumor.data.dataset as data
import synthetic
from braintumor.config import DATA_DIR_ENV, KAGGLE_HANDLE, Config
from braintumor.data.dataset import find_root, list_image_files, locate_dataset
from braintumor.errors import DatasetError

_real_download = data.download  # captured at import, before the autouse fixture patches it


@pytest.fixture
def make(tmp_path):
    """make("name") -> a minimal dataset root at tmp_path/name/Dataset (nested, like Kaggle)."""
    def _make(name: str, nested: bool = True):
        root = tmp_path / name / "Dataset" if nested else tmp_path / name
        return synthetic.make_minimal_dataset(root).resolve()
    return _make


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    root.mkdir(exist_ok=True)
    return Config(root=str(root))


@pytest.fixture
def download_calls(monkeypatch):
    """Replace download with a recorder that 'downloads' a minimal dataset into dest."""
    calls = []

    def fake_download(dest):
        calls.append(dest)
        return synthetic.make_minimal_dataset(dest / "brain-tumor-multimodal-ct-mri" / "Dataset").resolve()

    monkeypatch.setattr(data, "download", fake_download)
    return calls


# -- resolution order -------------------------------------------------------------------

def test_explicit_path_wins_over_env_and_local(make, project, monkeypatch, download_calls):
    explicit, env = make("explicit"), make("env")
    synthetic.make_minimal_dataset(project.data_path / "raw" / "x" / "Dataset")
    monkeypatch.setenv(DATA_DIR_ENV, str(env))
    assert locate_dataset(explicit.parent, config=project) == explicit
    # Config.data_dir is an explicit choice too (what --data-dir sets)
    assert locate_dataset(config=project.replace(data_dir=str(explicit.parent))) == explicit
    assert download_calls == []


def test_env_wins_over_local_download(make, project, monkeypatch, download_calls):
    env = make("env")
    synthetic.make_minimal_dataset(project.data_path / "raw" / "x" / "Dataset")
    monkeypatch.setenv(DATA_DIR_ENV, str(env))
    assert locate_dataset(config=project) == env
    assert download_calls == []


def test_earlier_download_under_data_raw_is_found(project, download_calls):
    local = synthetic.make_minimal_dataset(
        project.data_path / "raw" / "brain-tumor-multimodal-ct-mri" / "Dataset").resolve()
    assert locate_dataset(config=project) == local
    assert download_calls == []


def test_download_only_when_nothing_local(project, download_calls):
    root = locate_dataset(config=project)
    assert download_calls == [project.data_path / "raw"]
    assert root == (project.data_path / "raw" / "brain-tumor-multimodal-ct-mri" / "Dataset").resolve()
    # found locally the second time: no second download
    assert locate_dataset(config=project) == root
    assert len(download_calls) == 1


def test_nothing_found_lists_what_was_tried_and_the_fix(project):
    # the autouse fixture makes download fail, as it would offline
    with pytest.raises(DatasetError) as info:
        locate_dataset(config=project)
    msg = str(info.value)
    assert f"${DATA_DIR_ENV} (not set)" in msg
    assert str(project.data_path / "raw") in msg
    assert "download disabled in tests" in msg  # download's own reason is kept
    assert "Fix:" in msg and KAGGLE_HANDLE in msg and DATA_DIR_ENV in msg and "--data-dir" in msg
    assert msg.index(DATA_DIR_ENV) < msg.index(str(project.data_path / "raw")) < msg.index("download")


def test_download_not_allowed(project, download_calls):
    with pytest.raises(DatasetError, match="download \\(not allowed here\\)"):
        locate_dataset(config=project, allow_download=False)
    assert download_calls == []


def test_download_that_cannot_create_its_folder_is_a_dataset_error(tmp_path, monkeypatch):
    """data/ is a file (or read-only): the user gets the 'tried' list, not a traceback."""
    monkeypatch.setattr(data, "download", _real_download)
    (tmp_path / "data").write_text("not a folder")
    with pytest.raises(DatasetError) as info:
        locate_dataset(config=Config(root=str(tmp_path)))
    assert str(tmp_path / "data" / "raw") in str(info.value)
    assert "Fix:" in str(info.value)


# -- wrong places -----------------------------------------------------------------------

def test_env_pointing_at_a_non_dataset_is_a_clear_error(tmp_path, project, monkeypatch, download_calls):
    (tmp_path / "photos").mkdir()
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "photos"))
    with pytest.raises(DatasetError) as info:
        locate_dataset(config=project)
    msg = str(info.value)
    assert f"${DATA_DIR_ENV}={tmp_path / 'photos'}" in msg
    assert "Brain Tumor CT scan Images" in msg and "fix or unset" in msg
    assert download_calls == []  # a wrong setting is reported, not papered over by a download


def test_explicit_path_that_does_not_exist(tmp_path, project, download_calls):
    with pytest.raises(DatasetError, match="no dataset here") as info:
        locate_dataset(tmp_path / "nope", config=project)
    assert str(tmp_path / "nope") in str(info.value)
    assert download_calls == []


def test_find_root_nested_and_not_found(make, tmp_path):
    root = make("a")
    assert find_root(root) == root  # the root itself
    assert find_root(root.parent) == root  # archive/Dataset
    assert find_root(root.parent.parent) == root  # two levels down
    assert find_root(tmp_path / "nope") is None
    (tmp_path / "file.txt").write_text("x")
    assert find_root(tmp_path / "file.txt") is None
    # only one modality folder: not a dataset
    half = tmp_path / "half"
    (half / synthetic.CT / "Healthy").mkdir(parents=True)
    assert find_root(half) is None


def test_find_root_skips_macosx_mirror(tmp_path):
    """macOS zips mirror the tree under __MACOSX/, which sorts before most names."""
    archive = tmp_path / "download"
    for folder in synthetic.FOLDERS.values():
        (archive / "__MACOSX" / "Dataset" / folder).mkdir(parents=True)
        (archive / "__MACOSX" / "Dataset" / folder / "._x.jpg").write_bytes(b"\x00\x05")
    real = synthetic.make_minimal_dataset(archive / "archive" / "Dataset").resolve()
    assert find_root(archive) == real


def test_synthetic_archive_found_from_its_base(synthetic_ds):
    assert find_root(synthetic_ds.base) == synthetic_ds.root.resolve()
    assert locate_dataset(synthetic_ds.base) == synthetic_ds.root.resolve()


# -- listing files ----------------------------------------------------------------------

def test_list_image_files_ignores_junk_and_labels_by_folder(synthetic_ds):
    entries = list_image_files(synthetic_ds.root)
    got = {e.relpath: (e.modality, e.label) for e in entries}
    expected = {r.path: (r.modality, r.label) for r in synthetic_ds.files.itertuples()}
    assert got == expected  # every image (corrupt ones included), no junk
    assert [e.relpath for e in entries] == sorted(got)
    assert not any("__MACOSX" in p or "/._" in p or p.endswith((".txt", ".db", ".DS_Store"))
                   for p in got)


@pytest.mark.parametrize("folder", list(synthetic.FOLDERS.values()))
def test_missing_class_folder_is_named(make, folder):
    root = make("a")
    shutil.rmtree(root / folder)
    with pytest.raises(DatasetError, match="missing class folder") as info:
        list_image_files(root)
    assert str(root / folder) in str(info.value)


def test_class_folder_with_only_junk_is_empty(make):
    root = make("a")
    folder = root / synthetic.MRI / "Tumor"
    for p in folder.iterdir():
        p.unlink()
    (folder / ".DS_Store").write_bytes(b"x")
    (folder / "notes.txt").write_text("x")
    (folder / "._glioma (1).jpg").write_bytes(b"\x00\x05")
    (folder / "__MACOSX").mkdir()
    synthetic.write_jpeg_rgb(synthetic.picture(np.random.default_rng(0)),
                             folder / "__MACOSX" / "glioma (1).jpg")
    with pytest.raises(DatasetError, match="class folder has no images") as info:
        list_image_files(root)
    assert str(folder) in str(info.value)


def test_images_in_subfolders_of_a_class_are_found(make):
    root = make("a")
    sub = root / synthetic.CT / "Tumor" / "batch2"
    sub.mkdir()
    synthetic.write_jpeg_rgb(synthetic.picture(np.random.default_rng(3)),
                             sub / "ct_tumor (9).JPG")
    entries = {e.relpath: e for e in list_image_files(root)}
    e = entries[f"{synthetic.CT}/Tumor/batch2/ct_tumor (9).JPG"]
    assert (e.modality, e.label) == ("CT", "tumor")


# -- the real_dataset fixture's decision (conftest), tested without the real data ------------

def _resolve(env, project):
    from conftest import resolve_real_dataset

    return resolve_real_dataset(env, project)


def test_real_dataset_fixture_uses_env_then_shared_mirror(make, tmp_path):
    project = tmp_path / "checkout" / "repo"
    project.mkdir(parents=True)
    env_root = make("env")
    assert _resolve({DATA_DIR_ENV: str(env_root)}, project) == (env_root, "use", "")
    mirror = synthetic.make_minimal_dataset(
        tmp_path / "checkout" / "shared" / "datasets" / "brain-tumor-multimodal-ct-mri" / "Dataset")
    assert _resolve({}, project) == (mirror.resolve(), "use", "")
    assert _resolve({"BRAINTUMOR_REQUIRE_DATA": "1"}, project)[1] == "use"


@pytest.mark.parametrize("require, action", [(None, "skip"), ("0", "skip"), ("1", "fail")])
def test_real_dataset_fixture_skips_only_when_absent_and_not_required(tmp_path, require, action):
    project = tmp_path / "repo"
    project.mkdir()
    env = {"BRAINTUMOR_REQUIRE_DATA": require} if require else {}
    root, got, msg = _resolve(env, project)
    assert (root, got) == (None, action)
    assert str(tmp_path / "shared") in msg and DATA_DIR_ENV in msg


@pytest.mark.parametrize("require", [None, "1"])
def test_real_dataset_fixture_fails_on_a_wrong_env_var(tmp_path, require):
    env = {DATA_DIR_ENV: str(tmp_path / "typo")}
    if require:
        env["BRAINTUMOR_REQUIRE_DATA"] = require
    root, action, msg = _resolve(env, tmp_path)
    assert (root, action) == (None, "fail") and str(tmp_path / "typo") in msg


# -- offline: both download clients fail ---------------------------------------------------

def test_both_clients_failing_never_exit_and_give_our_message(tmp_path, monkeypatch, capsys):
    """kagglehub raises (offline) and the kaggle client prints its login text and calls
    sys.exit, as ``KaggleApi.authenticate()`` does without credentials: the process goes on,
    nothing of theirs reaches the terminal, and the error lists the places tried, each
    client's failure and the fix."""
    import sys
    import types

    monkeypatch.setattr(data, "download", _real_download)
    hub = types.ModuleType("kagglehub")

    def offline(handle):
        print("kagglehub progress chatter")
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    hub.dataset_download = offline

    class KaggleApi:
        def authenticate(self):
            print("Authentication required to call the Kaggle API.\n    kaggle auth login")
            sys.exit(1)

    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = KaggleApi
    for name, module in {"kagglehub": hub, "kaggle": types.ModuleType("kaggle"),
                         "kaggle.api": types.ModuleType("kaggle.api"),
                         "kaggle.api.kaggle_api_extended": extended}.items():
        monkeypatch.setitem(sys.modules, name, module)
    project = Config(root=str(tmp_path / "project"))

    with pytest.raises(DatasetError) as info:  # a DatasetError, not SystemExit
        locate_dataset(config=project)
    msg = str(info.value)
    assert f"${DATA_DIR_ENV} (not set)" in msg and str(project.data_path / "raw") in msg
    assert "kagglehub: ConnectionError: Failed to resolve 'www.kaggle.com'" in msg
    assert "kaggle API: exited the process (SystemExit 1)" in msg and "Authentication required" in msg
    assert "Fix:" in msg and DATA_DIR_ENV in msg and "log in" in msg and "online" in msg
    out = capsys.readouterr()
    assert "kaggle auth login" not in out.out + out.err and "chatter" not in out.out + out.err


def test_cli_offline_prints_one_error_not_the_clients_text(tmp_path, monkeypatch, capsys):
    import sys
    import types

    from braintumor import cli

    monkeypatch.setattr(data, "download", _real_download)
    monkeypatch.setitem(sys.modules, "kagglehub", None)  # not installed: the import fails

    class KaggleApi:
        def authenticate(self):
            print("Authentication required ... kaggle auth login")
            sys.exit(1)

    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = KaggleApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", extended)
    assert cli.main(["index"]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("error: dataset not found.") and "kagglehub: ModuleNotFoundError" in out.err
    assert "kaggle API: exited the process" in out.err and out.out == ""
