#!/usr/bin/python3
"""Generate the benchmark's data sets with a fixed seed, as NumPy .npy files.

Usage: /usr/bin/python3 bench/gen_data.py OUT_DIR [--quick] [--seed N]

Every array is written as a plain .npy file (little-endian, C order) so that descent's
driver, scikit-learn and PyTorch all read the very same bytes:

  dense_{train,test}_{x,y}.npy   task 1 and 2: logistic data, 100 features, values rounded
                                 to 4 decimals so that the LIBSVM text says exactly the same
  sparse_{train,test}_{indptr,indices,data,y}.npy
                                 task 3: CSR rows (indptr int64, indices uint32, data float32)
  fmnist_{train,test}_{x,y}.npy  task 4: Fashion-MNIST from Debian's dataset-fashion-mnist,
                                 pixels scaled to [0, 1] (skipped when the package is absent)
  synth_{train,test}_{x,y}.npy   task 4: 784 features, 10 classes from a random teacher MLP

A file meta.json records the sizes and the seed; when it matches the request the data is
not generated again.
"""

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def sizes(quick):
    """Rows and columns of each data set; quick mode is about ten times smaller."""
    scale = 10 if quick else 1
    return {
        "dense_rows": 1_000_000 // scale,
        "dense_test_rows": 100_000 // scale,
        "dense_features": 100,
        "sparse_rows": 200_000 // scale,
        "sparse_test_rows": 20_000 // scale,
        "sparse_features": 1_000_000 // scale,
        "sparse_nnz_per_row": 50,
        "synth_rows": 100_000 // scale,
        "synth_test_rows": 10_000 // scale,
        "synth_features": 784,
        "synth_classes": 10,
        "fmnist_rows": 60_000 // scale,
        "fmnist_test_rows": 10_000,
    }


def save(out_dir, name, array):
    np.save(os.path.join(out_dir, name + ".npy"), np.ascontiguousarray(array))


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make_dense(out_dir, rng, s):
    """Task 1: x ~ N(0, 1) rounded to 4 decimals; y ~ Bernoulli(sigmoid(x.w + b))."""
    d = s["dense_features"]
    w = rng.standard_normal(d) * (2.5 / np.sqrt(d))
    b = 0.3
    for part, n in (("train", s["dense_rows"]), ("test", s["dense_test_rows"])):
        x = np.empty((n, d), dtype=np.float32)
        for first in range(0, n, 100_000):
            last = min(n, first + 100_000)
            block = rng.standard_normal((last - first, d))
            x[first:last] = np.round(block, 4)
        p = sigmoid(x.astype(np.float64) @ w + b)
        y = (rng.random(n) < p).astype(np.int32)
        save(out_dir, "dense_%s_x" % part, x)
        save(out_dir, "dense_%s_y" % part, y)


def make_sparse(out_dir, rng, s):
    """
    Task 3: about nnz_per_row distinct columns per row, drawn with a skew towards low column
    numbers (column = floor(D * u^2)) as in text data, values uniform on [0.5, 1.5]. The
    label is Bernoulli(sigmoid(x.w)) where w ~ N(0, 1) on the most frequent 2 % of the
    columns and N(0, 0.1) elsewhere, scaled for a margin of about 3: enough rows see each
    informative column for a linear model to learn it.
    """
    d = s["sparse_features"]
    k = s["sparse_nnz_per_row"]
    w = rng.standard_normal(d)
    w[d // 50:] *= 0.1
    scale = None
    for part, n in (("train", s["sparse_rows"]), ("test", s["sparse_test_rows"])):
        u = rng.random((n, k))
        cols = np.minimum((d * u * u).astype(np.int64), d - 1)
        cols.sort(axis=1)
        keep = np.ones_like(cols, dtype=bool)
        keep[:, 1:] = cols[:, 1:] != cols[:, :-1]
        counts = keep.sum(axis=1)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        indices = cols[keep].astype(np.uint32)
        vals = (rng.random(indices.shape[0]) + 0.5).astype(np.float32)
        row_of = np.repeat(np.arange(n), counts)
        margin = np.bincount(row_of, weights=vals.astype(np.float64) * w[indices], minlength=n)
        if scale is None:
            scale = 3.0 / max(1e-12, margin.std())
        y = (rng.random(n) < sigmoid(scale * margin)).astype(np.int32)
        save(out_dir, "sparse_%s_indptr" % part, indptr)
        save(out_dir, "sparse_%s_indices" % part, indices)
        save(out_dir, "sparse_%s_data" % part, vals)
        save(out_dir, "sparse_%s_y" % part, y)


def read_idx(path):
    """An IDX file (gzipped or not) as a NumPy array of its stored type (unsigned bytes)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError("%s: not an IDX file of unsigned bytes" % path)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return data.reshape(dims)


def make_fmnist(out_dir, s):
    """Task 4: Fashion-MNIST as float32 pixels in [0, 1] and int32 labels."""
    parts = (("train", "train", s["fmnist_rows"]), ("test", "t10k", s["fmnist_test_rows"]))
    for part, stem, n in parts:
        images = read_idx(os.path.join(FMNIST_DIR, stem + "-images-idx3-ubyte.gz"))
        labels = read_idx(os.path.join(FMNIST_DIR, stem + "-labels-idx1-ubyte.gz"))
        x = images.reshape(images.shape[0], -1)[:n].astype(np.float32) / np.float32(255.0)
        save(out_dir, "fmnist_%s_x" % part, x)
        save(out_dir, "fmnist_%s_y" % part, labels[:n].astype(np.int32))


def make_synth(out_dir, rng, s):
    """Task 4: x ~ N(0, 1) in 784 dimensions; the class is the arg-max of a random MLP."""
    d, k = s["synth_features"], s["synth_classes"]
    w1 = rng.standard_normal((d, 64)) / np.sqrt(d)
    w2 = rng.standard_normal((64, k)) / np.sqrt(64)
    offset = None
    for part, n in (("train", s["synth_rows"]), ("test", s["synth_test_rows"])):
        x = rng.standard_normal((n, d), dtype=np.float32)
        scores = np.maximum(x @ w1.astype(np.float32), 0) @ w2.astype(np.float32)
        scores += 0.05 * rng.standard_normal(scores.shape).astype(np.float32)
        if offset is None:
            offset = scores.mean(axis=0)  # centred scores keep the classes near balance
        scores -= offset
        save(out_dir, "synth_%s_x" % part, x)
        save(out_dir, "synth_%s_y" % part, scores.argmax(axis=1).astype(np.int32))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seed", type=int, default=20240601)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    meta = dict(sizes(args.quick), seed=args.seed, version=3)
    meta_path = os.path.join(args.out_dir, "meta.json")
    if os.path.exists(meta_path):
        with open(meta_path) as f:
            if json.load(f) == meta:
                print("gen_data: %s is up to date" % args.out_dir, file=sys.stderr)
                return 0
        os.remove(meta_path)

    start = time.monotonic()
    rng = np.random.default_rng(args.seed)
    make_dense(args.out_dir, rng, meta)
    make_sparse(args.out_dir, rng, meta)
    make_synth(args.out_dir, rng, meta)
    if os.path.isdir(FMNIST_DIR):
        make_fmnist(args.out_dir, meta)
    else:
        print("gen_data: %s not found (install dataset-fashion-mnist); Fashion-MNIST "
              "runs will say n/a" % FMNIST_DIR, file=sys.stderr)
    with open(meta_path, "w") as f:
        json.dump(meta, f, indent=1)
    print("gen_data: wrote %s in %.1f s" % (args.out_dir, time.monotonic() - start),
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
