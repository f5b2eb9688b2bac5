"""``braintumor serve``: a local web app to try a trained model in a browser.

Upload one or more scans; per file the page shows the predicted class, the calibrated
probability, the decision at the model card's threshold, the Grad-CAM overlay and any
warning columns that :func:`braintumor.inference` returns (``modality``, ``ood_score``,
``in_distribution``, ``warning``). A file that cannot be read shows its error while the
others still answer: the app hands every upload to :meth:`Predictor.predict_paths`,
which returns one row per input, so any format ``predict`` learns to read (DICOM,
NIfTI) works here without changes.

The app is a Streamlit script: :func:`run` starts ``python -m streamlit run`` on this
very file, which Streamlit executes as ``__main__`` (see the bottom of the module).
Importing :mod:`braintumor.serve` is cheap: Streamlit and TensorFlow are imported only
inside the functions that need them. It listens on 127.0.0.1 unless ``--host`` says
otherwise; it has no authentication, so keep it on localhost.
"""
from __future__ import annotations

import argparse
import io
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from braintumor.inference import Predictor

if __name__ == "__main__":  # run by Streamlit, which puts this file's folder first on sys.path:
    # drop it, or braintumor's modules (data, config, images, ...) would shadow top-level names
    _HERE = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

# The model card module is light; inference (pandas, TensorFlow) is imported where used,
# so registering `serve` on the CLI costs nothing.
from braintumor.models.modelcard import CARD_NAME, MODEL_NAME, read_card  # noqa: E402
TRAIN_COMMAND = "braintumor train --task mri --epochs-finetune 0"
BANNER = "Research code, not a medical device"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
ROOT_ENV = "BRAINTUMOR_ROOT"  # project folder holding models/ (same variable as braintumor.config)
WARNING_COLUMNS = ("modality", "ood_score", "in_distribution", "warning")
FORMATS_HELP = "PNG, JPEG, TIFF (DICOM and NIfTI as soon as `braintumor predict` reads them)"


# -- finding models ----------------------------------------------------------------------

def find_runs(models_dir: str | Path) -> list[Path]:
    """Run folders under ``models_dir`` (any depth) that hold both the weights and a card,
    sorted by path: task folders alphabetically, each task's runs oldest to newest."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted({c.parent for c in root.rglob(CARD_NAME) if (c.parent / MODEL_NAME).is_file()})


def cards_without_weights(models_dir: str | Path) -> list[Path]:
    """Run folders with a model card but no ``model.keras`` (weights are not in git)."""
    root = Path(models_dir)
    if not root.is_dir():
        return []
    return sorted({c.parent for c in root.rglob(CARD_NAME) if not (c.parent / MODEL_NAME).is_file()})


def default_models_dir(model: str | Path | None = None) -> Path:
    """Where to look for runs: the ``models/`` folder that holds ``model`` (a run folder
    ``models/<task>/<run>`` or a task folder ``models/<task>``), else
    ``$BRAINTUMOR_ROOT/models``, else ``./models``."""
    if model:
        p = Path(model)
        run = _resolved(p)
        if run is not None and (run / CARD_NAME).is_file():
            return run.parent.parent
        if p.is_dir():
            return p.parent
    env = os.environ.get(ROOT_ENV)
    return Path(env).expanduser() / "models" if env else Path("models")


def default_run(runs: list[Path], model: str | Path | None) -> Path | None:
    """The run ``--model`` names (newest trained run of a task folder), if it is among ``runs``."""
    if not model:
        return None
    wanted = _resolved(Path(model))
    return None if wanted is None else next((r for r in runs if r.resolve() == wanted.resolve()), None)


def _resolved(model: Path) -> Path | None:
    """``find_model(model)``, or None when there is no such folder (the page then says so)."""
    from braintumor.errors import ModelCardError
    from braintumor.predict_files import find_model

    try:
        return find_model(model)
    except ModelCardError:
        return None


def shown(path: Path) -> str:
    """``path`` relative to the current folder when inside it (shorter on the page)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)


def run_label(run: Path, models_dir: Path) -> str:
    try:
        return str(run.resolve().relative_to(Path(models_dir).resolve()))
    except ValueError:
        return str(run)


# -- the analysis (no Streamlit: unit-testable) ------------------------------------------

def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _clean(value):
    """pandas/numpy scalars → plain Python; NaN → None."""
    if hasattr(value, "item"):
        value = value.item()
    return None if _missing(value) else value


