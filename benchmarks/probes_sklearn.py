"""The hand-written probes against scikit-learn: wall time and accuracy on the same features.

Features: the labelled splits of a frozen evaluation (`python -m train.eval`: 2,048 training
and 1,024 held-out single-object physics clips; labels shape, direction, speed), encoded by
the `tiny_cpu` target encoder as initialised (never trained) and by the committed starter
bundle's, through the evaluation's own extraction and feature cache. Each row scores all three
labels, called as the project calls them:

* k-NN (train/eval/knn.py: cosine similarity, k 20, votes weighted exp(similarity / 0.07),
  on mean-pooled tokens) against `KNeighborsClassifier` with the same k, metric and weights;
  once with `metric="cosine"`, once on unit-normalised features with the euclidean metric
  (the same neighbours, ||a - b||^2 = 2 - 2 cos, through sklearn's compiled search).
* the linear probes (train/eval/probes.py: standardised mean-pooled or grid-pooled tokens,
  one linear layer, 1,000 AdamW steps of 128 clips, lr 1e-2 with warmup and cosine decay,
  decoupled weight decay 0.01; the three labels trained in lockstep) against `StandardScaler`
  and multinomial `LogisticRegression` (L-BFGS to convergence), which minimises the same
  cross-entropy. AdamW's decoupled decay is no loss term; its nominal translation into an L2
  term of the mean loss is C = 1 / (0.01 * clips); sklearn's default C = 1 is shown too.
* the online probe's ridge readout (train/eval/online.py: kernel ridge on one-hot targets,
  leave-one-out accuracy at the strength with the lowest leave-one-out squared error, on
  grid-pooled tokens) against `RidgeCV` with the same targets and alphas and exact
  leave-one-out (`cv=None`, `gcv_mode="eigen"`: the eigendecomposition of the Gram matrix, as
  ours), on features with a constant column in place of our kernel's constant, so that both
  solve the same problem. On the online probe's 256 clips (tiny_cpu's
  `monitor.online_probe_clips`) and on all 2,048 training clips.

Times: the median of `--repeats` runs, ours and sklearn's interleaved (the order alternating)
so that load from other processes falls on both alike, with `--threads` threads for torch and
for numpy/scipy's BLAS. Import costs: `import sklearn.neighbors` and `import
sklearn.linear_model` in fresh interpreters (files in the page cache), alone and after
`import torch` (as in the app and the notebooks). Writes the `probes-sklearn` section of
docs/performance.md.

    OMP_NUM_THREADS=1 python benchmarks/probes_sklearn.py [--repeats 5] [--no-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from decoder.bundle import STARTER_PATH, load_bundle
from decoder.provenance import git_commit
from train.config import Config, load_config
from train.doc_sections import replace_section
from train.eval.config import SYNTHETIC_LABELS, EvalConfig
from train.eval.evaluation import splits_features
from train.eval.knn import knn_predict
from train.eval.online import RIDGE_SCALES, ridge_loo_accuracy
from train.eval.probes import (
    LinearProbe,
    grid_pool,
    mean_pool,
    predict,
    train_probes,
)
from train.eval.protocol import majority_share
from train.models import VisionTransformer
from train.pretrained import initial_models

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "performance.md"
SECTION = "probes-sklearn"
PRESET = "tiny_cpu"
# A probe "is as fast" in sklearn when its median time is at most this multiple of ours.
AS_FAST = 1.1
# Largest accuracy difference (a fraction) that still counts as the same numbers: for k-NN and
# ridge, which solve the same problem (a clip or two flipped at near-ties), and for the linear
# probes, where LogisticRegression is another optimiser of the same loss.
SAME_TOLERANCE = 0.002
LINEAR_TOLERANCE = 0.02
MAX_ITER = 1000  # L-BFGS iterations per logistic regression
ENCODERS = ("untrained", "starter")
Labels = dict[str, torch.Tensor]
Split = tuple[torch.Tensor, torch.Tensor]  # (train, held-out) inputs


@dataclass
class Features:
    """Mean-pooled and grid-pooled clip features of both splits, and their labels."""

    pooled: tuple[torch.Tensor, torch.Tensor]  # float32 [N, D] train, val
    grid: tuple[torch.Tensor, torch.Tensor]  # float32 [N, cells * D] train, val
    labels: tuple[Labels, Labels]
    classes: dict[str, int]


@dataclass
class Row:
    """One method on all labels: its times over repeats, accuracy and predictions per label."""

    probe: str
    method: str
    seconds: list[float] = field(default_factory=list)
    accuracy: dict[str, float] = field(default_factory=dict)
    predicted: dict[str, np.ndarray] = field(default_factory=dict)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


Pair = tuple[Row, Row | None]  # a method and ours (None: the row is ours)


def encoder_of(name: str) -> tuple[Config, VisionTransformer, dict, str]:
    """(run config, target encoder, its identity for the feature cache, description)."""
    if name == "untrained":
        run_cfg = load_config(PRESET)
        encoder = initial_models(run_cfg, shared_target=True).target_encoder
        seed = run_cfg.seed
        return run_cfg, encoder, {"initialised_with_seed": seed}, f"`{PRESET}` as initialised"
    bundle = load_bundle(STARTER_PATH)
    stat = STARTER_PATH.stat()
    identity = {"bundle": STARTER_PATH.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    what = f"the starter bundle's ({bundle.pretrained.step} pretraining steps)"
    return bundle.config, bundle.pretrained.target_encoder, identity, what


def load_features(name: str, cache: Path | None) -> tuple[Features, dict]:
    """The frozen evaluation's features of encoder `name` (untrained or starter)."""
    run_cfg, encoder, weights, what = encoder_of(name)
    kind = "random_init" if name == "untrained" else "target_encoder"
    cfg = EvalConfig(encoder=kind, device="cpu")
    train, val, data = splits_features(run_cfg, encoder, cfg, weights, cache)
    names = list(SYNTHETIC_LABELS)
    grid = encoder.grid_size
    features = Features(
        pooled=(mean_pool(train.tokens), mean_pool(val.tokens)),
        grid=(grid_pool(train.tokens, grid), grid_pool(val.tokens, grid)),
        labels=({n: train.labels[n] for n in names}, {n: val.labels[n] for n in names}),
        classes={n: len(data["class_names"][n]) for n in names},
    )
    description = {
        "encoder": what,
        "precision": run_cfg.precision,
        "train_clips": len(train),
        "val_clips": len(val),
        "dim": features.pooled[0].shape[1],
        "grid_dim": features.grid[0].shape[1],
        "online_clips": run_cfg.monitor.online_probe_clips,
        "chance": {n: majority_share(val.labels[n]) for n in names},
    }
    return features, description


