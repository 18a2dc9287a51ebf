"""Unit tests of the KJV language-model pipeline (corpus, model, perplexity, training, export).

    target/torch-venv/bin/python -m unittest discover -s examples/kjv_lm -p 'test_*.py'

Run by tests/kjv_lm.rs (cargo test). Needs no `bible`: the corpus tests use a small slice of
verses written here.
"""

import contextlib
import io
import json
import math
import os
import sys
import tempfile
import unittest

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import corpus as C  # noqa: E402
import lm as L  # noqa: E402
import train as T  # noqa: E402

SLICE = """Ge1:1 In the beginning God created the heaven and the earth.
Ge1:2 And the earth was without form, and void; and darkness was upon the face of the deep.
Jdgs1:1 Now after the death of Joshua it came to pass, that the children of Israel asked the LORD.
Prv1:1 The proverbs of Solomon the son of David, king of Israel;
John1:1 In the beginning was the Word, and the Word was with God, and the Word was God.
Acts1:1 The former treatise have I made, O Theophilus, of all that Jesus began both to do and teach,
Rev22:21 The grace of our Lord Jesus Christ be with you all. Amen.
Ps23:1 The LORD's my shepherd; I shall not want: the Lord is God's.
"""


def small_corpus(folder, vocab=24):
    """The slice above prepared like the real corpus (a 24-word vocabulary)."""
    files, record = C.prepare(C.parse_verses(SLICE), vocab_size=vocab)
    for name, data in files.items():
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
    return record


class Corpus(unittest.TestCase):
    def test_tokenize(self):
        self.assertEqual(C.tokenize("The LORD's house, and the sons' gate: AMEN."),
                         ["the", "lord", "'s", "house", ",", "and", "the", "sons", "'", "gate", ":", "amen", "."])

    def test_references_stripped_and_books_split(self):
        verses = C.parse_verses(SLICE)
        self.assertEqual(verses[0], ("Ge", "In the beginning God created the heaven and the earth."))
        self.assertEqual(verses[2][0], "Jdgs")
        self.assertEqual(verses[-1][0], "Ps")
        parts = C.split_verses(verses)
        self.assertEqual([len(parts[p]) for p in ("train", "valid", "test")], [4, 2, 2])
        with self.assertRaises(SystemExit):
            C.parse_verses("no reference here\n")
        with self.assertRaises(SystemExit):
            C.split_verses(verses, valid_books=("Obad",))

    def test_vocabulary_and_encoding(self):
        parts = C.split_verses(C.parse_verses(SLICE))
        vocab = C.build_vocab(parts["train"], size=6)
        # <unk>, <eos>, then by count (ties alphabetically): "the" 7 times, "and" 3, "," and "." ...
        self.assertEqual(vocab[:3], ["<unk>", "<eos>", "the"])
        self.assertEqual(len(vocab), 6)
        index = {w: i for i, w in enumerate(vocab)}
        ids = C.encode([["the", "zebra"]], index)
        self.assertEqual(ids.tolist(), [2, 0, 1])
        self.assertEqual(ids.dtype, np.uint16)

    def test_deterministic_with_hashes(self):
        a, rec_a = C.prepare(C.parse_verses(SLICE), vocab_size=24)
        b, rec_b = C.prepare(C.parse_verses(SLICE), vocab_size=24)
        self.assertEqual(a, b)
        self.assertEqual(rec_a, rec_b)
        self.assertEqual(set(rec_a["sha256"]), {"train.npy", "valid.npy", "test.npy", "vocab.txt"})
        total = sum(rec_a["splits"][s]["tokens"] for s in ("train", "valid", "test"))
        self.assertEqual(total, sum(len(C.tokenize(t)) + 1 for _, t in C.parse_verses(SLICE)))

    def test_committed_record_is_consistent(self):
        with open(C.RECORD) as f:
            rec = json.load(f)
        self.assertEqual(rec["vocabulary"], 10_000)
        self.assertEqual(rec["test_books"], list(C.TEST_BOOKS))
        self.assertEqual(sum(rec["splits"][s]["verses"] for s in rec["splits"]), 31_102)

    def test_missing_bible_is_a_clear_error(self):
        err = io.StringIO()
        with self.assertRaises(SystemExit) as e, contextlib.redirect_stderr(err):
            C.read_bible(("kpgen-no-such-bible", "-f", "gen1:1"))
        self.assertEqual(e.exception.code, 2)
        self.assertIn("bible-kjv", err.getvalue())