def _thumbnail(data: bytes, size: int = 384) -> bytes | None:
    """The upload as a PNG the browser can show (TIFF is not shown natively), or None."""
    try:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img).convert("RGB")
            img.thumbnail((size, size))
            out = io.BytesIO()
            img.save(out, "PNG")
            return out.getvalue()
    except Exception:  # noqa: BLE001 - a thumbnail is optional; the prediction row says what failed
        return None


def row_warnings(row: dict) -> list[str]:
    """Visible warnings for one result row: out-of-distribution and ``warning`` text."""
    out = []
    flag = row.get("in_distribution")
    if not _missing(flag) and str(flag).strip().lower() in ("false", "0"):
        score = row.get("ood_score")
        detail = f" (OOD score {float(score):.3g})" if not _missing(score) else ""
        out.append(f"Out of distribution{detail}: this image does not look like the images the "
                   "model was trained on, so its prediction means little.")
    text = row.get("warning")
    if isinstance(text, str) and text.strip():
        out.append(text.strip())
    return out


def describe(row: dict, card: dict) -> dict:
    """What the page says about one successful row: ``predicted``, ``probability`` (of the
    predicted class), ``probability_text``, ``decision_text`` and ``calibration_text``."""
    classes = list(card["classes"])
    predicted = row["predicted"]
    temperature = card.get("temperature")
    calibration = (f"calibrated (temperature {float(temperature):.3g})" if temperature is not None
                   else "not calibrated yet (run `braintumor evaluate` on this model)")
    if len(classes) == 2:
        positive = classes[1]
        p = float(row[f"p_{positive}"])
        threshold = card.get("decision_threshold")
        t = float(threshold) if threshold is not None else 0.5
        source = ("the card's threshold" if threshold is not None
                  else "the default threshold (the card has none yet: run `braintumor evaluate`)")
        sign = "≥" if p >= t else "<"
        decision = f"**{predicted}**: P({positive}) = {p:.3f} {sign} {t:.3f}, {source}"
        return {"predicted": predicted, "probability": p if predicted == positive else 1 - p,
                "probability_text": f"P({positive}) = {p:.3f}", "decision_text": decision,
                "calibration_text": calibration}
    p = float(row[f"p_{predicted}"])
    others = ", ".join(f"P({c}) = {float(row[f'p_{c}']):.3f}" for c in classes)
    return {"predicted": predicted, "probability": p, "probability_text": others,
            "decision_text": f"**{predicted}**: the most probable of {len(classes)} classes (no threshold)",
            "calibration_text": calibration}


MAX_SLICES_SHOWN = 12


def _result(predictor, df, j: int, name: str, data: bytes, gradcam_dir: Path) -> dict:
    """One prediction row ready for the page: thumbnail, Grad-CAM and warnings."""
    row = {k: _clean(v) for k, v in df.iloc[j].to_dict().items()}
    row["error"] = row.get("error") or ""
    slice_label = row.get("slice") or ""
    row.update(name=f"{name} ({slice_label.split('#')[-1]})" if slice_label else name, thumbnail=None,
               gradcam=None, gradcam_error="")
    if not row["error"]:
        row["thumbnail"] = None if slice_label else _thumbnail(data)
        try:
            from braintumor.inference import write_gradcams

            written = write_gradcams(predictor, df.iloc[[j]], gradcam_dir)
            row["gradcam"] = written[0].read_bytes() if written else None
        except Exception as e:  # noqa: BLE001 - the prediction stands without its heat-map
            row["gradcam_error"] = f"{type(e).__name__}: {e}"
    row["warnings"] = row_warnings(row)
    return row


def analyse(predictor: "Predictor", files: list[tuple[str, bytes]]) -> list[dict]:
    """Predict every uploaded ``(name, bytes)`` and draw Grad-CAM for the readable ones.

    One dict per file, in order: ``name``, the prediction row's columns (``error`` is
    ``""`` on success), ``thumbnail`` and ``gradcam`` PNG bytes (or None), ``gradcam_error``
    and ``warnings`` (see :func:`row_warnings`).
    """
    with tempfile.TemporaryDirectory(prefix="braintumor-serve-") as tmp:
        paths = []
        for i, (name, data) in enumerate(files):
            folder = Path(tmp) / f"{i:04d}"  # one folder per upload: names may repeat
            folder.mkdir()
            path = folder / (Path(name).name or "upload")
            path.write_bytes(data)
            paths.append(path)
        df = predictor.predict_paths(paths, progress=False)
        results = []
        for i, (name, data) in enumerate(files):
            # An image gives one row; a DICOM or NIfTI upload one row per slice.
            rows = df.index[df["path"].astype(str) == str(paths[i])].tolist() or [i]
            for j in rows[:MAX_SLICES_SHOWN]:
                results.append(_result(predictor, df, j, name, data, Path(tmp) / "gradcam" / f"{j:05d}"))
            if len(rows) > MAX_SLICES_SHOWN:
                results[-1]["warnings"].append(f"{name}: {len(rows)} slices, the first {MAX_SLICES_SHOWN} shown "
                                               "(`braintumor predict` scores them all)")
    return results


