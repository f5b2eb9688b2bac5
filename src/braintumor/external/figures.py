"""evaluate-external's figures, drawn from its report: within-group AUCs and the strata.
(The ROC with the card's operating point is :func:`braintumor.reporting.plots.roc_pr_curves`.)"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def within_group_auc_plot(within: dict, title: str = ""):
    """Each group's AUC (one dot per patient), the median and the chance line."""
    aucs = np.array([v["auc"] for v in within["per_group"].values()])
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    if aucs.size:
        jitter = np.random.default_rng(0).uniform(-0.15, 0.15, aucs.size)
        ax.scatter(aucs, jitter, s=18, alpha=0.7)
        ax.axvline(within["median"], c="C1", lw=2, label=f"median {within['median']:.3f}")
        m = within["mean"]
        ax.axvspan(m["low"], m["high"], color="C2", alpha=0.2,
                   label=f"mean {m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]")
    ax.axvline(0.5, c="grey", ls=":", label="chance")
    ax.set(xlim=(0, 1), ylim=(-0.5, 0.5), yticks=[], xlabel="AUC within one group (patient)",
           title=title or f"Within-group AUC ({within['n_groups']} groups with both classes)")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def strata_plot(strata: dict, title: str = ""):
    """Sensitivity (or specificity for healthy-only bins) with its interval, per bin, one
    panel per stratum column."""
    cols = list(strata)
    fig, axes = plt.subplots(1, max(1, len(cols)), figsize=(4.6 * max(1, len(cols)), 3.6), squeeze=False)
    for ax, col in zip(axes[0], cols):
        names, values, lows, highs, colours = [], [], [], [], []
        for b, e in strata[col]["bins"].items():
            key, colour = ("sensitivity", "C0") if "sensitivity" in e else ("specificity", "C3")
            v = e[key]
            if v["value"] is None:
                continue
            n = e["n_tumor"] if key == "sensitivity" else e["n_healthy"]
            names.append(f"{b}\n(n={n})")
            values.append(v["value"])
            lows.append(v["value"] - (v["low"] if v["low"] is not None else v["value"]))
            highs.append((v["high"] if v["high"] is not None else v["value"]) - v["value"])
            colours.append(colour)
        x = np.arange(len(names))
        ax.bar(x, values, color=colours, alpha=0.75)
        ax.errorbar(x, values, yerr=[lows, highs], fmt="none", c="k", capsize=3)
        ax.set_xticks(x, names, fontsize=7)
        ax.set(ylim=(0, 1.05), title=col, ylabel="sensitivity (blue) / specificity (red)")
    fig.suptitle(title or "At the model card's threshold, per stratum")
    fig.tight_layout()
    return fig
