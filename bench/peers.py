#!/usr/bin/python3
"""The benchmark's peers: scikit-learn and PyTorch on the same .npy data as descent.

Usage: /usr/bin/python3 bench/peers.py MODE --data DIR [options]

Modes:
  sgd-sklearn      SGDClassifier, log loss, constant rate eta0 = --lr, one sample per step
  linear-torch     torch.nn.Linear + BCEWithLogitsLoss + torch.optim.SGD, manual batches
  mlp-sklearn      MLPClassifier, Adam, --batch rows per step
  mlp-torch        784-256-10 ReLU MLP + CrossEntropyLoss + torch.optim.Adam, manual batches
  liblinear-loss   the mean training log loss of a LIBLINEAR model file (not timed)
  digits-sklearn   end to end on a CSV: import, read, standardise, train, save with pickle
  digits-torch     the same with PyTorch

Each run prints one line "BENCH key=value ..." like descent's driver, or "BENCH_NA reason=..."
with exit status 3 when the peer is missing or fails. Data is converted to what the peer
needs (float64 for scikit-learn's SGD) before the clock starts, so the times are training
only; the peak memory (ru_maxrss) includes those copies, as it would for a user.
"""

import argparse
import os
import pickle
import resource
import sys
import time
import warnings

import numpy as np


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def not_available(reason):
    print("BENCH_NA reason=%s" % str(reason).replace(" ", "_").replace("\n", "_")[:300])
    sys.stdout.flush()
    sys.exit(3)


def load(args, part):
    """(x, y) of DIR/SET_PART_*.npy: a dense float32 array or a scipy CSR matrix."""
    stem = os.path.join(args.data, "%s_%s_" % (args.set, part))
    y = np.load(stem + "y.npy")
    if args.set == "sparse":
        import scipy.sparse
        indptr = np.load(stem + "indptr.npy")
        x = scipy.sparse.csr_matrix(
            (np.load(stem + "data.npy"), np.load(stem + "indices.npy"), indptr),
            shape=(indptr.shape[0] - 1, args.sparse_features))
        return x, y
    return np.load(stem + "x.npy"), y


def emit(tool, args, rows, epochs, train_s, loss, acc, **extra):
    """One result line; epochs may be a fraction when --max-seconds cut the run short."""
    fields = dict(tool=tool, task=args.task, setting=args.setting.replace(" ", "_"),
                  threads=args.threads, batch=args.batch, epochs="%.4g" % epochs, rows=rows,
                  epoch_s="%.6g" % (train_s / epochs),
                  samples_s="%.6g" % (rows * epochs / train_s), loss="%.6f" % loss,
                  acc="%.6f" % acc, peak_mb="%.1f" % peak_mb(), train_s="%.6g" % train_s)
    fields.update(extra)
    print("BENCH " + " ".join("%s=%s" % kv for kv in fields.items()))
    sys.stdout.flush()


def binary_log_loss(z, y):
    """Mean of log(1 + exp(-t z)) with t = +-1, computed stably."""
    t = np.where(y == 1, 1.0, -1.0)
    return float(np.mean(np.logaddexp(0.0, -t * z)))


# ---- scikit-learn ---------------------------------------------------------------------------

def sgd_sklearn(args):
    from sklearn.linear_model import SGDClassifier

    x, y = load(args, "train")
    xt, yt = load(args, "test")
    x = x.astype(np.float64)  # what SGDClassifier trains on; converted before the clock
    clf = SGDClassifier(loss="log_loss", penalty=None, learning_rate="constant", eta0=args.lr,
                        max_iter=args.epochs, tol=None, shuffle=True, random_state=args.seed)
    start = time.monotonic()
    clf.fit(x, y)
    train_s = time.monotonic() - start
    z = np.concatenate([clf.decision_function(x[i:i + 65536])
                        for i in range(0, x.shape[0], 65536)])
    emit("sklearn", args, x.shape[0], clf.n_iter_, train_s, binary_log_loss(z, y),
         clf.score(xt, yt), dtype="float64")