# -- the command line ----------------------------------------------------------------------

def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``braintumor serve`` on the CLI's subparsers."""
    p = subparsers.add_parser("serve", help="local web app: upload scans, see predictions, Grad-CAM "
                                            "and warnings (research only)")
    p.add_argument("--model", help="run folder models/<task>/<run-id>, or models/<task> for its newest "
                                   "trained run: the model selected when the page opens")
    p.add_argument("--models-dir", help="folder whose run folders the page offers (default: the models/ "
                                        "folder holding --model, else $BRAINTUMOR_ROOT/models or ./models)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="default: %(default)s")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="default: %(default)s (localhost only; the app has no login)")
    p.set_defaults(func=run)
    return p


def page_args(args) -> list[str]:
    """The arguments :func:`page` gets from :func:`run` (after Streamlit's ``--``)."""
    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir(args.model)
    out = ["--models-dir", str(models_dir.resolve())]
    if args.model:
        out += ["--model", str(Path(args.model).resolve())]
    return out


def streamlit_command(args) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(Path(__file__).resolve()),
            "--server.address", args.host, "--server.port", str(args.port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal",
            "--theme.base", "light", "--", *page_args(args)]


def run(args) -> int:
    """``braintumor serve``: start the app and block until it stops (Ctrl+C)."""
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:
        print("error: braintumor serve needs Streamlit: pip install -e '.[serve]'", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach it can upload images "
              "(the app has no login)", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"braintumor serve: http://{host}:{args.port}  (Ctrl+C stops it)", file=sys.stderr)
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.Popen(streamlit_command(args), env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:  # the child got the same SIGINT and shuts down
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 130


# -- the page (executed by Streamlit) --------------------------------------------------------

def _page_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="braintumor serve page")
    p.add_argument("--models-dir", default=None)
    p.add_argument("--model", default=None)
    return p


def page(argv: list[str]) -> None:
    """Render the app; Streamlit re-runs this on every interaction."""
    import streamlit as st

    args, _ = _page_parser().parse_known_args(argv)
    models_dir = Path(args.models_dir) if args.models_dir else default_models_dir(args.model)
    st.set_page_config(page_title="braintumor: try a model", layout="wide")
    st.warning(f"**{BANNER}.** A research benchmark on a public, confounded image collection: "
               "never use it to diagnose, screen or treat anyone.", icon="⚠️")
    st.title("braintumor: try a trained model")

    runs = find_runs(models_dir)
    if not runs:
        _no_model_page(st, models_dir, args.model)
        return

    chosen = default_run(runs, args.model)
    if args.model and chosen is None:
        st.warning(f"`--model {args.model}`: no trained model there; pick one below.")
    labels = [run_label(r, models_dir) for r in runs]
    index = runs.index(chosen) if chosen is not None else len(runs) - 1
    label = st.selectbox(f"Model (run folders in `{shown(models_dir)}`)", labels, index=index)
    run_dir = runs[labels.index(label)]

    try:
        card = read_card(run_dir)
    except Exception as e:  # noqa: BLE001 - a broken card is shown, not raised
        st.error(f"Cannot read the model card of `{run_dir}`: {e}")
        return
    _card_block(st, card)

    uploads = st.file_uploader(f"Images to analyse ({FORMATS_HELP}); several at once are fine",
                               accept_multiple_files=True)
    if not uploads:
        st.info("Upload one or more images to see the model's answer, its Grad-CAM heat-map and any warning.")
        return
    files = tuple((u.name, u.getvalue()) for u in uploads)
    try:
        with st.spinner(f"Analysing {len(files)} file(s)…"):
            results = _cached_analysis(st)(str(run_dir), files)
    except Exception as e:  # noqa: BLE001 - e.g. weights that cannot be loaded
        st.error(f"The model could not run: {type(e).__name__}: {e}")
        return
    _results_block(st, results, card)


def _no_model_page(st, models_dir: Path, model: str | None) -> None:
    st.subheader("No trained model yet")
    where = f"`{shown(models_dir)}`" + (f" (asked for `--model {model}`)" if model else "")
    st.info(f"No run folder with a trained model (`{MODEL_NAME}` + `{CARD_NAME}`) was found in {where}.")
    st.markdown("Train one, then reload this page:")
    st.code(TRAIN_COMMAND, language="bash")
    st.markdown("That trains a classifier head on the frozen pretrained backbone, without fine-tuning: "
                "the quickest real model (minutes on a laptop CPU, most of it decoding images and "
                "extracting features). Add `--quick` for a smoke-test model on a small subset in about "
                "a minute. Run `braintumor evaluate --model FOLDER` afterwards, with the model folder "
                "it prints, for a calibrated probability and a validated decision threshold.")
    orphans = cards_without_weights(models_dir)
    if orphans:
        st.caption(f"{len(orphans)} model card(s) there have no weights ({MODEL_NAME} is not kept in git): "
                   + ", ".join(run_label(o, models_dir) for o in orphans))


def _card_block(st, card: dict) -> None:
    classes = list(card["classes"])
    threshold = card.get("decision_threshold")
    metrics = card.get("validation_metrics") or {}
    facts = [f"**Task:** {card.get('task_description') or card['task']}",
             f"**Classes:** {', '.join(classes)}",
             f"**Run:** `{card.get('run_id', '?')}`"]
    if len(classes) == 2:
        facts.append(f"**Decision threshold:** {float(threshold):.3f} ({_rule_text(card.get('threshold_rule'))})"
                     if threshold is not None else "**Decision threshold:** none yet (0.5 used; run `braintumor evaluate`)")
    if card.get("training", {}).get("config", {}).get("quick"):
        facts.append("**Quick smoke-test model** (small training subset)")
    if metrics.get("auc") is not None:
        facts.append(f"**Validation AUC:** {float(metrics['auc']):.3f}")
    with st.container(border=True):
        st.markdown("#### About this model")
        st.markdown(" · ".join(facts))
        st.markdown(f"**Intended use:** {card.get('intended_use') or 'not stated in the model card.'}")
        limits = card.get("limitations") or []
        if limits:
            st.markdown("**Limitations:**\n" + "\n".join(f"- {x}" for x in limits))


def _rule_text(rule) -> str:
    """``threshold_rule`` as `braintumor evaluate` writes it (a dict) or as plain text."""
    if isinstance(rule, dict):
        name, target = rule.get("rule") or "chosen", rule.get("target")
        return f"{name} rule" + (f", target {target}" if target is not None else "") + ", on validation"
    return str(rule) if rule else "chosen on validation"


def _cached_analysis(st):
    @st.cache_resource(show_spinner="Loading the model…", max_entries=2)
    def load(run_dir: str):
        from braintumor.inference import Predictor

        return Predictor.load(run_dir)

    @st.cache_data(show_spinner=False, max_entries=16)
    def analysed(run_dir: str, files: tuple) -> list[dict]:
        return analyse(load(run_dir), list(files))

    return analysed


def _results_block(st, results: list[dict], card: dict) -> None:
    ok = [r for r in results if not r["error"]]
    st.markdown(f"### Results: {len(ok)} of {len(results)} file(s) analysed")
    for r in results:
        with st.container(border=True):
            st.markdown(f"**{r['name']}**")
            if r["error"]:
                st.error(f"Could not analyse {r['name']}: {r['error']}")
                continue
            d = describe(r, card)
            left, middle, right = st.columns([1, 1, 2])
            if r["thumbnail"]:
                left.image(r["thumbnail"], caption="input", width="stretch")
            if r["gradcam"]:
                middle.image(r["gradcam"], caption=f"Grad-CAM for '{d['predicted']}'", width="stretch")
            elif r["gradcam_error"]:
                middle.caption(f"No Grad-CAM: {r['gradcam_error']}")
            right.markdown(f"#### Predicted: {d['predicted']}")
            right.markdown(f"Probability: **{d['probability_text']}**, {d['calibration_text']}")
            right.markdown(f"Decision: {d['decision_text']}")
            extra = [f"{c}: `{r[c]}`" for c in WARNING_COLUMNS[:3] if c in r and r[c] is not None]
            if extra:
                right.markdown(" · ".join(extra))
            for w in r["warnings"]:
                right.warning(w, icon="⚠️")
    import pandas as pd

    table = pd.DataFrame([{k: v for k, v in r.items() if k not in ("thumbnail", "gradcam", "warnings", "path")}
                          for r in results])
    st.download_button("Download the results (CSV)", table.to_csv(index=False), "braintumor_results.csv",
                       mime="text/csv")


if __name__ == "__main__":  # executed by `streamlit run` (see run())
    page(sys.argv[1:])
