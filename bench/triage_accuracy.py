"""Triage by meaning: accuracy on the frozen test split, latency and memory (issue 11).

Trains every contender on ``router/data/triage_train.jsonl`` plus the shipped config's category
descriptions and examples -- exactly what ``spoc serve`` trains on -- and scores it on
``tests/data/triage/test.jsonl``, which nothing here or in the model ever trains or tunes on:

- ``wordllama+logreg``: the shipped model (``router.classifier.CategoryModel``);
- ``wordllama+centroid``: nearest centroid on the same vectors, softmax at temperature 0.05;
- ``tfidf-word+logreg`` and ``tfidf-char+logreg``: the baselines (scikit-learn).

For each: top-1 accuracy, macro-F1, and at the configured ``[triage] min_confidence`` the share
left ``uncategorised`` and the precision of the rest. The shipped model also gets its confusion
matrix, its latency per message through ``CategoryModel.read`` (p50/p99 over every test message
repeated ``--rounds`` times) and the memory it adds (RSS before and after loading and fitting).

    python bench/triage_accuracy.py [--config config.toml] [--rounds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEST_SPLIT = ROOT / "tests" / "data" / "triage" / "test.jsonl"


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load_split(path: Path) -> tuple[list[str], list[str]]:
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], [r["category"] for r in rows]


Scorer = Callable[[list[str]], np.ndarray]  # texts -> probabilities (n, categories)


def report(
    name: str, probabilities: np.ndarray, names: Sequence[str], truth: list[str], threshold: float
) -> dict[str, float]:
    from sklearn.metrics import f1_score

    predicted = [names[i] for i in probabilities.argmax(axis=1)]
    right = np.array([p == t for p, t in zip(predicted, truth, strict=True)])
    sure = probabilities.max(axis=1) >= threshold
    row = {
        "accuracy": float(right.mean()),
        "macro_f1": float(f1_score(truth, predicted, average="macro")),
        "uncategorised": float(1 - sure.mean()),
        "precision_categorised": float(right[sure].mean()) if sure.any() else float("nan"),
    }
    print(
        f"| {name} | {row['accuracy']:.3f} | {row['macro_f1']:.3f} | "
        f"{row['uncategorised']:.3f} | {row['precision_categorised']:.3f} |"
    )
    return row


def confusion(probabilities: np.ndarray, names: Sequence[str], truth: list[str]) -> None:
    from sklearn.metrics import confusion_matrix

    predicted = [names[i] for i in probabilities.argmax(axis=1)]
    matrix = confusion_matrix(truth, predicted, labels=list(names))
    short = [n[:7] for n in names]
    print("\nConfusion matrix of wordllama+logreg (rows: truth, columns: predicted)\n")
    print("| truth \\ predicted | " + " | ".join(short) + " |")
    print("|---" * (len(names) + 1) + "|")
    for name, counts in zip(names, matrix, strict=True):
        print(f"| {name} | " + " | ".join(str(c) for c in counts) + " |")


def percentiles(timings: list[float]) -> str:
    timings = sorted(timings)
    p99 = timings[max(0, int(len(timings) * 0.99) - 1)]
    return f"p50 {statistics.median(timings):.3f} ms, p99 {p99:.3f} ms"


async def through_reader(model: Any, texts: list[str], rounds: int) -> str:
    """What the store runs per contact before its transaction: text extraction and the model
    (``Reading.run``; no hop to a thread of its own since 2f-meaning)."""
    from normalizer.contact import Channel, Contact, Party
    from router.meaning import MeaningReader

    reader = MeaningReader(lambda: model)
    await reader.start()
    when = datetime.now(UTC)
    contacts = [
        Contact(Channel.EMAIL, f"m{i}", Party(email="a@example.org"), when, "", text)
        for i, text in enumerate(texts)
    ]
    timings = []
    for _ in range(rounds):
        for contact in contacts:
            started = time.perf_counter()
            reader.reading(contact).run()
            timings.append((time.perf_counter() - started) * 1000)
    return percentiles(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    from gateway.config import load_config
    from router.classifier import CategoryModel, labelled_set

    settings = load_config(args.config, {}).router_settings()
    categories, threshold = settings.categories, settings.triage.min_confidence
    names = [c.name for c in categories]
    train = [(r.text, r.category) for r in labelled_set() if r.category in names]
    train += [(t, c.name) for c in categories for t in (c.description, *c.examples)]
    train_texts, train_labels = [t for t, _ in train], [c for _, c in train]
    test_texts, truth = load_split(TEST_SPLIT)

    before = rss_mb()
    started = time.perf_counter()
    from router.classifier import WordLlamaEmbedder

    embedder = WordLlamaEmbedder()
    loaded_mb, load_s = rss_mb(), time.perf_counter() - started
    started = time.perf_counter()
    model = CategoryModel(embedder, categories, labelled_set())
    fitted_mb, fit_s = rss_mb(), time.perf_counter() - started

    print(f"Train: {len(train_texts)} texts; test: {len(test_texts)} messages, ", end="")
    print(f"{len(names)} categories; min_confidence {threshold}\n")
    print("| model | top-1 accuracy | macro-F1 | uncategorised | precision of the rest |")
    print("|---|---|---|---|---|")
    shipped = np.array([[g.score for g in sorted(r, key=lambda g: names.index(g.category))]
                        for r in model.rank(embedder.embed(test_texts))])  # fmt: skip
    report("wordllama+logreg (shipped)", shipped, names, truth, threshold)

    x_train, x_test = embedder.embed(train_texts), embedder.embed(test_texts)
    labels = np.array([names.index(c) for c in train_labels])
    centroids = np.stack([x_train[labels == i].mean(axis=0) for i in range(len(names))])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    z = (x_test @ centroids.T) / 0.05
    soft = np.exp(z - z.max(axis=1, keepdims=True))
    report("wordllama+centroid", soft / soft.sum(axis=1, keepdims=True), names, truth, threshold)

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    for analyzer, ngrams in (("word", (1, 2)), ("char_wb", (2, 5))):
        vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngrams, sublinear_tf=True)
        baseline = make_pipeline(vectorizer, LogisticRegression(C=10.0, max_iter=3000))
        baseline.fit(train_texts, labels)
        label = "tfidf-word+logreg" if analyzer == "word" else "tfidf-char+logreg"
        report(f"{label} (baseline)", baseline.predict_proba(test_texts), names, truth, threshold)

    confusion(shipped, names, truth)

    timings = []
    for _ in range(args.rounds):
        for text in test_texts:
            started = time.perf_counter()
            model.read(text)
            timings.append((time.perf_counter() - started) * 1000)
    print(f"\nLatency of CategoryModel.read over {len(timings)} calls: {percentiles(timings)}")
    hop = asyncio.run(through_reader(model, test_texts, args.rounds))
    print(f"Latency of Reading.run (email: reply stripping and the model): {hop}")
    print(f"Model load {load_s:.2f} s, fit {fit_s:.2f} s; RSS {before:.0f} MB before, ", end="")
    print(f"{loaded_mb:.0f} MB with the embedding (+{loaded_mb - before:.0f}), ", end="")
    print(f"{fitted_mb:.0f} MB fitted (+{fitted_mb - before:.0f} in all)")


if __name__ == "__main__":
    main()
