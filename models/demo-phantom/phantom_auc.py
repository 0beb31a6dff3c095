"""AUC (scikit-learn) of `sacro predict`'s probabilities against `sacro phantom`'s truth.

Usage: python3 phantom_auc.py TRUTH_CSV PREDICTIONS_CSV [K ...]
Prints one line for all predictions and one for each K: the first K cases by file name (the phantoms
`sacro phantom --n K` writes with the same seed). Used by evaluate.sh beside it and by benches/gpu.sh.
"""

import csv
import os
import sys

from sklearn.metrics import roc_auc_score

truth_csv, pred_csv, *firsts = sys.argv[1:]
truth = {r["file"]: int(r["definite"]) for r in csv.DictReader(open(truth_csv))}
rows = sorted(
    (os.path.basename(r["file"]), truth[os.path.basename(r["file"])], float(r["probability"]))
    for r in csv.DictReader(open(pred_csv))
)
for k in [len(rows), *map(int, firsts)]:
    y = [label for _, label, _ in rows[:k]]
    auc = roc_auc_score(y, [p for _, _, p in rows[:k]])
    print(f"n {k}, AUC {auc:.4f}, prevalence {sum(y) / len(y):.3f}")
