"""Figures of the shortcut audit: probe accuracies raw vs crop-mask, and what the
mitigation does to example images (never a CT tumour original: they carry patient names)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..data.images import load_rgb, resize_pad
from ..preprocess.crop_mask import crop_mask
from ..preprocess.text import has_overlay_text
from .probes import PROBE_TITLES


def plot_probes(report: dict):
    """Bar chart per task: test accuracy of every probe, raw vs mitigated, 95% CI whiskers,
    with chance (majority class) and the 60% line the mitigated outside-head probe must meet."""
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, 3.6 * len(tasks)), squeeze=False)
    probes = list(PROBE_TITLES)
    x = np.arange(len(probes))
    for ax, task in zip(axes[:, 0], tasks):
        result = report["tasks"][task]
        for offset, key, colour in ((-0.2, "raw", "#c0504d"), (0.2, "mitigated", "#4f81bd")):
            values, lows, highs, where = [], [], [], []
            for i, probe in enumerate(probes):
                r = result[key].get(probe)
                if r:
                    a = r["accuracy"]
                    values.append(a["value"])
                    lows.append(a["value"] - a["low"])
                    highs.append(a["high"] - a["value"])
                    where.append(i + offset)
            label = "raw images" if key == "raw" else "crop-mask (mitigated)"
            ax.bar(where, values, width=0.38, color=colour, label=label,
                   yerr=[lows, highs], capsize=3, error_kw={"elinewidth": 1})
            for xi, v in zip(where, values):
                ax.text(xi, 0.02 + 0.5 * v, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        rotation=90, color="white")
        chance = result["raw"]["full"]["chance_accuracy"]
        ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance (majority class) {chance:.2f}")
        ax.axhline(0.60, color="black", ls="--", lw=0.8, label="0.60")
        ax.set_xticks(x, [PROBE_TITLES[p] for p in probes], rotation=20, ha="right")
        ax.set_ylim(0, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("test accuracy")
        n = result["n_per_split"]
        ax.set_title(f"{task.upper()}: healthy vs tumour — logistic-regression probes "
                     f"(train/val/test {n[0]}/{n[1]}/{n[2]}, {report['backbone']})", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def mitigation_examples(root: Path, rows: pd.DataFrame, per_class: int = 3, seed: int = 0,
                        size: int = 160) -> list[tuple[str, list[np.ndarray], list[str]]]:
    """Example panels per class: ``(class title, images, captions)``.

    CT tumour images carry patient names, so only their mitigated version is returned,
    and only for images with text found where a second scan of the mitigated output
    finds none; the other classes show original and crop-mask side by side, for images
    where no text was found at all. Picks are seeded; look at the figure before
    publishing it all the same.
    """
    out = []
    rng = np.random.default_rng(seed)
    for (modality, label), part in rows.groupby(["modality", "label"], sort=True):
        sensitive = modality == "CT" and label == "tumor"
        images, captions = [], []
        for i in rng.permutation(len(part)):
            rgb = load_rgb(Path(root) / part["path"].iloc[i])
            mitigated = crop_mask(rgb)
            if sensitive:
                if not has_overlay_text(rgb) or has_overlay_text(mitigated):
                    continue  # show what the mitigation did to text, and never a leftover
                images.append(resize_pad(mitigated, size))
                captions.append("crop-mask")
            else:
                if has_overlay_text(rgb):
                    continue  # originals are shown only where no burned-in text was found
                images += [resize_pad(rgb, size), resize_pad(mitigated, size)]
                captions += ["original", "crop-mask"]
            if len(captions) >= (per_class if sensitive else 2 * per_class):
                break
        out.append((f"{modality} {label}", images, captions))
    return out


def plot_mitigation_examples(panels) -> object:
    """One row per class of :func:`mitigation_examples` panels."""
    import matplotlib.pyplot as plt

    ncols = max(len(images) for _, images, _ in panels)
    fig, axes = plt.subplots(len(panels), ncols, figsize=(1.9 * ncols, 2.1 * len(panels)), squeeze=False)
    for r, (title, images, captions) in enumerate(panels):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c])
                ax.set_title(f"{title}: {captions[c]}" if c == 0 else captions[c], fontsize=8)
    fig.suptitle("crop-mask: overlay text masked, everything outside the head blanked, cropped to the head\n"
                 "(CT tumour originals carry patient names and are never shown)", fontsize=9)
    fig.tight_layout()
    return fig
