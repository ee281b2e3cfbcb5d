#!/usr/bin/python3
"""Run the benchmark: make the data, train descent and its peers on it, print the tables.

Usage (from the repository root; `make bench` does this):

    /usr/bin/python3 bench/run.py --bench-bin build/bench/descent_bench --descent build/descent
                                  [--quick] [--threads N] [--only t1,t2,...] [--out DIR]

Every run is a fresh process with its own time limit, so that its peak memory is its own
and a peer that is missing, crashes or runs too long gives an "n/a (reason)" row instead of
stopping the benchmark. Results go to OUT/results.json and the tables to OUT/tables.md
(OUT is bench/out, or bench/out/quick with --quick); bench/table.py prints them again.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import table  # noqa: E402  (bench/table.py)

PYTHON = "/usr/bin/python3"


def parse_bench_lines(text):
    """The key=value fields of every 'BENCH ...' line, and the reason of a 'BENCH_NA' line."""
    lines, reason = [], None
    for line in text.splitlines():
        if line.startswith("BENCH "):
            lines.append(dict(f.split("=", 1) for f in line.split()[1:] if "=" in f))
        elif line.startswith("BENCH_NA"):
            fields = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
            reason = fields.get("reason", "not available").replace("_", " ")
    return lines, reason


def last_line(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class Runner:
    """Runs commands one at a time with a time limit, measuring wall time and peak memory."""

    def __init__(self, threads, log):
        self.threads = threads
        self.log = log

    def execute(self, cmd, timeout, threads=None, cwd=ROOT):
        """(status, stdout, stderr, wall seconds, peak MB from wait4) of one command."""
        env = dict(os.environ)
        n = str(threads or self.threads)
        env.update(OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
                   PYTHONWARNINGS="ignore")
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.monotonic()
            try:
                proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as e:
                return None, "", str(e), 0.0, 0.0
            timed_out = False
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() - start > timeout:
                    os.killpg(proc.pid, 9)
                    timed_out = True
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                time.sleep(0.02)
            wall = time.monotonic() - start
            proc.returncode = os.waitstatus_to_exitcode(status)
            out.seek(0)
            err.seek(0)
            stdout = out.read().decode(errors="replace")
            stderr = err.read().decode(errors="replace")
        code = "timeout" if timed_out else proc.returncode
        return code, stdout, stderr, wall, usage.ru_maxrss / 1024.0

    def run(self, spec):
        """Run one planned row; returns its result record (status 'ok' or 'na')."""
        rec = {k: v for k, v in spec.items() if k != "cmd"}
        rec.setdefault("threads", self.threads)
        code, stdout, stderr, wall, peak = self.execute(spec["cmd"], spec["timeout"],
                                                        rec["threads"])
        lines, reason = parse_bench_lines(stdout)
        rec["wall_s"] = wall
        own = [line for line in lines if line.get("tool") == "descent"]
        if code == 0 and own and spec.get("kind") == "gemm":
            # OpenBLAS's line or its BENCH_NA reason, and descent's line.
            rec.update({k: v for k, v in own[0].items()
                        if k not in ("tool", "task", "setting")}, status="ok")
            blas = [line for line in lines if line.get("tool") == "openblas"]
            if blas:
                rec["blas_gflops"] = blas[0].get("gflops")
            else:
                rec["blas_reason"] = reason or "no OpenBLAS result"
        elif code == 0 and lines:
            # The plan names the row; the line gives the numbers.
            rec.update({k: v for k, v in lines[-1].items()
                        if k not in ("tool", "task", "setting")})
            rec["status"] = "ok"
            rec.setdefault("peak_mb", "%.1f" % peak)
        else:
            rec["status"] = "na"
            if code == "timeout":
                rec["reason"] = "timed out after %d s" % spec["timeout"]
            elif code is None:
                rec["reason"] = "could not start: %s" % last_line(stderr)
            else:
                rec["reason"] = reason or "exit %s: %s" % (code, last_line(stderr) or
                                                           last_line(stdout))
        self.report(rec)
        return rec

    def report(self, rec):
        what = "%s %s %s (%s threads)" % (rec["task"], rec["tool"], rec.get("setting", ""),
                                          rec.get("threads", ""))
        if rec["status"] == "ok":
            detail = "%.1f s" % rec["wall_s"]
        else:
            detail = "n/a: " + rec["reason"]
        print("bench: %-60s %s" % (what, detail), file=self.log, flush=True)


# ---- The plan -------------------------------------------------------------------------------

def plan(cfg, meta):
    """Every row of every table, in the order they run."""
    t = cfg.threads
    data = cfg.data
    bench = cfg.bench_bin
    peers = [PYTHON, os.path.join(HERE, "peers.py")]
    long_s = 600 if not cfg.quick else 120      # a descent run's time limit
    peer_s = 30 if not cfg.quick else 8         # training budget of a slow peer
    loss_rows = ["--loss-rows", "10000"]        # MLPs: final loss over the first rows
    rows = []

    def descent(task, setting, args, threads=t, ref=None, note=""):
        rows.append(dict(task=task, tool="descent", setting=setting, threads=threads,
                         ref=ref or setting, note=note, timeout=long_s,
                         cmd=[bench, "train", "--data", data, "--task", task, "--setting",
                              setting, "--threads", str(threads)] + args))

    def peer(task, tool, setting, mode, args, ref, note="", threads=t, timeout=None):
        rows.append(dict(task=task, tool=tool, setting=setting, threads=threads, ref=ref,
                         note=note, timeout=timeout or long_s,
                         cmd=peers + [mode, "--data", data, "--task", task, "--setting",
                                      setting, "--threads", str(threads)] + args))

    # Hardware references.
    dense_mb = meta["dense_rows"] * meta["dense_features"] * 4 / 1e6
    for threads in sorted({1, t}):
        rows.append(dict(task="hw", tool="hardware", setting="memory pass", threads=threads,
                         ref=None, note="", timeout=120,
                         cmd=[bench, "membw", "--mb", str(dense_mb), "--threads",
                              str(threads)]))
    for batch in (32, 256):
        for threads in sorted({1, t}):
            rows.append(dict(task="hw", tool="gemm", setting="batch %d" % batch,
                             threads=threads, ref=None, note="", timeout=120, kind="gemm",
                             cmd=[bench, "gemm", "--batch", str(batch), "--threads",
                                  str(threads)]))

    # Task 1: logistic regression on dense data.
    dense = ["--set", "dense", "--model", "logistic", "--opt", "sgd"]
    e1 = "5"
    for batch, lr in ((32, "0.01"), (1024, "0.1")):
        setting = "batch %d" % batch
        for threads in sorted({t, 1}, reverse=True):
            descent("t1", setting, dense + ["--batch", str(batch), "--lr", lr, "--epochs", e1],
                    threads=threads, note="SGD lr %s" % lr)
    for eta0 in ("0.01", "0.0003125"):
        peer("t1", "sklearn", "per-sample, eta0 %s" % eta0, "sgd-sklearn",
             ["--set", "dense", "--lr", eta0, "--epochs", e1], ref="batch 32", threads=1,
             note="SGDClassifier is single-threaded; float64" +
                  (", eta0 = 0.01 / 32" if eta0 != "0.01" else ""))
    peer("t1", "torch", "batch 32", "linear-torch",
         ["--set", "dense", "--batch", "32", "--lr", "0.01", "--epochs", "1", "--max-seconds",
          str(peer_s)], ref="batch 32", note="cut at %d s, per-epoch time extrapolated" % peer_s)
    peer("t1", "torch", "batch 1024", "linear-torch",
         ["--set", "dense", "--batch", "1024", "--lr", "0.1", "--epochs", e1, "--max-seconds",
          str(2 * peer_s)], ref="batch 1024")

    # Task 2: the same data as LIBSVM text, read and trained end to end.
    svm = os.path.join(data, "dense_train.svm")
    rows.append(dict(task="t2", tool="descent", setting="read + batch 32 x5", threads=t,
                     ref="read + batch 32 x5", note="SGD lr 0.01, 5 epochs",
                     timeout=long_s,
                     cmd=[bench, "libsvm", "--svm", svm, "--data", data, "--set", "dense",
                          "--task", "t2", "--setting", "read + batch 32 x5", "--threads",
                          str(t), "--batch", "32", "--lr", "0.01", "--epochs", e1]))
    for solver in ("0", "2"):
        rows.append(dict(task="t2", tool="liblinear", setting="-s %s" % solver, threads=1,
                         ref="read + batch 32 x5", timeout=long_s, kind="liblinear",
                         solver=solver, note="train -s %s -B 1, C = 1, default eps" % solver))

    # Task 3: sparse logistic regression.
    sparse = ["--set", "sparse", "--sparse-features", str(meta["sparse_features"])]
    e3 = "3"
    descent("t3", "batch 32", sparse + ["--model", "logistic", "--opt", "sgd", "--batch", "32",
                                        "--lr", "1.0", "--epochs", e3], note="SGD lr 1.0")
    peer("t3", "sklearn", "per-sample, eta0 0.03125", "sgd-sklearn",
         sparse + ["--lr", "0.03125", "--epochs", e3], ref="batch 32", threads=1,
         note="eta0 = 1.0 / 32; scipy CSR, float64")
    peer("t3", "torch", "batch 32 (sparse COO)", "linear-torch",
         sparse + ["--batch", "32", "--lr", "1.0", "--epochs", e3, "--max-seconds",
                   str(peer_s)], ref="batch 32",
         note="scipy row slicing + torch.sparse.mm, dense gradient of 1M weights")

    # Task 4: MLP 784-256-10 with Adam.
    mlp = ["--model", "mlp", "--opt", "adam", "--lr", "0.001", "--hidden", "256"]
    for name, epochs, one_thread in (("fmnist", "2", True), ("synth", "1", False)):
        task = "t4-" + name
        if name == "fmnist" and not meta.get("have_fmnist", True):
            rows.append(dict(task=task, tool="descent", setting="-", threads=t, ref=None,
                             note="", timeout=1, kind="missing",
                             reason="dataset-fashion-mnist is not installed"))
            continue
        for batch in (32, 256):
            setting = "batch %d" % batch
            for threads in (sorted({t, 1}, reverse=True) if one_thread else [t]):
                descent(task, setting, ["--set", name, "--batch", str(batch),
                                        "--epochs", epochs] + mlp + loss_rows,
                        threads=threads)
            peer(task, "torch", setting, "mlp-torch",
                 ["--set", name, "--batch", str(batch), "--lr", "0.001", "--epochs", epochs,
                  "--max-seconds", str(peer_s)] + loss_rows, ref=setting)
        peer(task, "sklearn", "batch 256", "mlp-sklearn",
             ["--set", name, "--batch", "256", "--lr", "0.001", "--epochs", epochs,
              "--max-seconds", str(peer_s)] + loss_rows, ref="batch 256",
             note="MLPClassifier, partial_fit once per epoch")

    # Task 5: the bundled digits MLP end to end.
    rows.append(dict(task="t5", tool="descent", setting="descent train + eval", threads=t,
                     ref="descent train + eval", kind="digits", timeout=300,
                     note="start-up = descent --version; load = descent eval"))
    digits = ["--csv", os.path.join(ROOT, "data", "digits.csv"), "--hidden", "64", "--batch",
              "32", "--lr", "0.001", "--epochs", "100"]
    for tool in ("sklearn", "torch"):
        peer("t5", tool, "python3 script", "digits-" + tool,
             digits + ["--out", os.path.join(cfg.out, "digits.%s" % tool)],
             ref="descent train + eval", timeout=300,
             note="import, np.loadtxt, standardise, fit, save")

    return [r for r in rows if not cfg.only or r["task"].split("-")[0] in cfg.only or
            r["task"] == "hw"]


# ---- Runs that need more than one command ---------------------------------------------------

def run_liblinear(runner, spec, cfg):
    rec = {k: v for k, v in spec.items() if k != "cmd"}
    train_bin = shutil.which("liblinear-train") or shutil.which("train")
    predict_bin = shutil.which("liblinear-predict") or shutil.which("predict")
    if not train_bin:
        rec.update(status="na", reason="LIBLINEAR not installed (apt-get install liblinear-tools)")
        runner.report(rec)
        return rec

    svm = os.path.join(cfg.data, "dense_train.svm")
    model = os.path.join(cfg.out, "liblinear-s%s.model" % spec["solver"])
    code, out, err, wall, peak = runner.execute(
        [train_bin, "-s", spec["solver"], "-B", "1", "-q", svm, model], spec["timeout"], 1)
    if code != 0:
        rec.update(status="na", reason="liblinear-train: %s %s" % (code, last_line(err)))
        runner.report(rec)
        return rec
    rec.update(status="ok", total_s=wall, wall_s=wall, peak_mb="%.1f" % peak,
               epochs="-", rows=cfg.meta["dense_rows"])
    rec["samples_s"] = cfg.meta["dense_rows"] / wall

    if predict_bin:
        test_svm = os.path.join(cfg.data, "dense_test.svm")
        code, out, err, _, _ = runner.execute(
            [predict_bin, "-q", test_svm, model, os.path.join(cfg.out, "liblinear.pred")],
            spec["timeout"], 1)
        with open(os.path.join(cfg.out, "liblinear.pred")) as f:
            pred = [line.strip() for line in f if line.strip()]
        import numpy as np
        truth = np.load(os.path.join(cfg.data, "dense_test_y.npy"))
        if len(pred) == truth.shape[0]:
            rec["acc"] = float(np.mean(np.array(pred).astype(float) == truth))
    if spec["solver"] == "0":
        code, out, err, _, _ = runner.execute(
            [PYTHON, os.path.join(HERE, "peers.py"), "liblinear-loss", "--data", cfg.data,
             "--set", "dense", "--model", model], 300, 1)
        lines, _ = parse_bench_lines(out)
        if lines:
            rec["loss"] = lines[-1]["loss"]
    runner.report(rec)
    return rec


def run_digits(runner, spec, cfg):
    """descent's own command on data/digits.csv: start-up, train + save, load + evaluate."""
    rec = {k: v for k, v in spec.items() if k != "cmd"}
    exe = cfg.descent
    if not exe or not os.path.exists(exe):
        rec.update(status="na", reason="%s not built" % (exe or "descent"))
        runner.report(rec)
        return rec

    startup = min(runner.execute([exe, "--version"], 30)[3] for _ in range(5))
    model = os.path.join(cfg.out, "digits.model")
    code, out, err, train_wall, peak = runner.execute(
        [exe, "train", os.path.join(ROOT, "data", "digits.csv"), "-o", model, "--model", "mlp",
         "--hidden", "64", "--loss", "softmax", "--optimizer", "adam", "--lr", "0.001",
         "--batch", "32", "--epochs", "100", "--tol", "-1", "--seed", "1", "--threads",
         str(spec["threads"]), "--quiet"],
        spec["timeout"])
    if code != 0:
        rec.update(status="na", reason="descent train: exit %s: %s" % (code, last_line(err)))
        runner.report(rec)
        return rec
    code, out, err, eval_wall, _ = runner.execute(
        [exe, "eval", model, os.path.join(ROOT, "data", "digits.csv")], spec["timeout"])
    rec.update(status="ok", import_s=startup, train_s=train_wall, total_s=train_wall,
               peak_mb="%.1f" % peak, epochs=100, rows=1797, wall_s=train_wall)
    if code == 0:
        rec["load_s"] = eval_wall
        found = re.search(r"accuracy\D{0,20}?([0-9]*\.?[0-9]+)", out + err, re.I)
        if found:
            value = float(found.group(1))
            rec["acc"] = value / 100 if value > 1 else value
    else:
        rec["load_s"] = None
        rec["note"] = (rec.get("note", "") + "; eval failed: " + last_line(err)).strip("; ")
    runner.report(rec)
    return rec


