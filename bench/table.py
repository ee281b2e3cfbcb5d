#!/usr/bin/python3
"""Print the benchmark's tables (Markdown) from a results.json written by bench/run.py.

Usage: /usr/bin/python3 bench/table.py [bench/out/full/results.json]
"""

import json
import os
import sys

TITLES = {
    "hw": "Hardware references",
    "t1": "Task 1: logistic regression, dense 100 features",
    "t2": "Task 2: the same data as LIBSVM text, read and train end to end",
    "t3": "Task 3: sparse logistic regression (CSR)",
    "t4-fmnist": "Task 4: MLP 784-256-10, Adam, Fashion-MNIST",
    "t4-synth": "Task 4: MLP 784-256-10, Adam, synthetic rows",
    "t5": "Task 5: the bundled digits MLP end to end (data/digits.csv)",
}


def num(rec, key):
    """rec[key] as a float, or None when absent, not a number or NaN."""
    try:
        value = float(rec.get(key))
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def fmt_s(value):
    if value is None:
        return "-"
    if value >= 100:
        return "%.0f s" % value
    if value >= 1:
        return "%.2f s" % value
    if value >= 0.001:
        return "%.1f ms" % (value * 1e3)
    return "%.0f us" % (value * 1e6)


def fmt_rate(value):
    if value is None:
        return "-"
    if value >= 1e6:
        return "%.2f M" % (value / 1e6)
    if value >= 1e3:
        return "%.1f k" % (value / 1e3)
    return "%.0f" % value


def fmt_acc(value):
    return "-" if value is None else "%.2f %%" % (100 * value)


def fmt_loss(value):
    return "-" if value is None else "%.4f" % value


def fmt_mb(value):
    return "-" if value is None else "%.0f" % value


def fmt_ratio(value):
    if value is None:
        return "-"
    return "%.2fx" % value if value < 10 else "%.0fx" % value


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def threads_of(rec):
    try:
        return int(rec.get("threads"))
    except (TypeError, ValueError):
        return None


class Results:
    def __init__(self, report):
        self.machine = report.get("machine", {})
        self.all = report.get("results", [])
        self.threads = self.machine.get("threads")

    def of(self, task):
        return [r for r in self.all if r.get("task") == task]

    def descent(self, task, setting, threads=None):
        """descent's ok row of task with this setting, at the benchmark's thread count."""
        want = threads or self.threads
        for r in self.of(task):
            if (r.get("tool") == "descent" and r.get("setting") == setting and
                    r.get("status") == "ok" and threads_of(r) == want):
                return r
        return None

    def ratio(self, rec, key):
        """rec's key divided by the same of descent's reference row."""
        ref = self.descent(rec["task"], rec.get("ref"))
        if not ref or ref is rec or rec.get("status") != "ok":
            return None
        mine, theirs = num(rec, key), num(ref, key)
        return mine / theirs if mine and theirs else None


def na_row(rec, width):
    cells = [rec.get("tool", ""), rec.get("setting", ""), str(rec.get("threads", ""))]
    cells.append("n/a (%s)" % rec.get("reason", "failed"))
    return cells + [""] * (width - len(cells))


def training_table(res, task):
    header = ["tool", "setting", "threads", "epochs", "time/epoch", "samples/s", "final loss",
              "test acc", "peak MB", "time vs descent", "notes"]
    rows = []
    for r in res.of(task):
        if r.get("status") != "ok":
            rows.append(na_row(r, len(header)))
            continue
        ratio = res.ratio(r, "epoch_s")
        rows.append([r["tool"], r["setting"], r.get("threads", ""), r.get("epochs", ""),
                     fmt_s(num(r, "epoch_s")), fmt_rate(num(r, "samples_s")),
                     fmt_loss(num(r, "loss")), fmt_acc(num(r, "acc")),
                     fmt_mb(num(r, "peak_mb")), fmt_ratio(ratio), r.get("note", "")])
    return md_table(header, rows)


