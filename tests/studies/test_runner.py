"""The resumable study, end to end from the command line on a tiny synthetic dataset with a
tiny backbone: run → status → report → compare; resume skips finished runs, a config change
makes them stale, the budget stops before a run that would not fit."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("keras")

from braintumor import cli  # noqa: E402
from braintumor.config import Config  # noqa: E402
from braintumor.errors import BrainTumorError  # noqa: E402
from braintumor.studies import load_study  # noqa: E402
from braintumor.studies.runner import estimate_seconds, states  # noqa: E402

PROJECT = Path(__file__).resolve().parents[2]

STUDY = """
name = "tiny"
seeds = [1, 2]

[schedule]
backbone = "{backbone}"
image_size = 32
batch_size = 16
epochs_frozen = 30
epochs_finetune = {epochs}
lr_frozen = 3e-2
lr_finetune = 1e-3
finetune_fraction = 1.0

[evaluation]
n_resamples = 100

[[arms]]
task = "ct"

[[arms]]
task = "ct"
recipe = "lesions"
"""


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from tests.test_training import make_separable

    sep = make_separable(tmp_path_factory.mktemp("study"))
    project = sep["project"]
    (project / "README.md").write_text("# x\n\n<!-- study-tiny:start -->\n<!-- study-tiny:end -->\n")
    study = project / "studies" / "tiny.toml"
    study.parent.mkdir(parents=True)
    study.write_text(STUDY.format(backbone=sep["config"].backbone, epochs=1))
    return {"project": project, "study": study, "data_dir": str(sep["root"]), "backbone": sep["config"].backbone}


def run_cli(tiny, monkeypatch, *argv) -> int:
    monkeypatch.setenv("BRAINTUMOR_ROOT", str(tiny["project"]))
    action, *rest = argv
    if action == "compare":  # braintumor compare RUN_A RUN_B (not `study compare`)
        return cli.main(["compare", *rest])
    action = "compare" if action == "study-compare" else action
    return cli.main(["study", action, "--study", str(tiny["study"]), "--data-dir", tiny["data_dir"], *rest])


def test_study_file_is_checked(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('seeds = [1]\n[[arms]]\ntask = "mri_subtype"\nrecipe = "lesions"\n')
    with pytest.raises(BrainTumorError, match="lesions"):
        load_study(bad)
    bad.write_text('seeds = [1]\n[schedule]\nseed = 3\n[[arms]]\ntask = "ct"\n')
    with pytest.raises(BrainTumorError, match="not schedule fields"):
        load_study(bad)


def test_main_study_covers_the_issue_and_config_defaults_are_its_schedule():
    study = load_study(PROJECT / "studies" / "main.toml")
    assert len(study.seeds) >= 3
    arms = {(a.task, a.preprocess, a.recipe) for a in study.arms}
    for task in ("ct", "mri", "mri_subtype", "pooled"):
        assert {(task, "none", "none"), (task, "crop-mask", "none")} <= arms
    assert {("ct", "crop-mask", "nsa"), ("mri", "crop-mask", "nsa"), ("pooled", "crop-mask", "nsa")} <= arms
    assert ("mri", "crop-mask-zscore", "none") in arms  # issue 14's intensity standardisation
    assert all(not a.schedule for a in study.arms)  # one schedule for every arm
    defaults = Config().to_dict()
    assert {k: defaults[k] for k in study.schedule} == study.schedule
    from braintumor.studies.report import readme_block

    assert readme_block(study) == "study" and f"<!-- {readme_block(study)}:start -->" in (PROJECT / "README.md").read_text()


def test_speed_study_differs_from_main_only_in_its_fast_arm():
    main, speed = (load_study(PROJECT / "studies" / f"{n}.toml") for n in ("main", "speed"))
    assert speed.schedule == main.schedule and speed.seeds == main.seeds
    base, fast = speed.arms
    assert base == main.arm(base.name) and (fast.task, fast.preprocess, fast.recipe) == (base.task, base.preprocess,
                                                                                       base.recipe)
    assert fast.schedule == {"image_size": 160, "finetune_fraction": 0.2}


def test_budget_estimate_uses_finished_runs_of_the_same_arm(tiny):
    study = load_study(tiny["study"])
    cfg = study.config(study.arms[0], 1, Config(root=str(tiny["project"]), data_dir=tiny["data_dir"]))
    default, basis = estimate_seconds(cfg, "ct", [])
    assert "default" in basis and default > 0
    record = {"arm": "ct", "work_units": 1000.0, "timing": {"total_seconds": 100.0}}
    other = {"arm": "x", "work_units": 1000.0, "timing": {"total_seconds": 1.0}}
    slow, basis = estimate_seconds(cfg, "ct", [record, other])
    assert basis == "this arm's finished runs" and slow > default


def test_run_status_report_compare_resume_and_stale(tiny, monkeypatch, capsys):
    project = tiny["project"]
    assert run_cli(tiny, monkeypatch, "status") == 0
    assert "0 of 4 runs done" in capsys.readouterr().out

    # A budget too small for any run: nothing starts, the study stops cleanly.
    assert run_cli(tiny, monkeypatch, "run", "--budget-minutes", "0.001") == 0
    out = capsys.readouterr().out
    assert "stopping before ct seed 1" in out and "0 run(s) finished, 4 remaining" in out

    assert run_cli(tiny, monkeypatch, "run") == 0
    assert "4 run(s) finished, 0 remaining" in capsys.readouterr().out
    record = json.loads((project / "reports/studies/tiny/ct/seed-1.json").read_text())
    assert record["kept_phase"] in ("frozen", "finetune") and record["work_units"] > 0
    run_dir = project / record["run_dir"]
    assert (run_dir / "ood.npz").is_file() and 0.9 <= record["ood"]["val_keep_rate"] <= 1.0
    assert run_dir.parent.name == "ct" and (run_dir / "model_card.json").is_file()
    noted = json.loads((run_dir / "model_card.json").read_text())["task_defaults"]  # written by the runner
    uses_default = all(record["config"][k] == noted[k] for k in ("preprocess", "recipe", "epochs_finetune"))
    assert noted["this_run_uses_it"] == uses_default
    assert (run_dir / "history.csv").is_file()
    seed_dir = project / record["report_dir"]
    assert (seed_dir / "metrics.json").is_file() and (seed_dir / "predictions.csv").is_file()

    # Resume: everything is done, nothing is trained again.
    assert run_cli(tiny, monkeypatch, "run") == 0
    assert "0 run(s) finished, 0 remaining" in capsys.readouterr().out
    assert run_cli(tiny, monkeypatch, "status") == 0
    assert "4 of 4 runs done" in capsys.readouterr().out

    # Another study holding the same run counts it as done; an arm with its own schedule is
    # trained, and its comparison is reported as one of schedules.
    second = tiny["study"].with_name("tiny2.toml")
    second.write_text(STUDY.format(backbone=tiny["backbone"], epochs=1).replace('name = "tiny"', 'name = "tiny2"')
                      .split("[[arms]]")[0] + '[[arms]]\ntask = "ct"\n\n[[arms]]\nname = "ct-head"\ntask = "ct"\n'
                      'schedule = { epochs_finetune = 0, dropout = 0.3 }\n\n[[compare]]\na = "ct"\nb = "ct-head"\n')
    argv = ["study", "{}", "--study", str(second), "--data-dir", tiny["data_dir"]]
    assert cli.main([a.format("status") for a in argv]) == 0
    assert "2 of 4 runs done" in capsys.readouterr().out
    assert cli.main([a.format("run") for a in argv]) == 0
    assert "2 run(s) finished, 0 remaining" in capsys.readouterr().out
    assert not (project / "reports/studies/tiny2/ct").exists()  # nothing trained twice
    assert cli.main([a.format("report") for a in argv]) == 0
    summary = json.loads((project / "reports/studies/tiny2/summary.json").read_text())
    assert summary["own_schedules"] == {"ct-head": {"epochs_finetune": 0, "dropout": 0.3}}
    assert summary["same_schedule"]
    assert "compare schedules" in (project / "reports/studies/tiny2/summary.md").read_text()
    pair = json.loads((project / "reports/comparisons/tiny2--ct--vs--ct-head.json").read_text())
    assert pair["same_schedule"] is False and set(pair["schedule_differences"]) == {"epochs_finetune", "dropout"}
    capsys.readouterr()

    assert run_cli(tiny, monkeypatch, "report", "--update-readme") == 0
    out = capsys.readouterr().out
    summary = json.loads((project / "reports/studies/tiny/summary.json").read_text())
    assert summary["same_schedule"] and summary["n_runs_done"] == 4
    acc = summary["arms"]["ct"]["metrics"]["accuracy"]
    assert acc["n_seeds"] == 2 and acc["low"] <= acc["value"] <= acc["high"] and acc["low"] < acc["high"]
    assert "All arms share one schedule" in (project / "README.md").read_text()
    assert "± " in out

    assert run_cli(tiny, monkeypatch, "study-compare", "ct", "ct-lesions") == 0
    out = capsys.readouterr().out
    comparison = json.loads((project / "reports/comparisons/tiny--ct--vs--ct-lesions.json").read_text())
    assert comparison["seeds"] == [1, 2] and set(comparison["per_seed"]) == {"1", "2"}
    assert {"accuracy", "sensitivity", "specificity", "roc_auc"} <= set(comparison["metrics"])
    assert "B − A [95% CI]" in out

    other = json.loads((project / "reports/studies/tiny/ct-lesions/seed-1.json").read_text())
    assert run_cli(tiny, monkeypatch, "compare", str(run_dir), str(project / other["run_dir"]),
                   "--name", "pair") == 0
    pair = json.loads((project / "reports/comparisons/pair.json").read_text())
    assert pair["same_schedule"] is True and pair["metrics"]["roc_auc"]["method"].startswith("DeLong")
    capsys.readouterr()

    # A changed schedule makes every run stale; --only re-runs one arm and drops its old model folders.
    tiny["study"].write_text(STUDY.format(backbone=tiny["backbone"], epochs=0))
    assert run_cli(tiny, monkeypatch, "status") == 0
    assert "0 of 4 runs done" in capsys.readouterr().out
    assert run_cli(tiny, monkeypatch, "run", "--only", "ct") == 0
    assert "2 run(s) finished, 0 remaining" in capsys.readouterr().out
    assert not run_dir.exists()
    study = load_study(tiny["study"])
    by = {(s.arm.name, s.seed): s.status for s in states(study, Config(root=str(project), data_dir=tiny["data_dir"]))}
    assert by == {("ct", 1): "done", ("ct", 2): "done", ("ct-lesions", 1): "stale", ("ct-lesions", 2): "stale"}
    # Arms at different schedules are not compared.
    with pytest.raises(BrainTumorError, match="no seed is finished in both"):
        from braintumor.studies.compare import compare_arms

        compare_arms(study, "ct", "ct-lesions", Config(root=str(project), data_dir=tiny["data_dir"]))


def test_external_sets_are_evaluated_and_filled_in_without_retraining(tiny, monkeypatch, capsys, tmp_path):
    """Runs after the test above (ct at 0 fine-tuning epochs is done): an external set
    declared in the study is reported missing until its folder exists, then added to the
    finished runs' records from their saved models, with no run trained again."""
    from tests.test_external import _external_ct_set

    from braintumor.data.splits import read_manifest

    project = tiny["project"]
    manifest = read_manifest(project / "data" / "splits" / "default.csv")
    _external_ct_set(tmp_path / "ext" / "toy", {"manifest": manifest, "root": Path(tiny["data_dir"])})
    tiny["study"].write_text(STUDY.format(backbone=tiny["backbone"], epochs=0) + """
[[external]]
name = "toy"
path = "toy/set.csv"
tasks = ["ct"]
group_col = "patient"
strata = ["size:1000"]
""")
    monkeypatch.setenv("BRAINTUMOR_EXTERNAL_DIR", str(tmp_path / "nowhere"))
    assert run_cli(tiny, monkeypatch, "run", "--only", "ct") == 0
    out = capsys.readouterr().out
    assert "0 run(s) finished, 0 remaining" in out and "not found; set $BRAINTUMOR_EXTERNAL_DIR" in out
    # A finished run without its out-of-distribution check gets it back from the saved model.
    record = json.loads((project / "reports/studies/tiny/ct/seed-1.json").read_text())
    (project / record["run_dir"] / "ood.npz").unlink()

    monkeypatch.setenv("BRAINTUMOR_EXTERNAL_DIR", str(tmp_path / "ext"))
    assert run_cli(tiny, monkeypatch, "run", "--only", "ct") == 0
    out = capsys.readouterr().out
    assert "external sets toy" in out and "0 run(s) finished, 0 remaining" in out
    assert "ct seed 1: out-of-distribution check" in out and (project / record["run_dir"] / "ood.npz").is_file()
    record = json.loads((project / "reports/studies/tiny/ct/seed-1.json").read_text())
    toy = record["external"]["toy"]
    assert 0 <= toy["metrics"]["roc_auc"]["value"] <= 1 and toy["n_kept"] >= 20
    assert (project / toy["report_dir"] / "metrics.json").is_file()
    toy_report_dir, old_run_dir = toy["report_dir"], record["run_dir"]

    assert run_cli(tiny, monkeypatch, "report") == 0
    out = capsys.readouterr().out
    summary = json.loads((project / "reports/studies/tiny/summary.json").read_text())
    assert summary["arms"]["ct"]["external"]["toy"]["n_seeds"] == 2
    assert "| toy | ct |" in out and "within-patient AUC" in out

    # Both arms scored on the set: `study compare` pairs them on the images both kept.
    assert run_cli(tiny, monkeypatch, "run", "--only", "ct-lesions") == 0
    assert "2 run(s) finished" in capsys.readouterr().out
    assert run_cli(tiny, monkeypatch, "study-compare", "ct", "ct-lesions") == 0
    out = capsys.readouterr().out
    comparison = json.loads((project / "reports/comparisons/tiny--ct--vs--ct-lesions.json").read_text())
    toy = comparison["external"]["toy"]
    assert toy["n_images"] >= 20 and set(toy["per_seed"]) == {"1", "2"}
    assert toy["metrics"]["roc_auc"]["n_seeds"] == 2 and "External set **toy**" in out

    # [[compare]] pairs: `study report` writes their differences into README's claims block.
    tiny["study"].write_text(tiny["study"].read_text() + '\n[[compare]]\na = "ct"\nb = "ct-lesions"\n')
    (project / "README.md").write_text("# x\n\n<!-- study-tiny:start -->\n<!-- study-tiny:end -->\n\n"
                                       "<!-- study-tiny-compare:start -->\n<!-- study-tiny-compare:end -->\n")
    assert run_cli(tiny, monkeypatch, "report", "--update-readme") == 0
    capsys.readouterr()
    readme = (project / "README.md").read_text()
    claims = readme.split("<!-- study-tiny-compare:start -->")[1]
    assert "| ct | ct-lesions | 1, 2 |" in claims and "toy ΔAUC" in claims and ", p " in claims
    assert (project / "reports/studies/tiny/comparisons.md").is_file()

    # A run trained again (here: a new schedule) takes its old external reports with it.
    old_report = project / toy_report_dir
    assert old_report.is_dir()
    tiny["study"].write_text(tiny["study"].read_text().replace("epochs_finetune = 0", "epochs_finetune = 1"))
    assert run_cli(tiny, monkeypatch, "run", "--only", "ct") == 0
    assert "2 run(s) finished" in capsys.readouterr().out
    assert not old_report.exists() and not (project / old_run_dir).exists()
    new_record = json.loads((project / "reports/studies/tiny/ct/seed-1.json").read_text())
    assert (project / new_record["external"]["toy"]["report_dir"] / "metrics.json").is_file()


def test_compare_pairs_must_name_two_arms(tmp_path):
    study = tmp_path / "s.toml"
    study.write_text('seeds = [1]\n[[arms]]\ntask = "ct"\n[[compare]]\na = "ct"\nb = "nosuch"\n')
    with pytest.raises(BrainTumorError, match="two different arms"):
        load_study(study)