def mlp_sklearn(args):
    from sklearn.neural_network import MLPClassifier
    from sklearn.metrics import log_loss

    x, y = load(args, "train")
    xt, yt = load(args, "test")
    clf = MLPClassifier(hidden_layer_sizes=(args.hidden,), activation="relu", solver="adam",
                        alpha=0.0, batch_size=args.batch, learning_rate_init=args.lr,
                        shuffle=True, random_state=args.seed)
    classes = np.unique(y)
    times = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(args.epochs):  # partial_fit: one pass over the data per call
            start = time.monotonic()
            clf.partial_fit(x, y, classes=classes)
            times.append(time.monotonic() - start)
            if args.max_seconds and sum(times) > args.max_seconds:
                break
    rows = min(args.loss_rows or x.shape[0], x.shape[0])
    proba = clf.predict_proba(x[:rows])
    emit("sklearn", args, x.shape[0], len(times), sum(times),
         log_loss(y[:rows], proba, labels=clf.classes_), clf.score(xt, yt),
         epoch_times=",".join("%.4f" % t for t in times))


# ---- PyTorch --------------------------------------------------------------------------------

def torch_setup(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return torch


def torch_batches(torch, n, batch, generator):
    perm = torch.randperm(n, generator=generator)
    for first in range(0, n, batch):
        yield perm[first:first + batch]


def torch_train(torch, args, n, step):
    """
    Run args.epochs epochs of step(idx) over shuffled batches. With --max-seconds, stop at the
    first batch that starts after that much training time; the result then counts the
    fraction of an epoch done. Returns (epochs done, seconds, per-epoch seconds).
    """
    gen = torch.Generator().manual_seed(args.seed)
    times, rows_done, spent = [], 0, 0.0
    for _ in range(args.epochs):
        start = time.monotonic()
        for idx in torch_batches(torch, n, args.batch, gen):
            if args.max_seconds and spent + time.monotonic() - start > args.max_seconds:
                break
            step(idx)
            rows_done += idx.shape[0]
        times.append(time.monotonic() - start)
        spent += times[-1]
        if args.max_seconds and spent > args.max_seconds:
            break
    return rows_done / n, spent, times


def linear_torch(args):
    torch = torch_setup(args)
    x, y = load(args, "train")
    xt, yt = load(args, "test")
    n, d = x.shape
    weight = torch.zeros((d, 1), requires_grad=True)  # zeros, as descent's linear models
    bias = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([weight, bias], lr=args.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    target = torch.from_numpy(y.astype(np.float32))

    if args.set == "sparse":
        def rows_of(idx):
            sub = x[idx.numpy()].tocoo()
            index = torch.from_numpy(np.vstack([sub.row, sub.col]).astype(np.int64))
            return torch.sparse_coo_tensor(index, torch.from_numpy(sub.data), sub.shape)

        def forward(xb):
            return torch.sparse.mm(xb, weight).squeeze(1) + bias
    else:
        xs = torch.from_numpy(x)

        def rows_of(idx):
            return xs[idx]

        def forward(xb):
            return (xb @ weight).squeeze(1) + bias

    def step(idx):
        opt.zero_grad(set_to_none=True)
        loss_fn(forward(rows_of(idx)), target[idx]).backward()
        opt.step()

    epochs, train_s, times = torch_train(torch, args, n, step)
    with torch.no_grad():
        z = np.concatenate([forward(rows_of(torch.arange(i, min(n, i + 65536)))).numpy()
                            for i in range(0, n, 65536)])
        zt = np.concatenate([
            (xt[i:i + 65536] @ weight.numpy()).ravel() + bias.numpy()
            for i in range(0, xt.shape[0], 65536)])
    acc = float(np.mean((zt > 0) == (yt == 1)))
    emit("torch", args, n, epochs, train_s, binary_log_loss(z, y), acc,
         epoch_times=",".join("%.4f" % t for t in times))


def mlp_torch(args):
    torch = torch_setup(args)
    x, y = load(args, "train")
    xt, yt = load(args, "test")
    n, d = x.shape
    k = int(y.max()) + 1
    model = torch.nn.Sequential(torch.nn.Linear(d, args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, k))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    xs, ys = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))

    def step(idx):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[idx]), ys[idx]).backward()
        opt.step()

    epochs, train_s, times = torch_train(torch, args, n, step)

    rows = min(args.loss_rows or n, n)
    with torch.no_grad():
        total = 0.0
        for i in range(0, rows, 8192):
            last = min(rows, i + 8192)
            total += float(loss_fn(model(xs[i:last]), ys[i:last])) * (last - i)
        pred = model(torch.from_numpy(xt)).argmax(dim=1).numpy()
    emit("torch", args, n, epochs, train_s, total / rows, float(np.mean(pred == yt)),
         epoch_times=",".join("%.4f" % t for t in times))


# ---- LIBLINEAR's model file -----------------------------------------------------------------