def libsvm_table(res, task):
    header = ["tool", "setting", "threads", "read", "train", "total", "read MB/s",
              "final loss", "test acc", "peak MB", "total vs descent", "notes"]
    rows = []
    for r in res.of(task):
        if r.get("status") != "ok":
            rows.append(na_row(r, len(header)))
            continue
        note = r.get("note", "")
        if r["tool"] == "descent":
            note += "; file %s MB, stored as %s" % (r.get("file_mb", "?"), r.get("storage", "?"))
        rows.append([r["tool"], r["setting"], r.get("threads", ""), fmt_s(num(r, "read_s")),
                     fmt_s(num(r, "train_s")), fmt_s(num(r, "total_s")),
                     "%.0f" % num(r, "read_mbs") if num(r, "read_mbs") else "-",
                     fmt_loss(num(r, "loss")), fmt_acc(num(r, "acc")), fmt_mb(num(r, "peak_mb")),
                     fmt_ratio(res.ratio(r, "total_s")), note.strip("; ")])
    return md_table(header, rows)


def digits_table(res, task):
    header = ["tool", "setting", "start-up", "read/load", "train", "save", "total wall",
              "train acc", "peak MB", "wall vs descent", "notes"]
    rows = []
    for r in res.of(task):
        if r.get("status") != "ok":
            rows.append(na_row(r, len(header)))
            continue
        if r["tool"] == "descent":
            cells = [fmt_s(num(r, "import_s")), fmt_s(num(r, "load_s")) + " (eval)",
                     fmt_s(num(r, "train_s")) + " (whole train command)", "in train"]
        else:
            cells = [fmt_s(num(r, "import_s")) + " (import)", fmt_s(num(r, "load_s")),
                     fmt_s(num(r, "train_s")), fmt_s(num(r, "save_s"))]
        rows.append([r["tool"], r["setting"]] + cells +
                    [fmt_s(num(r, "wall_s")), fmt_acc(num(r, "acc")), fmt_mb(num(r, "peak_mb")),
                     fmt_ratio(res.ratio(r, "wall_s")), r.get("note", "")])
    return md_table(header, rows)


def hardware_table(res):
    rows = []
    for r in res.of("hw"):
        if r.get("status") != "ok":
            rows.append([r.get("tool"), r.get("setting"), r.get("threads", ""),
                         "n/a (%s)" % r.get("reason"), "", ""])
        elif r["tool"] == "hardware":
            what = "memory (at the end)" if "end" in (r.get("setting") or "") else "memory"
            rows.append([what, "sum of %s MB of floats" % r.get("mb"), r.get("threads"),
                         "%s per pass" % fmt_s(num(r, "pass_s")), "%.2f GB/s" % num(r, "gbs"),
                         "memcpy %.2f GB/s (read + write)" % num(r, "copy_gbs")])
        else:
            d, b = num(r, "gflops"), num(r, "blas_gflops")
            rows.append(["784-256-10 pass", r.get("setting"), r.get("threads"),
                         "descent %.2f GFLOP/s" % d if d else "descent n/a",
                         "cblas_sgemm %.2f GFLOP/s" % b if b else
                         "cblas_sgemm n/a (%s)" % r.get("blas_reason", "OpenBLAS not installed"),
                         "descent / OpenBLAS %.0f %%" % (100 * d / b) if d and b else ""])
    return md_table(["what", "shape", "threads", "time / speed", "rate", "notes"], rows)


