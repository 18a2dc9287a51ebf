"""Data sets for the training companion.

Everything here is offline: aeon ships the UEA/UCR files used below inside its
PyPI wheel, scikit-learn ships `digits`, and `synthetic` is generated from the seed. Sequences come back as
zero-padded float32 arrays (sequences x steps x features) plus int32 valid
lengths, which is exactly the layout the exported test set uses.
"""

from dataclasses import dataclass

import numpy as np


@dataclass
class Split:
    x: np.ndarray  # float32 (n, steps, features), zero-padded past `length`
    length: np.ndarray  # int32 (n,)
    y: np.ndarray  # int32 (n,)


@dataclass
class Dataset:
    train: Split
    test: Split
    classes: list  # original label of class index i
    mean: np.ndarray  # per-feature standardization applied to x (train stats)
    std: np.ndarray


# aeon loaders that ship their data inside the package (no download).
_AEON = {
    "BasicMotions": "load_basic_motions",
    "JapaneseVowels": "load_japanese_vowels",  # variable length
}


def _pad(seqs):
    """List of (features, steps_i) arrays -> padded (n, steps, features), lengths."""
    lengths = np.array([s.shape[1] for s in seqs], dtype=np.int32)
    feats = seqs[0].shape[0]
    out = np.zeros((len(seqs), int(lengths.max()), feats), dtype=np.float64)
    for i, s in enumerate(seqs):
        out[i, : s.shape[1]] = np.asarray(s, dtype=np.float64).T
    return out, lengths


def _load_aeon(name):
    import aeon.datasets  # imported lazily: it is slow and only needed here

    loader = getattr(aeon.datasets, _AEON[name])
    parts = []
    for split in ("train", "test"):
        x, y = loader(split=split)
        seqs = list(x) if isinstance(x, list) else [x[i] for i in range(x.shape[0])]
        parts.append((seqs, np.asarray(y)))
    return parts


def _load_digits(test_fraction=0.3):
    """scikit-learn's 8x8 digits as 8 steps (image rows) x 8 features (pixels).
    Fixed split: the last 30% of the 1797 images (in the package's order) are the
    test set."""
    from sklearn.datasets import load_digits

    d = load_digits()
    n_test = int(round(test_fraction * len(d.target)))
    cut = len(d.target) - n_test
    seqs = [img.T for img in d.images]  # (features, steps): column j of img.T is row j
    ys = np.array([str(v) for v in d.target])
    return [(seqs[:cut], ys[:cut]), (seqs[cut:], ys[cut:])]


def _load_synthetic(seed, features=3, steps=40, per_class=16, classes=3):
    """Tiny sine-frequency task; lets tests run without aeon."""
    rng = np.random.default_rng(seed)
    parts = []
    for _ in ("train", "test"):
        seqs, ys = [], []
        for c in range(classes):
            for _ in range(per_class):
                n = int(rng.integers(steps // 2, steps + 1))
                t = np.arange(n)
                freq = 0.1 * (c + 1)
                s = np.stack([np.sin(freq * t + rng.uniform(0, 6.3)) for _ in range(features)])
                seqs.append(s + 0.3 * rng.standard_normal(s.shape))
                ys.append(str(c))
        parts.append((seqs, np.array(ys)))
    return parts


def load(name, seed=0, standardize=True):
    if name == "synthetic":
        parts = _load_synthetic(seed)
    elif name == "digits":
        parts = _load_digits()
    elif name in _AEON:
        parts = _load_aeon(name)
    else:
        raise SystemExit(f"unknown dataset {name!r}; known: {sorted(_AEON) + ['digits', 'synthetic']}")

    (tr_seqs, tr_y), (te_seqs, te_y) = parts
    classes = sorted(set(tr_y.tolist()) | set(te_y.tolist()))
    index = {c: i for i, c in enumerate(classes)}

    xtr, ltr = _pad(tr_seqs)
    xte, lte = _pad(te_seqs)
    # Pad both splits to one common step count so the spec has one `steps`.
    steps = max(xtr.shape[1], xte.shape[1])
    xtr = np.pad(xtr, ((0, 0), (0, steps - xtr.shape[1]), (0, 0)))
    xte = np.pad(xte, ((0, 0), (0, steps - xte.shape[1]), (0, 0)))

    feats = xtr.shape[2]
    mean, std = np.zeros(feats), np.ones(feats)
    if standardize:
        # Statistics over valid (unpadded) training steps only.
        valid = np.arange(steps)[None, :] < ltr[:, None]
        mean = xtr[valid].mean(axis=0)
        std = xtr[valid].std(axis=0) + 1e-8

    def split(x, lengths, y):
        valid = (np.arange(steps)[None, :] < lengths[:, None])[..., None]
        x = np.where(valid, (x - mean) / std, 0.0)  # padding stays exactly zero
        labels = np.array([index[v] for v in y.tolist()], dtype=np.int32)
        return Split(x.astype(np.float32), lengths.astype(np.int32), labels)

    return Dataset(split(xtr, ltr, tr_y), split(xte, lte, te_y), classes, mean, std)


def subset(s: Split, k, seed):
    """K sequences chosen by a seeded shuffle (for smoke runs)."""
    if k is None or k >= len(s.y):
        return s
    idx = np.sort(np.random.default_rng(seed).permutation(len(s.y))[:k])
    return Split(s.x[idx], s.length[idx], s.y[idx])


def spread(s: Split, k):
    """K evenly spaced sequences, in order (a fixed, smaller committed test set
    that keeps the class mix of a split sorted by class)."""
    if k >= len(s.y):
        return s
    idx = np.unique(np.round(np.linspace(0, len(s.y) - 1, k)).astype(int))
    return Split(s.x[idx], s.length[idx], s.y[idx])
