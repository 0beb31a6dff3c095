"""Converts the Van Dyke et al. (1993) reader study (5 readers, cine MRI vs spin-echo MRI, 114 cases: 69
without and 45 with aortic dissection, ratings 1-5), as distributed in LRC format with the RJafroc R
package (inst/extdata/datasets/VD.lrc; the same data as MRMCaov's `VanDyke`), into Sacro's long format
`reader,modality,case,truth,rating` (tests/reference/mrmc_vandyke.csv).

LRC: per reader, its number, then one row per non-diseased case "rating_modality0 rating_modality1 case",
(the first reader also has a line of modality names and one of rating types),
"*", the diseased cases the same way, "*"; "#" ends the file.

Usage: python3 vandyke_from_lrc.py VD.lrc > mrmc_vandyke.csv
"""
import sys

lines = [l.strip() for l in open(sys.argv[1])]
# Title, the first reader's number, the modality names, the rating types; then that reader's rows.
rows, reader, section = [], lines[1], 0
lines = lines[4:]
for line in lines:
    if line == "#":
        break
    if line == "*":
        section += 1
        if section == 2:
            reader, section = None, 0
        continue
    parts = line.split()
    if reader is None:
        reader = parts[0]
        continue
    r0, r1, case = parts
    truth = section  # 0: non-diseased, 1: diseased
    rows.append((reader, "0", case, truth, r0))
    rows.append((reader, "1", case, truth, r1))
print("reader,modality,case,truth,rating")
for r in rows:
    print(",".join(str(x) for x in r))
