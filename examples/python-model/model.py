"""A healproxy model plugin in Python that learns: crypto-text sentiment
(bullish, bearish, neutral) with scikit-learn, trained at start on the
labelled examples the repository ships (plugins/sentiment/testdata).

    python3 model.py accuracy     accuracy on the held-out set
    (run by healproxy)            serves the model (see README.md)
"""

import csv
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = os.environ.get("SENTIMENT_DATA") or os.path.join(ROOT, "plugins", "sentiment", "testdata")
sys.path.insert(0, os.path.join(ROOT, "plugins", "python"))

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline, make_union  # noqa: E402

MAX_INPUT_CHARS = 10000


def load(name):
    texts, labels = [], []
    with open(os.path.join(DATA, name), newline="", encoding="utf-8") as f:
        for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            if len(row) == 2 and row[0] and not row[0].startswith("#"):
                labels.append(row[0])
                texts.append(row[1])
    return texts, labels


def train():
    texts, labels = load("labelled.tsv")
    features = make_union(
        TfidfVectorizer(lowercase=True, ngram_range=(1, 2), sublinear_tf=True),
        TfidfVectorizer(lowercase=True, analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
    )
    clf = make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000))
    clf.fit(texts, labels)
    return clf


class SentimentModel:
    def __init__(self):
        start = time.monotonic()
        self.clf = train()
        self.labels = [str(c) for c in self.clf.classes_]
        sys.stderr.write("python-model: trained in %.2fs\n" % (time.monotonic() - start))

    def info(self):
        return {"name": "sklearn-sentiment", "version": "1", "labels": self.labels}

    def predict(self, inputs):
        import healproxy_plugin

        for text in inputs:
            if len(text) > MAX_INPUT_CHARS:
                raise healproxy_plugin.BadInput("an input is longer than %d characters" % MAX_INPUT_CHARS)
        probs = self.clf.predict_proba(inputs)
        return [list(zip(self.labels, row)) for row in probs]


def accuracy():
    model = SentimentModel()
    texts, labels = load("heldout.tsv")
    got = model.clf.predict(texts)
    right = sum(1 for g, w in zip(got, labels) if g == w)
    print("held-out accuracy: %.1f%% (%d of %d), trained on %d examples"
          % (100.0 * right / len(labels), right, len(labels), len(load("labelled.tsv")[0])))


if __name__ == "__main__":
    if sys.argv[1:] == ["accuracy"]:
        accuracy()
    else:
        import healproxy_plugin

        healproxy_plugin.serve(SentimentModel())