# --- k-NN ---------------------------------------------------------------------------------


def knn_ours(f: Features, k: int, temperature: float) -> dict[str, np.ndarray]:
    (x, q), (y, _) = f.pooled, f.labels
    return {n: knn_predict(x, y[n], q, f.classes[n], k, temperature).numpy() for n in f.classes}


def knn_sklearn(f: Features, k: int, temperature: float, metric: str) -> dict[str, np.ndarray]:
    from sklearn.neighbors import KNeighborsClassifier

    (x, q), (y, _) = f.pooled, f.labels
    x, q = x.numpy(), q.numpy()
    if metric == "cosine":
        votes = lambda distance: np.exp((1.0 - distance) / temperature)
    else:  # unit vectors: cosine similarity = 1 - d^2 / 2
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        q = q / np.linalg.norm(q, axis=1, keepdims=True)
        votes = lambda distance: np.exp((1.0 - 0.5 * distance**2) / temperature)
    predicted = {}
    for name in f.classes:
        knn = KNeighborsClassifier(k, weights=votes, algorithm="brute", metric=metric)
        predicted[name] = knn.fit(x, y[name].numpy()).predict(q)
    return predicted


# --- linear probe -------------------------------------------------------------------------


def linear_ours(f: Features, inputs: Split, seed: int) -> dict[str, np.ndarray]:
    """As ProbeSuite.fit_and_score fits kinds "linear" and "grid_linear" on all clips."""
    (x, q), (y, _) = inputs, f.labels
    settings = EvalConfig().probe.linear
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        probes = [LinearProbe.for_features(x, f.classes[n]) for n in f.classes]
    logits_of = lambda batch: [probe(batch) for probe in probes]
    targets = [y[n] for n in f.classes]
    train_probes(probes, logits_of, x, targets, settings, torch.Generator().manual_seed(seed))
    return {n: p.numpy() for n, p in zip(f.classes, predict(logits_of, q))}


