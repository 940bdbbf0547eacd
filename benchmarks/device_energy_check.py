"""The board estimator's leave-one-out error (pipeline/device_energy.py), per board.

    python benchmarks/device_energy_check.py

For every MLPerf Tiny board with energy measured on three or more reference
models, each model's energy is estimated from the board's other models, by
the rule the report uses (MACs times the others' per-MAC costs: their range,
geometric mean in the middle) and, to measure whether the op mix explains
more, by a two-term fit (energy = a * MACs + b * weight bytes, non-negative
least squares on the others). Prints each model's error (estimate / measured
- 1), whether the measurement lies in the reported range, and the mean
absolute error of both rules.
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pipeline import device_energy  # noqa: E402


def two_term(record, task, models):
    from scipy.optimize import nnls
    others = [t for t in device_energy.per_mac(record) if t != task]
    a = np.array([[models[t]["macs"], models[t]["bytes"]] for t in others], float)
    y = np.array([record["tasks"][t]["energy_uj"] for t in others])
    coef, _ = nnls(a, y)
    return coef @ [models[task]["macs"], models[task]["bytes"]] / record["tasks"][task]["energy_uj"] - 1


def main():
    table = device_energy.table()
    models = table["reference_models"]
    print(f"Source: {table['source']}\n")
    print("| board | round | model | measured (uJ) | estimated mid (range) | error | in range "
          "| error, MACs + bytes |")
    print("|---|---|---|---:|---|---:|---|---:|")
    for system, record in table["boards"].items():
        record = {"name": system, **record}
        if len(device_energy.per_mac(record)) < 3:
            continue
        errors, others = [], []
        for task, r in device_energy.leave_one_out(record).items():
            e = r["estimated_uj"]
            alt = two_term(record, task, models)
            errors.append(abs(r["error"]))
            others.append(abs(alt))
            print(f"| {record.get('board') or system} | {record['round']} | {task} | "
                  f"{r['measured_uj']:,.1f} | {e['mid']:,.1f} ({e['low']:,.1f}-{e['high']:,.1f}) "
                  f"| {r['error']:+.0%} | {'yes' if r['inside'] else 'no'} | {alt:+.0%} |")
        print(f"| {record.get('board') or system} | | **mean abs error** | | | "
              f"**{np.mean(errors):.0%}** | | **{np.mean(others):.0%}** |")


if __name__ == "__main__":
    main()
