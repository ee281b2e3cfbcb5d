#!/usr/bin/python3
"""Regenerate the bundled example data sets under data/ as CSV files.

Usage (from the repository root):

    /usr/bin/python3 tools/make-data.py

The values come from the copies of five small public data sets that ship inside
scikit-learn (Debian package python3-sklearn); nothing is fetched from the network.
Each output file has one header line, the feature columns, and the target as the
last column:

    data/digits.csv         1797 x 64 pixels (pixel_r_c) + digit (0-9)
    data/breast_cancer.csv   569 x 30 measurements + diagnosis (malignant/benign)
    data/iris.csv            150 x 4 measurements + species (setosa/...)
    data/wine.csv            178 x 13 measurements + cultivar (class_0/...)
    data/diabetes.csv        442 x 10 unscaled baseline values + progression

Column names are scikit-learn's feature names with every run of characters other
than letters, digits and '_' turned into one '_' (so "mean radius" becomes
mean_radius and "sepal length (cm)" becomes sepal_length_cm).

Numbers are written with Python's repr of the float (the shortest text that reads
back to the same double), and integral values without a trailing ".0"; binary
noise in the source (4.803999999999999 for 4.804) is removed, see number_text.
Rows keep scikit-learn's order, so the output is the same on every run.  A SHA-256
line is printed for each file written; see data/README.md for origins and licences.
"""

import csv
import hashlib
import math
import os
import re
import sys

from sklearn import datasets

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(REPO_ROOT, "data")


def column_name(name):
    """Turn a scikit-learn feature name into a plain identifier-like header."""
    return re.sub(r"[^A-Za-z0-9_]+", "_", str(name)).strip("_")


def number_text(value):
    """Shortest round-trip text for a float; integral values lose the '.0'.

    A value within one part in 1e12 of a decimal of at most 12 significant
    digits is written as that decimal.  This only removes binary noise already
    present in scikit-learn's diabetes_data_raw.csv.gz (e.g. 4.803999999999999
    for the s5 value 4.804; every other s5 value has at most 4 decimals); no
    measured value in these sets carries 12 or more significant digits.
    """
    value = float(value)
    if not math.isfinite(value):
        sys.exit("make-data: non-finite value %r in source data" % value)

    short = float("%.12g" % value)
    if abs(short - value) <= 1e-12 * abs(value):
        value = short

    if value.is_integer() and abs(value) < 2.0**53:
        return str(int(value))
    return repr(value)


def write_csv(file_name, feature_names, features, target_name, target_texts):
    """Write one data set and return its path."""
    path = os.path.join(DATA_DIR, file_name)
    header = [column_name(name) for name in feature_names] + [target_name]
    if len(set(header)) != len(header):
        sys.exit("make-data: duplicate column names in %s" % file_name)

    with open(path, "w", newline="", encoding="ascii") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for row, target in zip(features, target_texts):
            writer.writerow([number_text(v) for v in row] + [target])
    return path


def class_labels(bunch):
    """Map integer class codes to the names in target_names."""
    return [str(bunch.target_names[code]) for code in bunch.target]


def main():
    os.makedirs(DATA_DIR, exist_ok=True)

    digits = datasets.load_digits()
    write_csv("digits.csv", digits.feature_names, digits.data,
              "digit", [str(int(code)) for code in digits.target])

    cancer = datasets.load_breast_cancer()
    write_csv("breast_cancer.csv", cancer.feature_names, cancer.data,
              "diagnosis", class_labels(cancer))

    iris = datasets.load_iris()
    write_csv("iris.csv", iris.feature_names, iris.data,
              "species", class_labels(iris))

    wine = datasets.load_wine()
    write_csv("wine.csv", wine.feature_names, wine.data,
              "cultivar", class_labels(wine))

    # scaled=False (scikit-learn >= 1.1) gives the original measurements rather
    # than the centred, unit-norm columns of the default.
    diabetes = datasets.load_diabetes(scaled=False)
    write_csv("diabetes.csv", diabetes.feature_names, diabetes.data,
              "progression", [number_text(v) for v in diabetes.target])

    for name in ("digits.csv", "breast_cancer.csv", "iris.csv", "wine.csv",
                 "diabetes.csv"):
        with open(os.path.join(DATA_DIR, name), "rb") as f:
            print("%s  data/%s" % (hashlib.sha256(f.read()).hexdigest(), name))


if __name__ == "__main__":
    main()