def linear_sklearn(f: Features, inputs: Split, c: float, row: Row) -> dict[str, np.ndarray]:
    """Standardised features, multinomial logistic regression to convergence; notes on `row`
    the L-BFGS iterations (and when one stopped at MAX_ITER, unconverged)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (x, q), (y, _) = inputs, f.labels
    x, q = x.numpy(), q.numpy()
    predicted, iterations = {}, []
    for name in f.classes:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=MAX_ITER))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # reported in the table
            predicted[name] = model.fit(x, y[name].numpy()).predict(q)
        iterations.append(int(model[-1].n_iter_.max()))
    stopped = sum(i >= MAX_ITER for i in iterations)
    row.note = f"L-BFGS iterations {'/'.join(map(str, iterations))}" + (
        f", {stopped} stopped at the limit" if stopped else ""
    )
    return predicted


# --- ridge (leave-one-out) ----------------------------------------------------------------


def ridge_ours(x: torch.Tensor, labels: Labels, classes: dict[str, int]) -> dict[str, float]:
    return {n: ridge_loo_accuracy(x, labels[n], classes[n]) for n in classes}


def ridge_design(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """(Z, alphas) with Z Z^T our kernel, x x^T / D + its mean diagonal, and the alphas our
    RIDGE_SCALES times the kernel's mean eigenvalue (trace / N)."""
    x = x.double().numpy() / np.sqrt(x.shape[1])
    constant = np.sqrt(np.einsum("ij,ij->i", x, x).mean())
    z = np.hstack([x, np.full((x.shape[0], 1), constant)])
    mean_eigenvalue = np.einsum("ij,ij->i", z, z).mean()
    return z, np.array(RIDGE_SCALES) * mean_eigenvalue


def ridge_sklearn(x: torch.Tensor, labels: Labels, classes: dict[str, int]) -> dict[str, float]:
    from sklearn.linear_model import RidgeCV

    z, alphas = ridge_design(x)
    accuracy = {}
    for name in classes:
        y = labels[name].numpy()
        ridge = RidgeCV(
            alphas=alphas,
            fit_intercept=False,
            scoring="neg_mean_squared_error",  # same choice as ours; keeps LOO predictions
            gcv_mode="eigen",  # of the Gram matrix Z Z^T while clips <= features, as ours
            store_cv_results=True,
        )
        ridge.fit(z, np.eye(classes[name])[y])
        held_out = ridge.cv_results_[:, :, list(alphas).index(ridge.alpha_)]
        accuracy[name] = float((held_out.argmax(1) == y).mean())
    return accuracy


# --- measuring ----------------------------------------------------------------------------


def interleaved(rows: list[Row], calls: list[Callable[[], dict]], repeats: int, truth: Labels):
    """Runs every call `repeats` times, all methods once per round (the order reversed every
    other round); keeps the times and the last round's predictions, or accuracies."""
    for round_ in range(repeats):
        order = list(zip(rows, calls))
        for row, call in order if round_ % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            result = call()
            row.seconds.append(time.perf_counter() - started)
            if isinstance(next(iter(result.values())), np.ndarray):
                row.predicted = result
                row.accuracy = {n: float((p == truth[n].numpy()).mean()) for n, p in result.items()}
            else:
                row.accuracy = result


def measure_encoder(f: Features, description: dict, repeats: int) -> list[Pair]:
    """Every probe, ours and sklearn's, on one encoder's features."""
    probe = EvalConfig().probe
    k, temperature = probe.knn_k, probe.knn_temperature
    val_truth = f.labels[1]
    pairs: list[Pair] = []

    ours = Row("k-NN", "ours (torch)")
    rows = [
        ours,
        Row("k-NN", 'KNeighborsClassifier, metric="cosine"'),
        Row("k-NN", "KNeighborsClassifier, unit vectors, euclidean"),
    ]
    calls = [
        partial(knn_ours, f, k, temperature),
        partial(knn_sklearn, f, k, temperature, "cosine"),
        partial(knn_sklearn, f, k, temperature, "euclidean"),
    ]
    interleaved(rows, calls, repeats, val_truth)
    pairs += [(ours, None), *((row, ours) for row in rows[1:])]

    nominal_c = 1.0 / (probe.linear.weight_decay * description["train_clips"])
    for kind, inputs in (("linear", f.pooled), ("grid_linear", f.grid)):
        ours = Row(kind, f"ours (AdamW, {probe.linear.steps:,} steps)")
        nominal = Row(kind, f"LogisticRegression, C = {nominal_c:.3g}")
        default = Row(kind, "LogisticRegression, C = 1")
        calls = [
            partial(linear_ours, f, inputs, 0),
            partial(linear_sklearn, f, inputs, nominal_c, nominal),
            partial(linear_sklearn, f, inputs, 1.0, default),
        ]
        interleaved([ours, nominal, default], calls, repeats, val_truth)
        pairs += [(ours, None), (nominal, ours), (default, ours)]

    for count in dict.fromkeys((description["online_clips"], description["train_clips"])):
        x, labels = f.grid[0][:count], {n: v[:count] for n, v in f.labels[0].items()}
        ours = Row(f"ridge LOO, {count:,} clips", "ours (torch eigh)")
        theirs = Row(f"ridge LOO, {count:,} clips", 'RidgeCV, gcv_mode="eigen"')
        calls = [
            partial(ridge_ours, x, labels, f.classes),
            partial(ridge_sklearn, x, labels, f.classes),
        ]
        interleaved([ours, theirs], calls, repeats, val_truth)
        pairs += [(ours, None), (theirs, ours)]
    return pairs


