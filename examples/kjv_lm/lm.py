"""Word-level LSTM language model in PyTorch whose two LSTM layers' weight matrices are dense,
Kronecker (KP), doped KP (DKP), hybrid KP (HKP), magnitude-pruned or low rank.

Embedding (V x E) -> 2-layer LSTM(H) -> adaptive softmax over the V words (untied). Every LSTM
weight matrix (`weight_ih_l0`, `weight_hh_l0`, `weight_ih_l1`, `weight_hh_l1`, PyTorch's gate
order i, f, g, o) is a `Matrix` module that materializes W once per batch; the LSTM itself is
PyTorch's fused nn.LSTM called with those weights (`torch.func.functional_call`), so gradients
reach the factors and the per-time-step work stays in the fused kernel.

Methods and what they store per matrix (M x N, `budget` = M N / ratio parameters):
  dense    W
  kp       W = A ⊗ B, A m1 x n1, B m2 x n2 (kp_shape "min": the fewest parameters whose rank bound
           reaches min(M, N), whatever the ratio; "budget": the most parameters within the budget)
  dkp      W = A ⊗ B + S, S annealed from dense to budget - |A| - |B| non-zeros by magnitude,
           with co-matrix row dropout on S's output rows while training
  hkp      W = [U ; A' ⊗ B], the first R rows dense (R a multiple of m2, the most within budget)
  pruned   W * mask, annealed by magnitude to budget non-zeros
  lowrank  W = U V, U M x r, V r x N, r = budget // (M + N)
"""

import math

import numpy as np
import torch
from torch import nn

MATRICES = ("weight_ih_l0", "weight_hh_l0", "weight_ih_l1", "weight_hh_l1")
METHODS = ("dense", "kp", "dkp", "hkp", "pruned", "lowrank")
KP_SHAPES = ("min", "budget")


def kp_shapes(rows, cols):
    """Every two-factor shape (m1, n1, m2, n2) with m1 m2 = rows and n1 n2 = cols, neither factor
    the whole matrix or 1 x 1, in order of m1 then n1."""
    for m1 in range(1, rows + 1):
        if rows % m1:
            continue
        for n1 in range(1, cols + 1):
            if cols % n1:
                continue
            m2, n2 = rows // m1, cols // n1
            if (rows, cols) in ((m1, n1), (m2, n2)) or (1, 1) in ((m1, n1), (m2, n2)):
                continue
            yield m1, n1, m2, n2


def kp_shape(rows, cols, budget=None):
    """(m1, n1, m2, n2) of `kp_shapes`: the fewest parameters m1 n1 + m2 n2 whose rank bound
    min(m1, n1) min(m2, n2) reaches min(rows, cols); ties: the smaller A (kpgen shapes' rule for
    two factors). With `budget`: the most parameters at most `budget` among the shapes whose
    rank bound reaches min(rows, cols) (KP at a compression as near the target as its structure
    allows); ties: the smaller A."""
    full = min(rows, cols)

    def rank(f):
        return min(f[0], f[1]) * min(f[2], f[3])

    def params(f):
        return f[0] * f[1] + f[2] * f[3]

    if budget is not None:
        fits = [f for f in kp_shapes(rows, cols) if rank(f) >= full and params(f) <= budget]
        if not fits:
            raise ValueError(f"kp {rows} x {cols}: no full-rank Kronecker shape within {budget} parameters")
        return min(fits, key=lambda f: (-params(f), f[0] * f[1]))
    shapes = list(kp_shapes(rows, cols))
    if not shapes:
        raise ValueError(f"no Kronecker shape for {rows} x {cols}")
    return min(shapes, key=lambda f: (rank(f) < full, -min(rank(f), full), params(f), f[0] * f[1]))


def magnitude_mask(w, keep):
    """1 on the `keep` largest |w| (ties by index), 0 elsewhere."""
    flat = w.detach().abs().flatten()
    mask = torch.zeros_like(flat)
    if keep > 0:
        idx = torch.from_numpy(np.argsort(-flat.cpu().numpy(), kind="stable")[:keep].copy())
        mask[idx] = 1.0
    return mask.view_as(w)


def cubic_schedule(step, total, start, end):
    """How much of the way from dense to the target a mask still has to go at `step`: 1 before
    `start` (fractions of `total`), then (1 - t)^3, 0 from `end` on (fast while the masked
    matrix has many small entries, slow near the target so the model can recover)."""
    s, e = int(start * total), int(end * total)
    if step < s:
        return 1.0
    if step >= e or e <= s:
        return 0.0
    return (1.0 - (step - s) / (e - s)) ** 3


