"""Helpers for browser tests: a tiny model run folder, the app in a subprocess, headless Chromium.

Chromium is Debian's (``apt-get install -y chromium chromium-driver``; ``.ci/run`` installs
it), driven by Playwright's Python package with ``executable_path``: Playwright's own
browser download needs the internet, which this project's machines do not have.
Everything talks to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

CHROMIUM = os.environ.get("BRAINTUMOR_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = ("apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver "
                "(and pip install -r requirements.txt for playwright + streamlit)")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_ID = "20260101-000000-tiny"
SIZE = 32
INTENDED_USE = "Tests only: NOT a medical device and NOT for clinical use."
LIMITATION = "A test fixture: random weights, synthetic images."


def head_image(seed: int, tumour: bool, size: int = 64) -> np.ndarray:
    """A synthetic "head": a grey disc with noise, plus a bright blob when ``tumour``."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    c, r = size / 2, size * 0.4
    img = np.zeros((size, size), np.float32)
    img[(yy - c) ** 2 + (xx - c) ** 2 < r ** 2] = 90
    img += rng.normal(0, 6, img.shape)
    if tumour:
        by, bx = c + rng.uniform(-r / 3, r / 3, 2)
        img[(yy - by) ** 2 + (xx - bx) ** 2 < (size / 7) ** 2] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def make_tiny_run(models_dir: Path, task: str = "mri", temperature: float = 1.5,
                  threshold: float = 0.4) -> Path:
    """``models_dir/<task>/<RUN_ID>/`` with a small random-weight classifier (a nested conv
    backbone, so Grad-CAM works) and a model card like training writes: built in seconds."""
    import keras

    from braintumor.models.classifier import build_classifier

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="last_conv")(x)
    backbone = keras.Model(inputs, x, name="tiny_backbone")
    model = build_classifier(backbone, 2, SIZE, dropout=0.0)
    run = Path(models_dir) / task / RUN_ID
    run.mkdir(parents=True)
    model.save(run / "model.keras")
    card = {
        "schema": 1, "name": f"braintumor-{task}", "run_id": RUN_ID, "task": task,
        "task_description": "MRI: healthy vs tumour (tiny test model, random weights)",
        "classes": ["healthy", "tumor"], "image_size": SIZE, "preprocess": "none",
        "decision_threshold": threshold, "threshold_rule": "youden", "temperature": temperature,
        "validation_metrics": {"auc": 0.5},
        "intended_use": INTENDED_USE,
        "limitations": [LIMITATION],
    }
    (run / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return run


def write_good_and_broken(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "scan_good.png"
    Image.fromarray(head_image(1, tumour=True)).save(good)
    broken = folder / "scan_broken.png"
    broken.write_bytes(b"this is not an image\n" * 4)
    return good, broken


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(models_dir: Path, model: Path | None = None, timeout: float = 60, cwd: Path | None = None):
    """``braintumor serve`` (the real Streamlit command line) on a free localhost port;
    yields its URL and stops it afterwards."""
    from braintumor import serve

    port = free_port()
    args = argparse.Namespace(model=str(model) if model else None, models_dir=str(models_dir),
                              host="127.0.0.1", port=port)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(Path(serve.__file__).parents[1]),
                                           os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    log = Path(models_dir).parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(serve.streamlit_command(args), env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=cwd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the app exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the app did not answer within {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def chromium_page(width: int = 1280, height: int = 900):
    """A Playwright page in Debian's headless Chromium. Fails (never skips) with the install
    command when Chromium or Playwright is missing."""
    if not Path(CHROMIUM).is_file():
        raise AssertionError(f"{CHROMIUM} not found: install it with `{INSTALL_HINT}`")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        raise AssertionError(f"Playwright is missing ({e}): {INSTALL_HINT}") from None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(60_000)
            yield page
        finally:
            browser.close()


def card_of(run: Path) -> dict:
    return json.loads((run / "model_card.json").read_text())


def screenshot(model: Path, images: list[Path], out: Path, width: int = 1280) -> Path:
    """The app with ``model`` after uploading ``images``, as a full-page PNG at ``out``
    (256 colours, to keep README's picture small). Use de-identified images only."""
    model = Path(model).resolve()
    models_dir = model.parent.parent
    with running_app(models_dir, model=model, cwd=models_dir.parent) as url, chromium_page(width=width) as page:
        page.goto(url)
        page.get_by_text("About this model").wait_for()
        page.locator("input[type=file]").set_input_files([str(p) for p in images])
        page.get_by_text("Results:").wait_for(timeout=180_000)
        page.wait_for_load_state("networkidle")
        # Streamlit scrolls inside its main section, not the document: grow the window to fit
        for _ in range(3):
            height = page.evaluate("Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))")
            page.set_viewport_size({"width": width, "height": int(height)})
            time.sleep(1)  # let the page re-lay out and images paint
        data = page.screenshot(full_page=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


if __name__ == "__main__":
    # Regenerate README's picture (run from the checkout, with a trained MRI model):
    #   PYTHONPATH=src python tests/browser.py MODEL_RUN_DIR reports/app/serve.png IMAGE... [BROKEN_FILE]
    if len(sys.argv) < 4:
        sys.exit(__doc__ + "\nusage: browser.py MODEL_RUN_DIR OUT.png IMAGE...")
    print(screenshot(Path(sys.argv[1]), [Path(a) for a in sys.argv[3:]], Path(sys.argv[2])))