def import_seconds(module: str, after: str, repeats: int) -> float:
    """Median seconds of `import module` in a fresh interpreter, after importing `after`."""
    code = (
        f"import time\n{after}\nstarted = time.perf_counter()\nimport {module}\n"
        "print(time.perf_counter() - started)"
    )
    times = [
        float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             check=True, cwd=REPO).stdout)
        for _ in range(repeats)
    ]  # fmt: skip
    return statistics.median(times)


def agreement(a: Row, b: Row) -> str:
    """Share of held-out clips on which both methods predict the same class (all labels); for
    methods that report accuracies only, the largest difference between them."""
    if not a.predicted or not b.predicted:
        gap = max(abs(a.accuracy[n] - b.accuracy[n]) for n in a.accuracy)
        return f"accuracy Δ ≤ {gap:.1e}"
    same = sum(int((a.predicted[n] == b.predicted[n]).sum()) for n in a.predicted)
    total = sum(p.size for p in a.predicted.values())
    return f"{100 * same / total:.2f}%"


# --- the docs section ---------------------------------------------------------------------


def verdict(tables: dict[str, list[Pair]]) -> list[str]:
    """One line per probe: is sklearn's fastest method as fast as ours on every encoder's
    features, and how far apart are the accuracies?"""
    lines = []
    every = [pair for pairs in tables.values() for pair in pairs]
    for probe in dict.fromkeys(row.probe for row, _ in every):
        methods = dict.fromkeys(row.method for row, ours in every if row.probe == probe and ours)
        ratios = {
            m: max(r.median / o.median for r, o in every if r.method == m and r.probe == probe)
            for m in methods
        }
        best = min(ratios, key=ratios.get)
        gap = max(
            abs(row.accuracy[n] - ours.accuracy[n])
            for row, ours in every
            if row.probe == probe and row.method == best
            for n in ours.accuracy
        )
        ratio = ratios[best]
        speed = "as fast as ours" if ratio <= AS_FAST else "slower than ours"
        if ratio < 1 / AS_FAST:
            speed = "faster than ours"
        # The linear probes are a different optimiser, not the same estimator: a looser match.
        tolerance = LINEAR_TOLERANCE if "linear" in probe else SAME_TOLERANCE
        switch = ratio <= AS_FAST and gap <= tolerance
        lines.append(
            f"- **{probe}**: sklearn's fastest, {best}, is {speed} (at most {ratio:.2f}x our "
            f"time); accuracies differ from ours by at most {100 * gap:.1f} points on a label "
            f"(tolerance {100 * tolerance:g}). "
            + ("Switching to sklearn is supported." if switch else "Keep ours.")
        )
    return lines


def table(pairs: list[Pair], description: dict) -> list[str]:
    labels = list(pairs[0][0].accuracy)
    chance = ", ".join(f"{n} {100 * v:.1f}" for n, v in description["chance"].items())
    lines = [
        f"**Features of {description['encoder']} target encoder** (chance, the majority "
        f"class of the held-out clips: {chance}).",
        "",
        "| probe | method | median s | × ours | "
        + " | ".join(labels)
        + " | same predictions | note |",
        "|---|---|---:|---:|" + "---:|" * len(labels) + "---:|---|",
    ]
    for row, ours in pairs:
        ratio = f"{row.median / ours.median:.2f}" if ours else "1"
        cells = " | ".join(f"{100 * row.accuracy[n]:.1f}" for n in labels)
        same = agreement(row, ours) if ours else "-"
        lines.append(
            f"| {row.probe} | {row.method} | {row.median:.3f} | {ratio} | {cells} | {same} "
            f"| {row.note} |"
        )
    return [*lines, ""]