# ---- Repeats --------------------------------------------------------------------------------

LONG_RUN_S = 20.0  # a row whose first run takes longer runs once


def time_of(rec):
    """The time that ranks a row's runs: the one its table compares."""
    key = {"t2": "total_s", "t5": "wall_s"}.get(rec.get("task"), "epoch_s")
    try:
        return float(rec[key])
    except (KeyError, TypeError, ValueError):
        return None


def keep_median(runs):
    """The run whose time is the median (the lower middle one for an even count), listing
    every run's time; the first run when none has a time."""
    timed = [r for r in runs if r["status"] == "ok" and time_of(r) is not None]
    if not timed:
        return runs[0]
    keep = sorted(timed, key=time_of)[(len(timed) - 1) // 2]
    keep["runs"] = len(runs)
    keep["run_times"] = [time_of(r) for r in timed]
    return keep


def run_repeated(run_once, repeat):
    """
    Run a row up to `repeat` times and keep the run whose time is the median, so that one
    slow or lucky run on a shared machine does not decide a ratio. A row whose first run
    fails or takes over LONG_RUN_S runs once: its time already spans many seconds.
    """
    runs = [run_once()]
    while (len(runs) < repeat and runs[0]["status"] == "ok" and
           runs[0].get("wall_s", 0.0) < LONG_RUN_S):
        runs.append(run_once())
    return keep_median(runs)


def run_alternating(run_a, run_b, repeat):
    """
    Two rows whose ratio is a target (the same work on two thread counts): their runs
    alternate, a, b, a, b, ..., so that both see the machine in the same state as it drifts,
    and each keeps its median run. Rows whose first runs fail or take over LONG_RUN_S run once.
    """
    runs_a, runs_b = [run_a()], [run_b()]
    while (len(runs_a) < repeat and
           all(r[0]["status"] == "ok" and r[0].get("wall_s", 0.0) < LONG_RUN_S
               for r in (runs_a, runs_b))):
        runs_a.append(run_a())
        runs_b.append(run_b())
    return keep_median(runs_a), keep_median(runs_b)


def thread_pair(spec, following):
    """Whether spec and the row after it are descent's same row on two thread counts."""
    return (following is not None and spec["tool"] == "descent" and
            following["tool"] == "descent" and spec["task"] == following["task"] and
            spec["setting"] == following["setting"] and
            spec["threads"] != following["threads"] and not spec.get("kind") and
            not following.get("kind"))


# ---- Main -----------------------------------------------------------------------------------

def blas_name(path):
    """What the system's libblas.so.3 is, in words (Debian's alternatives), not its path."""
    folder = os.path.basename(os.path.dirname(path))
    names = {"openblas-pthread": "OpenBLAS (pthread build)",
             "openblas-openmp": "OpenBLAS (OpenMP build)",
             "openblas-serial": "OpenBLAS (serial build)",
             "blis-pthread": "BLIS (pthread build)", "blis-openmp": "BLIS (OpenMP build)",
             "blis-serial": "BLIS (serial build)", "atlas": "ATLAS",
             "blas": "the reference BLAS"}
    return names.get(folder, "another BLAS (%s)" % os.path.basename(path))


def prepare_data(cfg, runner):
    """Generate the .npy files and their LIBSVM text (kept between runs when unchanged)."""
    cmd = [PYTHON, os.path.join(HERE, "gen_data.py"), cfg.data] + (["--quick"] if cfg.quick
                                                                   else [])
    code, out, err, wall, _ = runner.execute(cmd, 1800)
    if code != 0:
        sys.exit("bench: data generation failed: %s" % last_line(err))
    print("bench: data ready in %.1f s (%s)" % (wall, last_line(err)), file=runner.log)
    with open(os.path.join(cfg.data, "meta.json")) as f:
        meta = json.load(f)
    meta["have_fmnist"] = os.path.exists(os.path.join(cfg.data, "fmnist_train_x.npy"))

    meta_time = os.path.getmtime(os.path.join(cfg.data, "meta.json"))
    for part in ("train", "test"):
        svm = os.path.join(cfg.data, "dense_%s.svm" % part)
        if os.path.exists(svm) and os.path.getmtime(svm) >= meta_time:
            continue
        code, out, err, wall, _ = runner.execute(
            [cfg.bench_bin, "write-libsvm", "--data", cfg.data, "--set", "dense", "--part",
             part, "--out", svm], 1800)
        if code != 0:
            print("bench: writing %s failed: %s" % (svm, last_line(out + err)), file=runner.log)
        else:
            print("bench: wrote %s (%.0f MB) in %.1f s" % (svm, os.path.getsize(svm) / 1e6,
                                                           wall), file=runner.log)
    return meta


def machine_info():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cores"] = len(os.sched_getaffinity(0))
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    info["loadavg_start"] = os.getloadavg()[0]
    blas = "/etc/alternatives/libblas.so.3-x86_64-linux-gnu"
    info["libblas"] = blas_name(os.path.realpath(blas)) if os.path.exists(blas) else "unknown"
    code = subprocess.run(["pkg-config", "--modversion", "openblas"], capture_output=True,
                          text=True)
    info["openblas"] = code.stdout.strip() if code.returncode == 0 else "not installed"
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bench-bin", default=os.path.join(ROOT, "build", "bench",
                                                        "descent_bench"))
    ap.add_argument("--descent", default=os.path.join(ROOT, "build", "descent"))
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("BENCH_QUICK", "") not in ("", "0"))
    ap.add_argument("--threads", type=int,
                    default=int(os.environ.get("BENCH_THREADS", "0") or 0) or
                    len(os.sched_getaffinity(0)))
    ap.add_argument("--repeat", type=int,
                    default=int(os.environ.get("BENCH_REPEAT", "3") or 3),
                    help="runs of each row, the median kept (hardware references: 1)")
    ap.add_argument("--only", default="", help="comma-separated tasks, such as t1,t4")
    ap.add_argument("--out", default=None)
    cfg = ap.parse_args()
    cfg.only = [s.strip() for s in cfg.only.split(",") if s.strip()]
    cfg.out = os.path.abspath(cfg.out or os.path.join(HERE, "out", "quick" if cfg.quick
                                                       else "full"))
    cfg.data = os.path.join(os.path.dirname(cfg.out), "data-quick" if cfg.quick else "data")
    cfg.bench_bin = os.path.abspath(cfg.bench_bin)
    cfg.descent = os.path.abspath(cfg.descent) if cfg.descent else None
    os.makedirs(cfg.out, exist_ok=True)
    if not os.path.exists(cfg.bench_bin):
        sys.exit("bench: %s not built (run make bench)" % cfg.bench_bin)

    runner = Runner(cfg.threads, sys.stderr)
    info = machine_info()
    cfg.repeat = max(1, cfg.repeat)
    info.update(quick=cfg.quick, threads=cfg.threads, repeat=cfg.repeat, long_run_s=LONG_RUN_S,
                started=time.strftime("%Y-%m-%d %H:%M:%S"))
    if info["loadavg_start"] > 0.5:
        print("bench: warning: load average %.2f: other work is running, times will be "
              "noisy" % info["loadavg_start"], file=sys.stderr)
    start = time.monotonic()
    cfg.meta = prepare_data(cfg, runner)

    results = []
    rows = plan(cfg, cfg.meta)
    paired = False  # this row ran with the one before it
    for i, spec in enumerate(rows):
        kind = spec.get("kind")
        repeat = 1 if spec["task"] == "hw" else cfg.repeat
        following = rows[i + 1] if i + 1 < len(rows) else None
        if paired:
            paired = False
            continue
        if thread_pair(spec, following):
            paired = True
            results.extend(run_alternating(lambda: runner.run(spec),
                                           lambda: runner.run(following), repeat))
        elif kind == "liblinear":
            results.append(run_repeated(lambda: run_liblinear(runner, spec, cfg), repeat))
        elif kind == "digits":
            results.append(run_repeated(lambda: run_digits(runner, spec, cfg), repeat))
        elif kind == "missing":
            rec = dict(spec, status="na")
            runner.report(rec)
            results.append(rec)
        else:
            results.append(run_repeated(lambda: runner.run(spec), repeat))
        with open(os.path.join(cfg.out, "results.json"), "w") as f:
            json.dump({"machine": info, "results": results}, f, indent=1)

    # The memory pass again at the end: on a shared host one taken while other guests kept the
    # machine busy would flatter descent (the targets use the fastest pass of the run).
    for spec in [r for r in rows if r["task"] == "hw" and r["tool"] == "hardware"]:
        again = dict(spec, setting="memory pass, again at the end")
        results.append(run_repeated(lambda: runner.run(again), 1))

    info["loadavg_end"] = os.getloadavg()[0]
    info["total_s"] = time.monotonic() - start
    report = {"machine": info, "results": results}
    with open(os.path.join(cfg.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    text = table.render(report)
    with open(os.path.join(cfg.out, "tables.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
