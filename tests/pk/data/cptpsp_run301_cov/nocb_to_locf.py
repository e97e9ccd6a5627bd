"""Make data.csv (our format) from data_nonmem.csv (the file NONMEM read).

NONMEM applies a record's covariates to the interval that ends at that record (next
observation carried backward) and processes records in file order; our format applies them
from the record onwards (last observation carried forward) and wants doses first at equal
times. So the rows of each ID are put in our order (stable: doses first at equal times) and
every record at time t gets the covariates of the first record, in NONMEM's file order, at
the next later time: those are the values NONMEM used from t to that time.
Run from this folder: python nocb_to_locf.py
"""

import csv

COVARIATES = ("BW", "SEX")

with open("data_nonmem.csv", newline="", encoding="utf-8") as handle:
    rows = list(csv.DictReader(handle))
fieldnames = list(rows[0])

out = []
for subject_id in dict.fromkeys(r["ID"] for r in rows):
    records = [r for r in rows if r["ID"] == subject_id]
    converted = []
    for record in records:
        time = float(record["time"])
        later = [r for r in records if float(r["time"]) > time]
        row = dict(record)
        if later:
            first_later = min(later, key=lambda r: float(r["time"]))  # first in file order
            for name in COVARIATES:
                row[name] = first_later[name]
        converted.append(row)
    converted.sort(key=lambda r: (float(r["time"]), 0 if r["evid"] == "1" else 1))
    out.extend(converted)

with open("data.csv", "w", newline="", encoding="utf-8") as handle:
    writer = csv.DictWriter(handle, fieldnames=fieldnames, lineterminator="\n")
    writer.writeheader()
    writer.writerows(out)