class Perplexity(unittest.TestCase):
    def test_hand_checked(self):
        # p = 1/2 and 1/8: exp(-(ln 1/2 + ln 1/8) / 2) = sqrt(16) = 4.
        self.assertAlmostEqual(L.perplexity(np.log([0.5, 0.125])), 4.0, places=12)
        # a uniform guess over V words has perplexity V
        self.assertAlmostEqual(L.perplexity(np.full(7, -math.log(10_000))), 10_000.0, places=6)
        with self.assertRaises(ValueError):
            L.perplexity([])

    def test_log_probs_are_normalized(self):
        model = L.LM(50, hidden=8, cutoffs=(10,), seed=1).eval()
        h = torch.randn(5, 8)
        lp = model.log_probs(h)
        self.assertTrue(torch.allclose(lp.exp().sum(1), torch.ones(5), atol=1e-5))
        t = torch.tensor([0, 3, 12, 49, 7])
        self.assertTrue(torch.allclose(model.target_log_probs(h, t), lp[torch.arange(5), t], atol=1e-5))

    def test_evaluate_matches_a_hand_loop(self):
        model = L.LM(30, hidden=8, cutoffs=(10,), seed=2).eval()
        stream = np.random.default_rng(0).integers(0, 30, 41)
        got = L.evaluate(model, stream, batch=2, bptt=7)
        # column b holds stream[b * 20 : b * 20 + 21]; every word after the first predicted
        lps = []
        with torch.no_grad():
            for b in range(2):
                col = torch.as_tensor(stream[b * 20: b * 20 + 21].astype(np.int64))
                h, _ = model.hidden_states(col[None, :-1])
                lps.append(model.target_log_probs(h[0], col[1:]))
        self.assertAlmostEqual(got, L.perplexity(torch.cat(lps).numpy()), places=4)


