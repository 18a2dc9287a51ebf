"""Prepares the King James Bible as a word-level language-modelling corpus, deterministically.

    python examples/kjv_lm/corpus.py [--out target/kjv_lm/corpus] [--check]

Reads `bible -f gen1:1-rev22:21` (Debian's bible-kjv; ci/setup installs it) and writes into --out:

- train.npy, valid.npy, test.npy: the three token streams (uint16 word ids, one stream per
  split, verses in canonical order, each verse followed by <eos>);
- vocab.txt: the 10,000 words, one per line, line number = id (0 <unk>, 1 <eos>, then the
  training split's 9,998 most frequent words, ties broken alphabetically);
- corpus.json: sizes, out-of-vocabulary rates and the SHA-256 of every file above.

Preparation: the verse reference ("Ge1:1 ") is stripped, the text lower-cased, and split into
words (letters), possessive / elided endings ("'s", "'") and single punctuation marks, so
"LORD's house, and" becomes `lord 's house , and`. The split is by book: validation = Judges and
Acts, test = Proverbs and John (narrative, wisdom and gospel text the training books have the
like of; 5.5% and 4.4% of the tokens), training = the other 62 books, so test books are unseen.

`--check` prepares again and compares every SHA-256 with examples/kjv_lm/corpus.json (the
committed record): exit 1 on a difference. Exit 2 when `bible` is missing.
"""

import argparse
import collections
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RECORD = os.path.join(HERE, "corpus.json")

VOCAB_SIZE = 10_000
UNK, EOS = "<unk>", "<eos>"
# bible-kjv's book abbreviations, as `bible -f` prints them.
VALID_BOOKS = ("Jdgs", "Acts")
TEST_BOOKS = ("Prv", "John")
BIBLE_RANGE = "gen1:1-rev22:21"

_REF = re.compile(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$")
_TOKEN = re.compile(r"[a-z]+|'[a-z]*|[^\sa-z]")


def tokenize(text):
    """Lower-cased words, "'s"-style endings and single punctuation marks."""
    return _TOKEN.findall(text.lower())


def read_bible(command=("bible", "-f", BIBLE_RANGE)):
    """The verses as (book, text), in canonical order."""
    if shutil.which(command[0]) is None:
        print(f"corpus.py: `{command[0]}` is not installed: it comes with Debian's bible-kjv package "
              "(`sudo apt-get install bible-kjv`, or run ci/setup)", file=sys.stderr)
        raise SystemExit(2)
    out = subprocess.run(command, check=True, capture_output=True).stdout.decode("ascii")
    return parse_verses(out)


def parse_verses(text):
    verses = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _REF.match(line)
        if not m:
            raise SystemExit(f"corpus.py: line {n} of the bible's output has no verse reference: {line!r}")
        verses.append((m.group(1), m.group(4)))
    return verses


def split_verses(verses, valid_books=VALID_BOOKS, test_books=TEST_BOOKS):
    books = {b for b, _ in verses}
    for b in valid_books + test_books:
        if b not in books:
            raise SystemExit(f"corpus.py: book {b!r} is not in the text (books: {sorted(books)})")
    parts = {"train": [], "valid": [], "test": []}
    for book, text in verses:
        part = "valid" if book in valid_books else "test" if book in test_books else "train"
        parts[part].append(tokenize(text))
    return parts


def build_vocab(train_verses, size=VOCAB_SIZE):
    counts = collections.Counter(w for v in train_verses for w in v)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    words = [UNK, EOS] + [w for w, _ in ranked[: size - 2]]
    return words


def encode(verses, index):
    ids = []
    unk = index[UNK]
    for v in verses:
        ids.extend(index.get(w, unk) for w in v)
        ids.append(index[EOS])
    return np.asarray(ids, dtype=np.uint16)


def npy_bytes(a):
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def prepare(verses, vocab_size=VOCAB_SIZE, valid_books=VALID_BOOKS, test_books=TEST_BOOKS):
    """Returns {file name: bytes} and the record (sizes, rates, hashes)."""
    parts = split_verses(verses, valid_books, test_books)
    vocab = build_vocab(parts["train"], vocab_size)
    index = {w: i for i, w in enumerate(vocab)}
    files = {"vocab.txt": ("\n".join(vocab) + "\n").encode("ascii")}
    record = {
        "source": f"bible -f {BIBLE_RANGE} (Debian bible-kjv)",
        "vocabulary": len(vocab),
        "valid_books": list(valid_books),
        "test_books": list(test_books),
        "splits": {},
        "sha256": {},
    }
    for name in ("train", "valid", "test"):
        ids = encode(parts[name], index)
        files[f"{name}.npy"] = npy_bytes(ids)
        record["splits"][name] = {
            "verses": len(parts[name]),
            "tokens": int(ids.size),
            "unk_rate": round(float(np.mean(ids == index[UNK])), 5),
        }
    for name, data in sorted(files.items()):
        record["sha256"][name] = hashlib.sha256(data).hexdigest()
    return files, record


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="target/kjv_lm/corpus", help="folder to write (default: %(default)s)")
    ap.add_argument("--check", action="store_true", help="compare with the committed corpus.json")
    args = ap.parse_args()

    verses = read_bible()
    files, record = prepare(verses)
    os.makedirs(args.out, exist_ok=True)
    for name, data in files.items():
        tmp = os.path.join(args.out, f".{name}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, os.path.join(args.out, name))
    with open(os.path.join(args.out, "corpus.json"), "w") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    s = record["splits"]
    print(
        f"corpus: {len(verses)} verses; tokens train {s['train']['tokens']:,}, valid {s['valid']['tokens']:,}, "
        f"test {s['test']['tokens']:,}; vocabulary {record['vocabulary']:,}; <unk> rate train "
        f"{100 * s['train']['unk_rate']:.2f}%, valid {100 * s['valid']['unk_rate']:.2f}%, "
        f"test {100 * s['test']['unk_rate']:.2f}% -> {args.out}"
    )
    if args.check:
        with open(RECORD) as f:
            expected = json.load(f)
        if expected != record:
            diff = [k for k in record["sha256"] if expected.get("sha256", {}).get(k) != record["sha256"][k]]
            print(f"corpus.py: differs from {RECORD}: {', '.join(diff) or 'sizes'}", file=sys.stderr)
            sys.exit(1)
        print(f"corpus: identical to {os.path.relpath(RECORD)} (sizes and SHA-256)")


if __name__ == "__main__":
    main()
