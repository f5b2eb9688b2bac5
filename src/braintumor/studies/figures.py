"""The study's figure: what each recipe buys on the same-scan set against what it costs on
SARTAJ, one point per arm (the pooled estimate and its interval) and per seed."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

X_SET, Y_SET = "lgg-flair-a", "sartaj"
TARGET = {X_SET: 0.80, Y_SET: 0.97}  # issue 14's targets (with the Kaggle test AUC >= 0.99)


def _own_schedule(schedule: dict | None) -> str:
    """`` [epochs_finetune 4]`` for an arm trained on its own schedule; empty otherwise (two
    arms of one recipe would look alike)."""
    return f" [{', '.join(f'{k} {v}' for k, v in sorted(schedule.items()))}]" if schedule else ""


def _label(entry: dict, schedule: dict | None = None) -> str:
    return (f"{entry['task']}: {entry['preprocess']}" + (f" + {entry['recipe']}" if entry["recipe"] != "none" else "")
            + _own_schedule(schedule))


def _short(entry: dict, schedule: dict | None = None) -> str:
    """The point's annotation: what the arm adds to plain crop-mask (``zscore + nsa``)."""
    parts = [entry["preprocess"].replace("crop-mask-", "").replace("crop-mask", ""), entry["recipe"]]
    return (" + ".join(p for p in parts if p and p != "none") or entry["preprocess"]) + _own_schedule(schedule)


def tradeoff_points(summary: dict) -> list[dict]:
    """Arms scored on both sets: label, pooled AUC with interval per set, per-seed AUCs."""
    points, own = [], summary.get("own_schedules") or {}
    for arm, entry in summary["arms"].items():
        ext = entry.get("external") or {}
        aucs = [(ext.get(s) or {}).get("metrics", {}).get("roc_auc") for s in (X_SET, Y_SET)]
        if any(a is None for a in aucs):
            continue
        seeds = sorted(set(aucs[0].get("per_seed", {})) & set(aucs[1].get("per_seed", {})), key=int)
        schedule = own.get(arm)
        points.append({"arm": arm, "label": _label(entry, schedule), "short": _short(entry, schedule),
                       "n_seeds": entry["n_seeds"],
                       "x": aucs[0], "y": aucs[1],
                       "seeds": [(aucs[0]["per_seed"][k], aucs[1]["per_seed"][k]) for k in seeds]})
    return points


def recipe_tradeoff(summary: dict, ax=None):
    """Same-scan AUC (x) against SARTAJ AUC (y) per arm; the target corner shaded. Drawn on
    ``ax`` if given (side by side with another round), else on a new figure."""
    points = tradeoff_points(summary)
    fig, ax = plt.subplots(figsize=(7.5, 5.5)) if ax is None else (ax.figure, ax)
    ax.fill_between([TARGET[X_SET], 1.0], TARGET[Y_SET], 1.0, color="tab:green", alpha=0.12,
                    label="target (both AUCs)")
    ax.axvline(0.5, ls=":", c="grey", lw=1)
    colours = plt.get_cmap("tab20")
    for i, p in enumerate(sorted(points, key=lambda p: p["x"]["value"])):
        c = colours(i % 20)
        x, y = p["x"], p["y"]
        ax.errorbar(x["value"], y["value"], xerr=[[x["value"] - x["low"]], [x["high"] - x["value"]]],
                    yerr=[[y["value"] - y["low"]], [y["high"] - y["value"]]], fmt="o", color=c, ms=6,
                    capsize=2, lw=1, label=f"{p['label']} (n={p['n_seeds']})")
        ax.annotate(p["short"], (x["value"], y["value"]),
                    xytext=(4, 4), textcoords="offset points", fontsize=7, color=c)
        if len(p["seeds"]) > 1:
            ax.scatter(*zip(*p["seeds"]), s=12, color=c, alpha=0.6, marker="x")
    ax.set(xlabel=f"{X_SET}: AUC, tumour vs tumour-free slices of the same scans",
           ylabel=f"{Y_SET}: AUC, unseen SARTAJ images", xlim=(0.45, 1.0),
           title="What each training recipe buys (same scans) and costs (SARTAJ)\n"
                 "pooled over seeds, 95% interval; x = single seeds")
    ax.legend(fontsize=7, loc="lower left", ncol=1, framealpha=0.8)
    return fig


def write_tradeoff(summary: dict, path: str | Path) -> Path | None:
    """Save :func:`recipe_tradeoff` to ``path``; ``None`` when no arm has both sets."""
    from ..reporting.plots import save

    if not tradeoff_points(summary):
        return None
    return save(recipe_tradeoff(summary), path)
