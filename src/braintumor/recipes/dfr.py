"""The ``dfr`` recipe: deep feature reweighting (Kirichenko, Izmailov & Wilson, "Last layer
re-training is sufficient for robustness to spurious correlations", ICLR 2023).

The backbone of a model trained on the Kaggle labels already encodes the tumour; it is the
head that leans on the source (healthy and tumour images come from different collections).
DFR keeps the features and refits only the last layer on data where the shortcut does not
hold. Here that is pairs built from the split's healthy images — the image (healthy) and the
same image with a synthetic lesion (tumour, :func:`braintumor.lesions.synthesize`), which
share every source cue — weighted equally with the real rows, classes balanced within
each group, so the head keeps what it knows of real tumours but is paid to see lesions.
The regularisation is chosen on validation only, by the worse of the two groups' AUCs
(DFR's worst-group selection). The fitted logistic regression is folded into the Dense
``logits`` layer, so the saved Keras model is the refitted model.
"""
from __future__ import annotations

import numpy as np

DESCRIPTION = ("last-layer refit (deep feature reweighting) on real rows plus healthy/lesioned "
               "pairs weighted equally; C chosen on validation by the worse group's AUC")
BINARY_ONLY = True
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)  # inverse L2 strength on standardised features
SEED_OFFSET = {"train": 101, "val": 102}  # lesions uses seed+0/+1, patches +10/+11
GROUPS = ("real", "pairs")
TIE = 1e-6  # AUCs this close count as equal: the stronger regularisation wins


def groups(model, data, name: str, config, verbose: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Pooled features and labels of split ``name``'s two groups: ``real`` (the selected real
    rows) and ``pairs`` (each healthy image that took a lesion, then its lesioned copy)."""
    from ..lesions import synthesize
    from ..models.classifier import extract_features, feature_model

    split, task = getattr(data, name), data.task
    healthy_label, tumour_label = task.classes.index("healthy"), task.classes.index("tumor")
    features = feature_model(model)
    f_all = extract_features(features, split.images, config.batch_size, verbose)
    idx = data.selection.get(name, np.arange(len(split.y)))  # training's own rule for real rows
    healthy = np.flatnonzero(split.y == healthy_label)
    lesioned, source = synthesize(split.images[healthy], 1, config.seed + SEED_OFFSET[name])
    f_lesioned = extract_features(features, lesioned, config.batch_size, verbose)
    f_pairs = np.concatenate([f_all[healthy[source]], f_lesioned]) if len(source) else f_lesioned
    y_pairs = np.repeat([healthy_label, tumour_label], len(source))
    out = {"real": (f_all[idx], split.y[idx]), "pairs": (f_pairs, y_pairs)}
    for group, (_, y) in out.items():
        if len(set(y.tolist())) < 2:
            raise ValueError(f"dfr: the {name} split's {group} group needs both classes")
    return out


def sample_weights(parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Each group weighs the same in total and each class half of its group; mean weight 1
    (so C keeps its usual scale)."""
    w = []
    for _, y in parts.values():
        counts = {c: (y == c).sum() for c in set(y.tolist())}
        w.append(np.array([1.0 / (len(counts) * counts[c]) for c in y.tolist()]))
    w = np.concatenate(w)
    return w * len(w) / w.sum()


def fit_head(parts: dict[str, tuple[np.ndarray, np.ndarray]], c: float):
    """Weighted L2 logistic regression on standardised features (a sklearn pipeline)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([f for f, _ in parts.values()]).astype(np.float64)
    y = np.concatenate([y for _, y in parts.values()])
    head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
    return head.fit(x, y, logisticregression__sample_weight=sample_weights(parts))


def group_aucs(score, parts: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """AUC of ``score(features)`` per group."""
    from sklearn.metrics import roc_auc_score

    return {g: float(roc_auc_score(y, score(f.astype(np.float64)))) for g, (f, y) in parts.items()}


def choose_c(scores: dict[float, dict[str, float]]) -> float:
    """The C whose worst group AUC is highest; among ties (within ``TIE``) the smallest C."""
    best = max(min(s.values()) for s in scores.values())
    return min(c for c, s in scores.items() if min(s.values()) >= best - TIE)


def fold_into_logits(model, head) -> None:
    """Write ``head`` (scaler + logistic regression) into the Dense ``logits`` layer:
    w·(x − μ)/σ + b = (w/σ)·x + (b − Σ w μ/σ)."""
    from ..models.classifier import LOGITS_LAYER

    scaler, lr = head[0], head[-1]
    w = lr.coef_[0] / scaler.scale_
    b = lr.intercept_[0] - float(np.dot(w, scaler.mean_))
    dense = model.get_layer(LOGITS_LAYER)
    kernel, bias = dense.get_weights()
    dense.set_weights([w.reshape(kernel.shape).astype(kernel.dtype), np.full(bias.shape, b, bias.dtype)])


def current_head_score(model):
    """The model's own logit as a function of pooled features (before the refit)."""
    from ..models.classifier import LOGITS_LAYER

    kernel, bias = model.get_layer(LOGITS_LAYER).get_weights()
    return lambda f: f @ kernel[:, 0].astype(np.float64) + float(bias[0])


def refine(model, data, config, verbose: int = 0) -> dict:
    """Refit the logits layer of ``model`` in place; returns the model card's note."""
    train, val = groups(model, data, "train", config, verbose), groups(model, data, "val", config, verbose)
    before = group_aucs(current_head_score(model), val)
    heads = {c: fit_head(train, c) for c in C_GRID}
    scores = {c: group_aucs(head.decision_function, val) for c, head in heads.items()}
    c = choose_c(scores)
    fold_into_logits(model, heads[c])
    return {
        "method": "deep feature reweighting (Kirichenko et al., ICLR 2023): logistic regression "
                  "on pooled features, real rows and healthy/lesioned pairs weighted equally, "
                  "classes balanced within each",
        "criterion": "max over C of min(real-val AUC, pairs-val AUC); ties to the smaller C",
        "C": c,
        "grid": {str(k): {g: round(v, 6) for g, v in s.items()} for k, s in scores.items()},
        "val_auc_before": {g: round(v, 6) for g, v in before.items()},
        "val_auc_after": {g: round(v, 6) for g, v in scores[c].items()},
        "n_rows": {split: {g: int(len(parts[g][1])) for g in GROUPS}
                   for split, parts in (("train", train), ("val", val))},
        "pair_seeds": {split: config.seed + off for split, off in SEED_OFFSET.items()},
    }
