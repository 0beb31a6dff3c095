#!/usr/bin/env python3
"""Reference values for tests/stats_reference.rs, made with scikit-learn, statsmodels and scipy (not Sacro).

Run by hand, not in CI:
    pip install numpy scipy scikit-learn statsmodels
    python3 tests/reference/make_stats_reference.py > tests/reference/stats.json

DeLong: the variance and covariance are computed here with the original O(m·n) structural components of
DeLong, DeLong & Clarke-Pearson (Biometrics 1988), psi(x, y) = 1 if x > y, 1/2 if equal, 0 otherwise, which
is a different algorithm from the fast midrank one Sacro uses (Sun & Xu 2014).
"""
import json
import sys

import numpy as np
from scipy.stats import norm
from sklearn.metrics import (average_precision_score, cohen_kappa_score, precision_recall_curve,
                             roc_auc_score, roc_curve)
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa
from statsmodels.stats.proportion import proportion_confint


def fl(a):
    return [None if not np.isfinite(v) else float(v) for v in a]


def delong_reference(y, a, b):
    y = np.asarray(y, bool)
    out = {}
    comps = []
    for s in (a, b):
        s = np.asarray(s, float)
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]).astype(float) + 0.5 * (x[:, None] == z[None, :])
        comps.append((psi.mean(axis=1), psi.mean(axis=0), psi.mean()))
    m, n = y.sum(), (~y).sum()
    (a10, a01, auc_a), (b10, b01, auc_b) = comps
    s10 = np.cov(np.vstack([a10, b10]))
    s01 = np.cov(np.vstack([a01, b01]))
    s = s10 / m + s01 / n
    var_diff = s[0, 0] + s[1, 1] - 2 * s[0, 1]
    z = (auc_a - auc_b) / np.sqrt(var_diff) if var_diff > 0 else 0.0
    half = norm.ppf(0.975) * np.sqrt(s[0, 0])
    out.update(auc_a=auc_a, auc_b=auc_b, var_a=s[0, 0], var_b=s[1, 1], cov=s[0, 1], z=z,
               p=2 * (1 - norm.cdf(abs(z))), ci_a=[max(0.0, auc_a - half), min(1.0, auc_a + half)])
    clean = lambda x: float(x) if np.isfinite(x) else None  # NaN where a class has a single case
    return {k: (clean(v) if not isinstance(v, list) else [clean(x) for x in v]) for k, v in out.items()}


def binary_sets(rng):
    sets = {}
    y = rng.random(50) < 0.4
    sets["continuous_n50"] = (y, rng.normal(size=50) + 1.2 * y, rng.normal(size=50) + 0.6 * y)
    y = rng.random(200) < 0.66
    sets["heavy_ties_n200"] = (y, np.round(rng.random(200) * 0.6 + 0.4 * y, 1),
                              np.round(rng.random(200) * 0.8 + 0.2 * y, 1))
    sets["tiny_n3"] = (np.array([True, False, True]), np.array([0.2, 0.5, 0.9]), np.array([0.3, 0.3, 0.3]))
    sets["tiny_n5_ties"] = (np.array([False, True, False, True, True]), np.array([0.5, 0.5, 0.1, 0.5, 0.9]),
                            np.array([0.1, 0.2, 0.3, 0.4, 0.5]))
    sets["perfect_n10"] = (np.arange(10) >= 5, np.arange(10) / 10.0, np.arange(10)[::-1] / 10.0)
    sets["all_tied_n8"] = (np.arange(8) % 2 == 0, np.full(8, 0.5), np.arange(8) / 8.0)
    return sets


def main():
    rng = np.random.default_rng(20210426)
    out = {"binary": {}, "kappa": [], "fleiss": [], "wilson": []}
    for name, (y, a, b) in binary_sets(rng).items():
        entry = {"labels": [bool(v) for v in y], "scores": fl(a), "scores_b": fl(b)}
        for drop in (True, False):
            fpr, tpr, thr = roc_curve(y, a, drop_intermediate=drop)
            entry[f"roc_drop_{drop}"] = {"fpr": fl(fpr), "tpr": fl(tpr), "thresholds": fl(thr)}
        entry["auc"] = float(roc_auc_score(y, a))
        p, r, t = precision_recall_curve(y, a)
        entry["pr"] = {"precision": fl(p), "recall": fl(r), "thresholds": fl(t)}
        entry["ap"] = float(average_precision_score(y, a))
        entry["delong"] = delong_reference(y, a, b)
        out["binary"][name] = entry
    for n, k in [(100, 5), (40, 5), (12, 5), (60, 2)]:
        a = rng.integers(0, k, n)
        b = np.clip(a + rng.integers(-1, 2, n), 0, k - 1)
        flip = rng.random(n) < 0.2
        b[flip] = rng.integers(0, k, flip.sum())
        out["kappa"].append({
            "k": k, "a": a.tolist(), "b": b.tolist(),
            "none": float(cohen_kappa_score(a, b, labels=list(range(k)))),
            "linear": float(cohen_kappa_score(a, b, labels=list(range(k)), weights="linear")),
            "quadratic": float(cohen_kappa_score(a, b, labels=list(range(k)), weights="quadratic")),
        })
    for subjects, raters, cats in [(30, 4, 3), (25, 3, 2), (10, 6, 5)]:
        ratings = rng.integers(0, cats, (subjects, raters))
        table, _ = aggregate_raters(ratings, n_cat=cats)
        out["fleiss"].append({"table": table.tolist(), "kappa": float(fleiss_kappa(table))})
    for k, n in [(132, 150), (75, 79), (0, 10), (10, 10), (1, 2), (204, 223)]:
        lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
        out["wilson"].append({"k": k, "n": n, "lower": float(lo), "upper": float(hi)})
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