def markdown(tables: dict[str, list[Pair]], record: dict) -> str:
    first = record["features"][next(iter(tables))]
    lines = [
        "## Probes: hand-written against scikit-learn",
        "",
        f"`{record['command']}`",
        "",
        f"Measured {record['date']} at commit `{record['commit']}` on {record['machine']}, "
        f"{record['threads']} thread(s) for torch and BLAS, torch {torch.__version__}, "
        f"scikit-learn {record['sklearn']}; load average {record['load_before']} before and "
        f"{record['load_after']} after. Features: the frozen evaluation's "
        f"{first['train_clips']:,} training and {first['val_clips']:,} held-out single-object "
        f"physics clips, encoded in {first['precision']}, mean-pooled to {first['dim']} "
        f"dimensions (k-NN, linear) or grid-pooled to {first['grid_dim']:,} (grid_linear, "
        "ridge). Times: median of "
        f"{record['repeats']} interleaved runs, all three labels, called as the project calls "
        "them. Accuracy in % on the held-out clips (ridge: leave-one-out over its clips). Same "
        "predictions: the share of held-out clips, over all labels, on which the method and "
        "ours predict the same class.",
        "",
    ]
    for name, pairs in tables.items():
        lines += table(pairs, record["features"][name])
    lines += [
        f"Import cost in a fresh interpreter (median of {record['repeats']}; files already in "
        "the page cache):",
        "",
        "| import | after | seconds |",
        "|---|---|---:|",
    ]
    for (module, after), seconds in record["imports"].items():
        lines.append(f"| `import {module}` | {after} | {seconds:.2f} |")
    lines += [
        "",
        "How the methods correspond. k-NN: the same neighbours and vote weights, so the "
        "predictions agree up to float32 rounding: where they differ, the 20th and 21st "
        "neighbours have similarities equal to about 1e-7, with different labels, and the vote "
        "is close. Ridge: `RidgeCV` on the one-hot targets with the same alphas and exact "
        "leave-one-out solves the same problem as ours (`RidgeClassifierCV` codes the targets "
        "±1, which ranks the alphas on a different error, and keeps no leave-one-out "
        "predictions under its default scoring). Ours forms the Gram matrix in float32 before "
        "going to float64; at the smallest ridge strength that moves the leave-one-out scores "
        "by up to about 5e-4 and can flip a near-tied clip, where sklearn works in float64 "
        "throughout (with a float64 Gram matrix the two agree to about 1e-10). "
        "Linear: ours stops after a fixed number of AdamW steps with decoupled weight decay, "
        "which no sklearn estimator reproduces; `LogisticRegression` minimises the same "
        "cross-entropy to convergence, with an L2 term, so its accuracy is close to ours, not "
        "identical.",
        "",
        f"Verdict (as fast: at most {AS_FAST}x our time, on the features of every encoder above):",
        "",
        *verdict(tables),
        "",
        "The linear and grid_linear probes share one implementation (`LinearProbe` and "
        "`train_probes` in train/eval/probes.py): a switch supported for one of them only would "
        "leave two ways to fit a linear probe. Where sklearn is supported, switching still means "
        "moving scikit-learn from the `[test]` extra into the core dependencies, and paying its "
        "import (table above) in every process that fits a probe: a packaging decision, not "
        "taken here.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved runs per method")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    parser.add_argument(
        "--encoders",
        nargs="+",
        choices=ENCODERS,
        default=list(ENCODERS),
        help="whose features: the tiny_cpu encoder as initialised, the committed starter's",
    )
    parser.add_argument(
        "--cache", default="runs/probes_sklearn", help="feature cache folder (reused if there)"
    )
    parser.add_argument("--no-cache", action="store_true", help="extract features every time")
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md")
    args = parser.parse_args()
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be at least 1")
    if "starter" in args.encoders and not STARTER_PATH.is_file():
        parser.error(f"no starter bundle at {STARTER_PATH}: build it with `make starter`")

    import sklearn

    cache = None if args.no_cache else Path(args.cache)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    torch.set_num_threads(args.threads)
    tables, features = {}, {}
    with threadpool_limits(args.threads):
        for name in args.encoders:
            f, features[name] = load_features(name, cache)
            tables[name] = measure_encoder(f, features[name], args.repeats)
        imports = {
            (module, after or "nothing"): import_seconds(module, after, args.repeats)
            for module in ("sklearn.neighbors", "sklearn.linear_model")
            for after in ("", "import torch")
        }
    omp = os.environ.get("OMP_NUM_THREADS")
    record = {
        "command": shlex.join(
            [f"OMP_NUM_THREADS={omp}"] * (omp is not None)
            + ["python", "benchmarks/probes_sklearn.py", *sys.argv[1:]]
        ),
        "date": time.strftime("%Y-%m-%d"),
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "threads": args.threads,
        "sklearn": sklearn.__version__,
        "repeats": args.repeats,
        "load_before": load_before,
        "load_after": ", ".join(f"{x:.1f}" for x in os.getloadavg()),
        "features": features,
        "imports": imports,
    }
    text = markdown(tables, record)
    print(text)
    if not args.no_docs:
        replace_section(DOC, SECTION, text, title="Performance")


if __name__ == "__main__":
    main()
