#!/usr/bin/env python3
"""Reference values for Sacro's MRMC analysis (tests/stats_reference.rs), written here from the papers'
formulas with numpy/scipy only (no MRMC package's code):

- Obuchowski & Rockette (1995): the OR model; Hillis, Obuchowski, Schartz & Berbaum (2005) and Hillis
  (2007): the random-readers random-cases F test with ddf_H, fixed readers (chi-square), fixed cases;
- Hillis (2008): DBM on jackknife pseudovalues with the same denominator;
- DeLong, DeLong & Clarke-Pearson (1988): structural components.

Deliberately different algorithms from Sacro's: AUCs from the full m x n psi matrix, jackknife values by
recomputing each AUC without each case (Sacro uses the structural components), DBM ANOVA by numpy
broadcasting.

Data: a Roe & Metz (1997) simulation with known structure (3 modalities, 4 readers, 30 positive and 40
negative cases, seed 2026), written to tests/reference/mrmc_roemetz.csv.

Run by hand, not in CI:
    pip install numpy scipy
    python3 tests/reference/make_mrmc_reference.py
"""
import json
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))


def roe_metz(rng, I=3, J=4, K1=30, K0=40, mu=(0.0, 0.6, 1.0)):
    # Variance components (Roe & Metz 1997, "HL" structure, scaled): reader, case, and their interactions.
    vR, vC, vTR, vTC, vRC, vE = 0.011, 0.1, 0.03, 0.1, 0.2, 0.6
    K = K1 + K0
    truth = np.r_[np.ones(K1, bool), np.zeros(K0, bool)]
    R = rng.normal(0, np.sqrt(vR), (1, J, 1))
    C = rng.normal(0, np.sqrt(vC), (1, 1, K))
    TR = rng.normal(0, np.sqrt(vTR), (I, J, 1))
    TC = rng.normal(0, np.sqrt(vTC), (I, 1, K))
    RC = rng.normal(0, np.sqrt(vRC), (1, J, K))
    E = rng.normal(0, np.sqrt(vE), (I, J, K))
    signal = np.asarray(mu).reshape(I, 1, 1) * truth.reshape(1, 1, K) + 1.2 * truth.reshape(1, 1, K)
    x = signal + R + C + TR + TC + RC + E
    # Ratings on a 0-100 scale in steps of 5: ties within and across classes.
    ratings = np.clip(np.round((x + 2.5) * 20 / 5) * 5, 0, 100)
    return truth, ratings


def psi(pos, neg):
    return (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])


def fom(scores, truth, kind, t=None):
    pos, neg = scores[truth], scores[~truth]
    if kind == "auc":
        return psi(pos, neg).mean()
    if kind == "sens":
        return (pos >= t).mean()
    return (neg < t).mean()


def jackknife(ratings, truth, kind, t=None):
    I, J, K = ratings.shape
    theta = np.array([[fom(ratings[i, j], truth, kind, t) for j in range(J)] for i in range(I)])
    loo = np.empty((I, J, K))
    for k in range(K):
        keep = np.arange(K) != k
        for i in range(I):
            for j in range(J):
                loo[i, j, k] = fom(ratings[i, j, keep], truth[keep], kind, t)
    flat = loo.reshape(I * J, K)
    d = flat - flat.mean(axis=1, keepdims=True)
    cov = (K - 1) / K * d @ d.T
    return theta, loo, cov


def delong_cov(ratings, truth):
    I, J, K = ratings.shape
    v10, v01 = [], []
    for i in range(I):
        for j in range(J):
            p = psi(ratings[i, j, truth], ratings[i, j, ~truth])
            v10.append(p.mean(axis=1))
            v01.append(p.mean(axis=0))
    v10, v01 = np.array(v10), np.array(v01)
    return np.cov(v10) / v10.shape[1] + np.cov(v01) / v01.shape[1]


