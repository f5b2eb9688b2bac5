"""Every figure the reports and the notebook show, drawn from report dicts and arrays.

Functions return a matplotlib ``Figure``; :func:`save` writes it. Images are shown only
after :func:`braintumor.preprocess.crop_mask.blank_outside_head`, because raw CT tumour images carry
patient names.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def save(fig, path: str | Path, dpi: int = 110) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def roc_pr_curves(y_true, p, threshold: float, title: str = ""):
    """ROC and precision-recall curves with the frozen operating point marked."""
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    y, p = np.asarray(y_true), np.asarray(p)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    fpr, tpr, _ = roc_curve(y, p)
    pred = p >= threshold
    sens, spec = pred[y == 1].mean(), 1 - pred[y == 0].mean()
    ax1.plot(fpr, tpr, lw=2, label=f"AUC {roc_auc_score(y, p):.3f}")
    ax1.plot([0, 1], [0, 1], ls=":", c="grey")
    ax1.scatter([1 - spec], [sens], c="red", zorder=3, label=f"threshold {threshold:.3f}")
    ax1.set(xlabel="1 - specificity", ylabel="sensitivity", title="ROC")
    ax1.legend(loc="lower right")
    prec, rec, _ = precision_recall_curve(y, p)
    ppv = y[pred].mean() if pred.any() else np.nan
    ax2.plot(rec, prec, lw=2, label=f"AP {average_precision_score(y, p):.3f}")
    ax2.scatter([sens], [ppv], c="red", zorder=3, label="operating point")
    ax2.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    ax2.legend(loc="lower left")
    fig.suptitle(title)
    return fig


def confusion_heatmap(matrix, classes, title: str = ""):
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(1.3 * len(classes) + 2.5, 1.1 * len(classes) + 2))
    sns.heatmap(np.asarray(matrix), annot=True, fmt="d", cmap="Blues", cbar=False,
                xticklabels=classes, yticklabels=classes, ax=ax)
    ax.set(xlabel="predicted", ylabel="true", title=title or "Confusion matrix (test)")
    return fig


def reliability_diagram(curves: dict[str, dict], title: str = ""):
    """One line per labelled reliability curve (from ``metrics.reliability_curve``)."""
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    ax.plot([0, 1], [0, 1], ls=":", c="grey", label="perfect calibration")
    for label, c in curves.items():
        conf, acc, count = (np.asarray(c[k], dtype=float) for k in ("confidence", "accuracy", "count"))
        keep = count > 0
        ax.plot(conf[keep], acc[keep], marker="o", label=label)
    ax.set(xlabel="predicted probability / confidence", ylabel="observed frequency",
           xlim=(0, 1), ylim=(0, 1), title=title or "Reliability")
    ax.legend(loc="upper left", fontsize=8)
    return fig


def training_curves(history: pd.DataFrame, title: str = ""):
    metrics = [m for m in ("loss", "auc", "accuracy") if m in history]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6))
    for ax, m in zip(np.atleast_1d(axes), metrics):
        for split, style in (("", "-"), ("val_", "--")):
            if split + m in history:
                ax.plot(history["epoch"], history[split + m], style, marker="o",
                        label=("validation" if split else "train"))
        boundary = history.loc[history["phase"] == "finetune", "epoch"]
        if len(boundary):
            ax.axvline(boundary.iloc[0] - 0.5, c="grey", ls=":", lw=1)
        ax.set(xlabel="epoch (frozen | fine-tune)", title=m)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def image_grid(images, titles, ncols: int = 4, size: float = 2.6):
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.3))
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    for ax, img, t in zip(np.atleast_1d(axes).ravel(), images, titles):
        ax.imshow(img)
        ax.set_title(t, fontsize=8)
    fig.tight_layout()
    return fig


def compact_notebook_images(path: str | Path, colours: int = 128, max_width: int = 900) -> tuple[int, int]:
    """Re-encode a notebook's embedded PNG outputs as palette PNGs (at most ``colours``
    colours, ``max_width`` pixels wide), in place; returns (bytes before, bytes after).

    Executed notebooks embed every figure as full-colour PNG; a palette keeps plots and
    greyscale scans visually the same at a third of the size, so the committed full run
    stays small enough for git.
    """
    import base64
    import io
    import json

    from PIL import Image

    path = Path(path)
    before = path.stat().st_size
    nb = json.loads(path.read_text())
    for cell in nb.get("cells", []):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" not in data:
                continue
            raw = base64.b64decode("".join(data["image/png"]))
            image = Image.open(io.BytesIO(raw)).convert("RGB")
            if image.width > max_width:
                image = image.resize((max_width, round(image.height * max_width / image.width)), Image.LANCZOS)
            buffer = io.BytesIO()
            image.quantize(colours, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG", optimize=True)
            if buffer.tell() < len(raw):
                data["image/png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return before, path.stat().st_size