def targets(res):
    """The issue's targets, as far as the results allow."""
    out = []
    t = res.threads

    def check(name, value, goal, better="high", unit="x", missing="a run is missing"):
        if value is None:
            out.append("- %s: n/a (%s)" % (name, missing))
            return
        ok = value >= goal if better == "high" else value <= goal
        shown = "%.2f%s" % (value, unit) if unit else "%.2f" % value
        out.append("- %s: %s (target %s %s%s) %s" % (
            name, shown, ">=" if better == "high" else "<=", goal, unit,
            "met" if ok else "MISSED"))

    b32 = res.descent("t1", "batch 32")
    passes = [num(r, "pass_s") for r in res.of("hw") if r.get("tool") == "hardware" and
              r.get("status") == "ok" and num(r, "pass_s")]
    if b32 and passes:  # the fastest pass, whatever its thread count
        check("t1 epoch at batch 32 / one memory pass", num(b32, "epoch_s") / min(passes), 3,
              "low")
    for r in res.of("t1"):
        if r.get("tool") == "descent" or r.get("status") != "ok":
            continue
        goal = 10 if r["tool"] == "sklearn" else (100 if r["setting"] == "batch 32" else 5)
        check("t1 %s %s time / descent" % (r["tool"], r["setting"]), res.ratio(r, "epoch_s"),
              goal)
        ref = res.descent("t1", r.get("ref"))
        if ref and num(r, "acc") is not None and num(ref, "acc") is not None:
            check("t1 descent's accuracy - %s %s's (points)" % (r["tool"], r["setting"]),
                  100 * (num(ref, "acc") - num(r, "acc")), -0.5, "high", " pt")
    for r in res.of("t2"):
        if r.get("tool") == "liblinear" and r.get("status") == "ok":
            check("t2 LIBLINEAR %s end to end / descent" % r["setting"],
                  res.ratio(r, "total_s"), 10)
    d2 = res.descent("t2", "read + batch 32 x5")
    if d2 and num(d2, "read_mbs"):
        # The issue asks for 300 MB/s per core: the reader's speed over the threads it had.
        threads = max(1, int(num(d2, "threads") or 1))
        check("t2 descent read speed per core (MB/s, %d threads)" % threads,
              num(d2, "read_mbs") / threads, 300, "high", " MB/s")
    for batch, goal in ((32, 2), (256, 1.2)):
        d = res.descent("t4-fmnist", "batch %d" % batch)
        p = next((r for r in res.of("t4-fmnist") if r.get("tool") == "torch" and
                  r.get("setting") == "batch %d" % batch and r.get("status") == "ok"), None)
        if d and p:
            check("t4 descent samples/s / PyTorch's, batch %d" % batch,
                  num(d, "samples_s") / num(p, "samples_s"), goal)
    gemm = [r for r in res.of("hw") if r.get("tool") == "gemm" and threads_of(r) == t]
    for r in gemm:
        d, b = num(r, "gflops"), num(r, "blas_gflops")
        check("t4 descent pass / cblas_sgemm, %s" % r.get("setting"),
              d / b if d and b else None, 0.6,
              missing=r.get("blas_reason", "no cblas_sgemm result"))
    for task, setting in (("t1", "batch 32"), ("t1", "batch 1024"), ("t4-fmnist", "batch 32"),
                          ("t4-fmnist", "batch 256")):
        if t and t > 1:
            many, one = res.descent(task, setting), res.descent(task, setting, 1)
            check("%s %s: %d threads vs 1 (speed-up)" % (task, setting, t),
                  num(one, "epoch_s") / num(many, "epoch_s") if many and one else None, 1.7)
    for r in res.all:
        if (r.get("tool") == "descent" and r.get("status") == "ok" and num(r, "data_mb") and
                threads_of(r) == t):
            budget = num(r, "data_mb") + (num(r, "state_mb") or 0)
            check("%s %s peak memory / (data + model + optimizer)" % (r["task"], r["setting"]),
                  num(r, "peak_mb") / budget, 1.2, "low")
    return "\n".join(out)


def render(report):
    res = Results(report)
    m = res.machine
    parts = ["# descent benchmark%s" % (" (quick mode: about 10x smaller)" if m.get("quick")
                                        else ""), ""]
    parts.append("Machine: %s, %s cores, %s GiB; %s threads for descent, PyTorch and the BLAS; "
                 "libblas.so.3 is %s; OpenBLAS (pkg-config): %s. Load average %.2f at the "
                 "start, %s at the end. Started %s, took %s." % (
                     m.get("cpu", "?"), m.get("cores", "?"), m.get("mem_gib", "?"),
                     m.get("threads", "?"), m.get("libblas", "?"), m.get("openblas", "?"),
                     m.get("loadavg_start", 0.0),
                     "%.2f" % m["loadavg_end"] if "loadavg_end" in m else "?",
                     m.get("started", "?"), fmt_s(m.get("total_s"))))
    if m.get("repeat", 1) > 1:
        parts.append("")
        parts.append("Each row ran %d times and shows its run of median time (per epoch, or "
                     "end to end for tasks 2 and 5; every run's time is in results.json); "
                     "a row whose first run took over %.0f s ran once. The hardware "
                     "references are the best of 7 passes." % (
                         m["repeat"], m.get("long_run_s", 20.0)))
    parts.append("")
    for task, title in TITLES.items():
        if not res.of(task):
            continue
        parts += ["## " + title, ""]
        if task == "hw":
            parts.append(hardware_table(res))
        elif task == "t2":
            parts.append(libsvm_table(res, task))
        elif task == "t5":
            parts.append(digits_table(res, task))
        else:
            parts.append(training_table(res, task))
        parts.append("")
    parts += ["## Targets (issue 4)", "", targets(res), ""]
    return "\n".join(parts)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "out", "full", "results.json")
    with open(path) as f:
        print(render(json.load(f)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