def or_analysis(theta, cov, alpha=0.05):
    I, J = theta.shape
    idx = [(i, j) for i in range(I) for j in range(J)]
    kinds = {0: [], 1: [], 2: [], 3: []}
    for a, (ia, ja) in enumerate(idx):
        for b, (ib, jb) in enumerate(idx):
            kinds[(ia != ib) + 2 * (ja != jb)].append(cov[a, b])
    var, cov1, cov2, cov3 = (np.mean(kinds[k]) for k in (0, 1, 2, 3))
    mi, mj, m = theta.mean(1), theta.mean(0), theta.mean()
    ms_t = J * ((mi - m) ** 2).sum() / (I - 1)
    ms_r = I * ((mj - m) ** 2).sum() / (J - 1)
    ms_tr = ((theta - mi[:, None] - mj[None, :] + m) ** 2).sum() / ((I - 1) * (J - 1))
    out = dict(var=var, cov1=cov1, cov2=cov2, cov3=cov3, ms_t=ms_t, ms_r=ms_r, ms_tr=ms_tr,
               var_tr=ms_tr - var + cov1 + cov2 - cov3,
               var_r=(ms_r - ms_tr) / I - cov1 + cov3, means=list(mi), foms=theta.tolist())
    pairs = [(a, b) for a in range(I) for b in range(a + 1, I)]

    def diffs(se, df):
        rows = []
        for a, b in pairs:
            est = mi[a] - mi[b]
            if df is None:
                q, p = stats.norm.ppf(1 - alpha / 2), 2 * stats.norm.sf(abs(est / se))
            else:
                q, p = stats.t.ppf(1 - alpha / 2, df), 2 * stats.t.sf(abs(est / se), df)
            rows.append(dict(estimate=est, std_err=se, df=df, lower=est - q * se, upper=est + q * se, p=p))
        return rows

    den = ms_tr + J * max(cov2 - cov3, 0)
    ddf = den ** 2 / (ms_tr ** 2 / ((I - 1) * (J - 1)))
    F = ms_t / den
    out["rrrc"] = dict(F=F, ddf=ddf, p=stats.f.sf(F, I - 1, ddf), diffs=diffs(np.sqrt(2 * den / J), ddf))
    single = []
    for i in range(I):
        ms_ri = ((theta[i] - mi[i]) ** 2).sum() / (J - 1)
        block = cov[i * J:(i + 1) * J, i * J:(i + 1) * J]
        cov2_i = (block.sum() - np.trace(block)) / (J * (J - 1))
        d = ms_ri + J * max(cov2_i, 0)
        df_i = d ** 2 / (ms_ri ** 2 / (J - 1))
        se = np.sqrt(d / J)
        q = stats.t.ppf(1 - alpha / 2, df_i)
        single.append(dict(estimate=mi[i], std_err=se, df=df_i, lower=mi[i] - q * se, upper=mi[i] + q * se))
    out["rrrc"]["modalities"] = single
    den_f = var - cov1 + (J - 1) * (cov2 - cov3)
    chi = (I - 1) * ms_t / den_f
    out["frrc"] = dict(chi2=chi, p=stats.chi2.sf(chi, I - 1), diffs=diffs(np.sqrt(2 * den_f / J), None))
    F_fc = ms_t / ms_tr
    df2 = (I - 1) * (J - 1)
    out["rrfc"] = dict(F=F_fc, p=stats.f.sf(F_fc, I - 1, df2), diffs=diffs(np.sqrt(2 * ms_tr / J), df2))
    return out


def dbm(theta, loo):
    I, J, K = loo.shape
    Y = K * theta[:, :, None] - (K - 1) * loo
    m = Y.mean()
    mi, mj, mk = Y.mean((1, 2)), Y.mean((0, 2)), Y.mean((0, 1))
    mij, mik, mjk = Y.mean(2), Y.mean(1), Y.mean(0)
    ms_t = J * K * ((mi - m) ** 2).sum() / (I - 1)
    ms_tr = K * ((mij - mi[:, None] - mj[None, :] + m) ** 2).sum() / ((I - 1) * (J - 1))
    ms_tc = J * ((mik - mi[:, None] - mk[None, :] + m) ** 2).sum() / ((I - 1) * (K - 1))
    r = (Y - mij[:, :, None] - mik[:, None, :] - mjk[None, :, :] + mi[:, None, None] + mj[None, :, None]
         + mk[None, None, :] - m)
    ms_trc = (r ** 2).sum() / ((I - 1) * (J - 1) * (K - 1))
    den = ms_tr + max(ms_tc - ms_trc, 0)
    ddf = den ** 2 / (ms_tr ** 2 / ((I - 1) * (J - 1)))
    F = ms_t / den
    return dict(ms_t=ms_t, ms_tr=ms_tr, ms_tc=ms_tc, ms_trc=ms_trc, F=F, ddf=ddf, p=stats.f.sf(F, I - 1, ddf))


def main():
    rng = np.random.default_rng(2026)
    truth, ratings = roe_metz(rng)
    I, J, K = ratings.shape
    with open(os.path.join(HERE, "mrmc_roemetz.csv"), "w") as f:
        f.write("reader,modality,case,truth,rating\n")
        for i in range(I):
            for j in range(J):
                for k in range(K):
                    f.write(f"R{j + 1},M{i + 1},C{k + 1:03d},{int(truth[k])},{ratings[i, j, k]:g}\n")
    theta, loo, cov = jackknife(ratings, truth, "auc")
    out = {"auc_jackknife": or_analysis(theta, cov), "auc_dbm": dbm(theta, loo)}
    out["auc_delong"] = or_analysis(theta, delong_cov(ratings, truth))
    for kind in ("sens", "spec"):
        th, _, cv = jackknife(ratings, truth, kind, 50.0)
        out[f"{kind}_at_50_jackknife"] = or_analysis(th, cv)
    with open(os.path.join(HERE, "mrmc_roemetz.json"), "w") as f:
        json.dump(out, f, indent=1, default=float)


if __name__ == "__main__":
    main()