def liblinear_loss(args):
    """Mean log loss on the training rows of a two-class LIBLINEAR model (with -B 1)."""
    with open(args.model) as f:
        lines = f.read().split("\n")
    header, w_at = {}, lines.index("w")
    for line in lines[:w_at]:
        key, _, value = line.partition(" ")
        header[key] = value.split()
    w = np.array([float(v.split()[0]) for v in lines[w_at + 1:] if v.strip()])
    x, y = load(args, "train")
    bias = float(header["bias"][0])
    n_feature = int(header["nr_feature"][0])
    z = x[:, :n_feature] @ w[:n_feature].astype(np.float32)
    if bias >= 0:
        z = z + bias * w[n_feature]
    if header["label"][0] != "1":  # LIBLINEAR's w scores its first label
        z = -z
    print("BENCH tool=liblinear-loss loss=%.6f" % binary_log_loss(z.astype(np.float64), y))


# ---- The digits data end to end -------------------------------------------------------------

def read_digits(path):
    table = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float32)
    return table[:, :-1], table[:, -1].astype(np.int64)


def digits_sklearn(args):
    t0 = time.monotonic()
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    t1 = time.monotonic()
    x, y = read_digits(args.csv)
    t2 = time.monotonic()
    model = make_pipeline(StandardScaler(), MLPClassifier(
        hidden_layer_sizes=(args.hidden,), solver="adam", alpha=0.0, batch_size=args.batch,
        learning_rate_init=args.lr, max_iter=args.epochs, tol=0.0,
        n_iter_no_change=args.epochs + 1, random_state=args.seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x, y)
    t3 = time.monotonic()
    with open(args.out, "wb") as f:
        pickle.dump(model, f)
    t4 = time.monotonic()
    emit("sklearn", args, x.shape[0], args.epochs, t3 - t2, 0.0, model.score(x, y),
         import_s="%.4f" % (t1 - t0), load_s="%.4f" % (t2 - t1), save_s="%.4f" % (t4 - t3))


def digits_torch(args):
    t0 = time.monotonic()
    torch = torch_setup(args)
    t1 = time.monotonic()
    x, y = read_digits(args.csv)
    mean, std = x.mean(axis=0), x.std(axis=0)
    x = (x - mean) / np.where(std > 0, std, 1.0)
    t2 = time.monotonic()
    xs, ys = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], args.hidden), torch.nn.ReLU(),
                                torch.nn.Linear(args.hidden, 10))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    def step(idx):
        opt.zero_grad(set_to_none=True)
        loss_fn(model(xs[idx]), ys[idx]).backward()
        opt.step()

    torch_train(torch, args, x.shape[0], step)
    t3 = time.monotonic()
    torch.save({"model": model.state_dict(), "mean": mean, "std": std}, args.out)
    t4 = time.monotonic()
    with torch.no_grad():
        acc = float((model(xs).argmax(dim=1) == ys).float().mean())
    emit("torch", args, x.shape[0], args.epochs, t3 - t2, 0.0, acc,
         import_s="%.4f" % (t1 - t0), load_s="%.4f" % (t2 - t1), save_s="%.4f" % (t4 - t3))


MODES = {
    "sgd-sklearn": sgd_sklearn,
    "mlp-sklearn": mlp_sklearn,
    "linear-torch": linear_torch,
    "mlp-torch": mlp_torch,
    "liblinear-loss": liblinear_loss,
    "digits-sklearn": digits_sklearn,
    "digits-torch": digits_torch,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=sorted(MODES))
    ap.add_argument("--data", default="bench/out/data")
    ap.add_argument("--set", default="dense")
    ap.add_argument("--sparse-features", type=int, default=0)
    ap.add_argument("--task", default="task")
    ap.add_argument("--setting", default="default")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--loss-rows", type=int, default=0,
                    help="MLPs: the final loss over the first N training rows (0: all)")
    ap.add_argument("--max-seconds", type=float, default=0.0,
                    help="PyTorch and MLPClassifier: stop after about this much training")
    ap.add_argument("--model", help="liblinear-loss: the model file")
    ap.add_argument("--csv", help="digits: the CSV file")
    ap.add_argument("--out", help="digits: where to save the model")
    args = ap.parse_args()
    try:
        MODES[args.mode](args)
    except ImportError as e:
        not_available("%s not installed (%s)" % (e.name, e))
    except Exception as e:  # a failing peer is reported, never fatal to the harness
        not_available("%s: %s" % (type(e).__name__, e))
    return 0


if __name__ == "__main__":
    sys.exit(main())