class Matrix(nn.Module):
    """One weight matrix in one of the METHODS; `forward()` returns W (rows x cols)."""

    def __init__(self, method, rows, cols, ratio=25.0, rowdrop=0.1, gen=None, kp_shape_rule="min"):
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")
        if kp_shape_rule not in KP_SHAPES:
            raise ValueError(f"kp shape {kp_shape_rule!r}: expected one of {', '.join(KP_SHAPES)}")
        if kp_shape_rule != "min" and method != "kp":
            raise ValueError(f"kp shape {kp_shape_rule!r} applies to method kp only, not {method}")
        self.method, self.rows, self.cols = method, rows, cols
        self.budget = int(rows * cols / ratio) if method != "dense" else rows * cols
        self.rowdrop = rowdrop
        bound = 1.0 / math.sqrt(cols)  # nn.LSTM's uniform init range is 1/sqrt(hidden)

        def uniform(*shape, scale=bound):
            return nn.Parameter((torch.rand(*shape, generator=gen) * 2 - 1) * scale)

        if method in ("dense", "pruned"):
            self.W = uniform(rows, cols)
            if method == "pruned":
                self.register_buffer("mask", torch.ones(rows, cols))
        elif method in ("kp", "dkp", "hkp"):
            m1, n1, m2, n2 = kp_shape(rows, cols, self.budget if kp_shape_rule == "budget" else None)
            self.dense_rows = 0
            if method == "hkp":
                kp = m1 * n1 + m2 * n2
                self.dense_rows = max(0, (self.budget - kp) // cols // m2 * m2)
                if self.dense_rows == 0:
                    raise ValueError(f"hkp {rows} x {cols} at 1/{ratio}: the budget has no room for a dense row")
                m1 -= self.dense_rows // m2
                self.U = uniform(self.dense_rows, cols)
            self.factors = (m1, n1, m2, n2)
            # A ⊗ B entries are products: scale each factor so the product has W's range.
            s = math.sqrt(bound)
            self.A = uniform(m1, n1, scale=s * math.sqrt(3.0) ** 0.5)
            self.B = uniform(m2, n2, scale=s * math.sqrt(3.0) ** 0.5)
            if method == "dkp":
                self.nonzeros = self.budget - (m1 * n1 + m2 * n2)
                if self.nonzeros <= 0:
                    raise ValueError(f"dkp {rows} x {cols} at 1/{ratio}: the factors alone exceed the budget")
                self.S = nn.Parameter(torch.zeros(rows, cols))
                self.register_buffer("mask", torch.ones(rows, cols))
        elif method == "lowrank":
            r = self.budget // (rows + cols)
            if r < 1:
                raise ValueError(f"lowrank {rows} x {cols} at 1/{ratio}: rank 0")
            self.rank = r
            s = math.sqrt(bound) * (3.0 / r) ** 0.25
            self.U = uniform(rows, r, scale=s)
            self.V = uniform(r, cols, scale=s)

    def stored(self):
        """Stored parameters (non-zeros of a masked matrix; no index storage)."""
        if self.method == "dense":
            return self.rows * self.cols
        if self.method == "pruned":
            return int(self.mask.sum())
        if self.method == "lowrank":
            return self.U.numel() + self.V.numel()
        n = self.A.numel() + self.B.numel()
        if self.method == "hkp":
            n += self.U.numel()
        if self.method == "dkp":
            n += int(self.mask.sum())
        return n

    def target_nonzeros(self):
        return self.nonzeros if self.method == "dkp" else self.budget

    def anneal(self, remaining):
        """Masks the overlay (dkp) or W (pruned) by magnitude to its target non-zeros plus
        `remaining` (0..1) of the way back to dense."""
        if self.method not in ("dkp", "pruned"):
            return
        w = self.S if self.method == "dkp" else self.W
        final = self.target_nonzeros()
        keep = final + int(round(remaining * (w.numel() - final)))
        with torch.no_grad():
            self.mask.copy_(magnitude_mask(w * self.mask, keep))
            w.mul_(self.mask)

    def forward(self):
        m = self.method
        if m == "dense":
            return self.W
        if m == "pruned":
            return self.W * self.mask
        if m == "lowrank":
            return self.U @ self.V
        w = torch.kron(self.A, self.B)
        if m == "hkp":
            return torch.cat([self.U, w], dim=0)
        if m == "dkp":
            s = self.S * self.mask
            if self.training and self.rowdrop > 0:
                # Co-matrix row dropout: each output row of the overlay is dropped for the
                # whole batch with probability rowdrop (kept rows rescaled), so the KP product
                # has to carry every row on its own and S does not co-adapt with it.
                keep = (torch.rand(self.rows, 1, device=s.device) >= self.rowdrop).to(s.dtype)
                s = s * keep / (1.0 - self.rowdrop)
            w = w + s
        return w


class LM(nn.Module):
    """Embedding -> 2-layer LSTM -> adaptive softmax (exact log-probabilities over the
    vocabulary; `log_probs` gives all of them)."""

    def __init__(self, vocab, hidden=256, emb=None, method="dense", ratio=25.0, dropout=0.25,
                 rowdrop=0.1, cutoffs=(2000,), seed=0, kp_shape="min"):
        super().__init__()
        emb = emb or hidden
        # A small vocabulary (tests) gets one cluster boundary inside it.
        cutoffs = [c for c in cutoffs if 0 < c < vocab - 1] or [max(1, vocab // 2)]
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.config = dict(vocab=vocab, hidden=hidden, emb=emb, method=method, ratio=ratio,
                           dropout=dropout, rowdrop=rowdrop, cutoffs=list(cutoffs), seed=seed,
                           kp_shape=kp_shape)
        self.embed = nn.Embedding(vocab, emb)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        self.lstm = nn.LSTM(emb, hidden, num_layers=2, batch_first=True, dropout=dropout)
        shapes = {"weight_ih_l0": (4 * hidden, emb), "weight_hh_l0": (4 * hidden, hidden),
                  "weight_ih_l1": (4 * hidden, hidden), "weight_hh_l1": (4 * hidden, hidden)}
        self.mats = nn.ModuleDict({n: Matrix(method, *shapes[n], ratio=ratio, rowdrop=rowdrop, gen=gen,
                                             kp_shape_rule=kp_shape)
                                   for n in MATRICES})
        # The LSTM's own weight matrices are replaced by `mats`; its biases stay (forget gate 1).
        for n in MATRICES:
            delattr(self.lstm, n)
            self.lstm.register_buffer(n, torch.zeros(shapes[n]), persistent=False)
        with torch.no_grad():
            for n in ("bias_ih_l0", "bias_ih_l1"):
                getattr(self.lstm, n)[hidden:2 * hidden] = 1.0
        self.drop = nn.Dropout(dropout)
        self.out = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cutoffs=list(cutoffs), div_value=4.0)

    def weights(self):
        return {n: m() for n, m in self.mats.items()}

    def hidden_states(self, tokens, state=None):
        """tokens (batch, steps) -> top LSTM layer's h (batch, steps, H), new state."""
        x = self.drop(self.embed(tokens))
        params = {**self.weights(), **{n: p for n, p in self.lstm.named_parameters()}}
        h, state = torch.func.functional_call(self.lstm, params, (x, state))
        return self.drop(h), state

    def loss(self, tokens, targets, state=None):
        h, state = self.hidden_states(tokens, state)
        return self.out(h.reshape(-1, h.shape[-1]), targets.reshape(-1)).loss, state

    def log_probs(self, h):
        """log p(word | h) for every word: (n, H) -> (n, V)."""
        return self.out.log_prob(h)

    def target_log_probs(self, h, targets):
        """log p(target | h): (n, H), (n,) -> (n,), without the full (n, V) table."""
        return self.out(h, targets).output

    def anneal(self, remaining):
        for m in self.mats.values():
            m.anneal(remaining)

    def lstm_parameters(self):
        """(stored, dense) parameters of the four LSTM weight matrices."""
        stored = sum(m.stored() for m in self.mats.values())
        dense = sum(m.rows * m.cols for m in self.mats.values())
        return stored, dense


def perplexity(target_log_probs):
    """exp of the mean negative log-likelihood of the predicted words (natural log)."""
    lp = np.asarray(target_log_probs, dtype=np.float64)
    if lp.size == 0:
        raise ValueError("perplexity of no words")
    return float(np.exp(-lp.mean()))


@torch.no_grad()
def evaluate(model, stream, batch=10, bptt=70):
    """Perplexity of `stream` (1-D word ids) the one way every method is measured: the stream cut
    into `batch` contiguous columns, each read left to right with the state carried over, every
    word after a column's first predicted from all words before it in the column; exact
    log-probabilities of the adaptive softmax (a normalized distribution over all V words)."""
    was = model.training
    model.eval()
    n = (len(stream) - 1) // batch
    data = torch.as_tensor(np.asarray(stream[: n * batch + 1], dtype=np.int64))
    x = data[:-1].view(batch, n)
    y = data[1:].view(batch, n)
    state, lps = None, []
    for i in range(0, n, bptt):
        h, state = model.hidden_states(x[:, i:i + bptt], state)
        lps.append(model.target_log_probs(h.reshape(-1, h.shape[-1]), y[:, i:i + bptt].reshape(-1)))
    model.train(was)
    return perplexity(torch.cat(lps).numpy())
