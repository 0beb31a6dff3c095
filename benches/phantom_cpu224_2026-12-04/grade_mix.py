#!/usr/bin/env python3
# What a reader who sees only part of the phantoms' grading would score (scikit-learn AUC against
# "definite"), from the grades in truth.csv: one who sees only whether a joint is grade >= 3, and one who
# also tells grade 0 from 1-2 but not 1 from 2. Shows how much of the label rests on the grade-2 erosions
# (1-2 px at 224 px). Usage: python3 grade_mix.py TRUTH_CSV   (pip install scikit-learn)
import csv, sys
from collections import Counter
from sklearn.metrics import roc_auc_score
g = [(int(r['left_grade']), int(r['right_grade']), int(r['definite'])) for r in csv.DictReader(open(sys.argv[1]))]
print('films by (lower grade, higher grade, definite):',
      sorted(Counter((min(a, b), max(a, b), d) for a, b, d in g).items()))
y = [d for _, _, d in g]
print(f'sees grade >= 3 only: AUC {roc_auc_score(y, [max(a, b) >= 3 for a, b, _ in g]):.3f}')
seen = [2 if max(a, b) >= 3 else int(min(a, b) >= 1) for a, b, _ in g]
print(f'also 0 vs 1-2 on both joints, not 1 vs 2: AUC {roc_auc_score(y, seen):.3f}')