class Matrices(unittest.TestCase):
    def test_kp_shape(self):
        self.assertEqual(L.kp_shape(1024, 256), (32, 16, 32, 16))
        m1, n1, m2, n2 = L.kp_shape(64, 16)
        self.assertEqual((m1 * m2, n1 * n2), (64, 16))
        self.assertGreaterEqual(min(m1, n1) * min(m2, n2), 16)

    def test_kp_shape_within_a_budget(self):
        # 1024 x 256 at 25x: 10,485 parameters; the largest full-rank shape within them is
        # (8 x 4) ⊗ (128 x 64), 8,224 parameters (31.9x); the next larger ones exceed the budget.
        self.assertEqual(L.kp_shape(1024, 256, 10_485), (8, 4, 128, 64))
        m = L.Matrix("kp", 1024, 256, ratio=25.0, kp_shape_rule="budget", gen=torch.Generator().manual_seed(0))
        self.assertEqual(m.stored(), 8_224)
        self.assertEqual(tuple(m().shape), (1024, 256))
        with self.assertRaises(ValueError):
            L.kp_shape(1024, 256, 100)
        with self.assertRaises(ValueError):
            L.Matrix("dkp", 1024, 256, kp_shape_rule="budget")

    def test_every_method_at_its_budget(self):
        for method in L.METHODS:
            m = L.Matrix(method, 256, 64, ratio=8.0, gen=torch.Generator().manual_seed(0))
            w = m()
            self.assertEqual(tuple(w.shape), (256, 64), method)
            m.anneal(0.0)
            stored = m.stored()
            if method == "dense":
                self.assertEqual(stored, 256 * 64)
            else:
                self.assertLessEqual(stored, 256 * 64 // 8, method)
                if method != "kp":  # KP's size is its shape's, not the budget's
                    self.assertGreater(stored, 256 * 64 // 8 * 0.6, method)
            if method in ("dkp", "pruned"):
                self.assertEqual(int(m.mask.sum()), m.target_nonzeros())

    def test_kp_is_the_kronecker_product(self):
        m = L.Matrix("kp", 64, 16, gen=torch.Generator().manual_seed(0))
        self.assertTrue(torch.equal(m(), torch.kron(m.A, m.B)))
        h = L.Matrix("hkp", 256, 64, ratio=4.0, gen=torch.Generator().manual_seed(0))
        self.assertTrue(torch.equal(h()[h.dense_rows:], torch.kron(h.A, h.B)))
        self.assertEqual(h.dense_rows % h.factors[2], 0)

    def test_row_dropout_only_while_training(self):
        m = L.Matrix("dkp", 64, 16, ratio=2.0, rowdrop=0.5, gen=torch.Generator().manual_seed(0))
        with torch.no_grad():
            m.S.normal_()
        m.eval()
        self.assertTrue(torch.equal(m(), torch.kron(m.A, m.B) + m.S * m.mask))
        m.train()
        torch.manual_seed(0)
        dropped = (m() - torch.kron(m.A, m.B)).abs().sum(1) == 0
        self.assertTrue(0 < int(dropped.sum()) < 64)

    def test_gradients_reach_the_factors(self):
        model = L.LM(40, hidden=16, method="dkp", ratio=4.0, cutoffs=(10,), seed=0)
        x = torch.randint(0, 40, (2, 5))
        loss, _ = model.loss(x, x)
        loss.backward()
        for name in ("A", "B", "S"):
            g = getattr(model.mats["weight_hh_l1"], name).grad
            self.assertIsNotNone(g, name)
            self.assertGreater(float(g.abs().sum()), 0.0, name)


class Training(unittest.TestCase):
    def args(self, corpus, out, *extra):
        return ["--corpus", corpus, "--out", out, "--hidden", "16", "--batch", "2", "--bptt", "5",
                "--epochs", "2", "--method", "dkp", "--ratio", "4", "--progress-seconds", "1000", *extra]

    def test_resume_gives_the_same_model(self):
        with tempfile.TemporaryDirectory() as d:
            corpus = os.path.join(d, "corpus")
            os.makedirs(corpus)
            small_corpus(corpus)
            quiet = contextlib.redirect_stdout(io.StringIO())
            with quiet:
                T.main(self.args(corpus, os.path.join(d, "whole")))
                T.main(self.args(corpus, os.path.join(d, "parts"), "--stop-after-steps", "3"))
                self.assertFalse(os.path.exists(os.path.join(d, "parts", "record.json")))
                T.main(self.args(corpus, os.path.join(d, "parts")))
            a = torch.load(os.path.join(d, "whole", "model.pt"), weights_only=False)["model"]
            b = torch.load(os.path.join(d, "parts", "model.pt"), weights_only=False)["model"]
            self.assertEqual(a.keys(), b.keys())
            for k in a:
                self.assertTrue(torch.equal(a[k], b[k]), k)
            with open(os.path.join(d, "whole", "record.json")) as f:
                rec = json.load(f)
            self.assertTrue(math.isfinite(rec["test_perplexity"]))
            self.assertEqual(rec["lstm_stored_parameters"], sum(m["stored"] for m in rec["matrices"].values()))
            # another setting on the same folder is refused, not mixed
            with self.assertRaises(SystemExit) as e, quiet:
                T.main(self.args(corpus, os.path.join(d, "parts"), "--lr", "0.1"))
            self.assertIn("other settings", str(e.exception))


if __name__ == "__main__":
    unittest.main()
