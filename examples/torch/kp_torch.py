"""Kronecker-product layers for PyTorch, in the forms kpgen compiles.

- `KPLinear`: y = (A ⊗ B) x (+ S x for doped KP), never expanding the product: x is viewed
  as an n1 x n2 matrix X and y = vec(A X Bᵀ), the same reshape-multiply kpgen emits.
- `HKPLinear`: hybrid KP, the first `dense_rows` rows of W kept dense, the rest A ⊗ B.
- `KPLSTM` / `KPGRU`: one-layer LSTM (PyTorch's gates i, f, g, o) and GRU (r, z, n) whose
  input and recurrent matrices are `KPLinear`s, and `KPClassifier`: one of them and a dense
  head.

Parameter names follow PyTorch's nn.LSTM / nn.Linear where they apply (`weight_ih_l0`,
`bias_hh_l0`, `head.weight`); a structured weight's factors are `<name>.A`, `<name>.B`, its
overlay's non-zeros `<name>.S.values`, `.S.rows`, `.S.cols` (int32, row-major; the spec
reads them as `dope: {shape, values, rows, cols}`) and hybrid rows `<name>.U` (a hybrid weight's product is `<name>.kp.A`,
`<name>.kp.B`). `kpgen_spec` writes the kpgen spec that reads exactly these names from the
exported .safetensors file (a hybrid weight as `{kron: [...], dense_rows: U}`).
"""

import torch
from torch import nn


class KPLinear(nn.Module):
    """W = A ⊗ B (m1 m2 x n1 n2), optionally doped: W = A ⊗ B + S with S zero off `mask`."""

    def __init__(self, m1, n1, m2, n2, dope_mask=None, scale=0.5):
        super().__init__()
        self.A = nn.Parameter(torch.randn(m1, n1) * scale / n1**0.5)
        self.B = nn.Parameter(torch.randn(m2, n2) * scale / n2**0.5)
        if dope_mask is not None:
            self.register_buffer("mask", dope_mask.to(torch.float32))
            self.S = nn.Parameter(torch.zeros(m1 * m2, n1 * n2))
        else:
            self.mask = None
            self.S = None

    @property
    def shape(self):
        (m1, n1), (m2, n2) = self.A.shape, self.B.shape
        return m1 * m2, n1 * n2

    def forward(self, x):
        # x: (batch, n1 n2) -> X: (batch, n1, n2); Y = A X Bᵀ -> (batch, m1 m2), row-major,
        # which matches numpy's kron: W[i1 m2 + i2, j1 n2 + j2] = A[i1, j1] B[i2, j2].
        (m1, n1), (m2, n2) = self.A.shape, self.B.shape
        X = x.reshape(-1, n1, n2)
        y = torch.matmul(torch.matmul(self.A, X), self.B.T).reshape(-1, m1 * m2)
        if self.S is not None:
            y = y + x @ (self.S * self.mask).T
        return y

    def dense(self):
        w = torch.kron(self.A, self.B)
        if self.S is not None:
            w = w + self.S * self.mask
        return w


class HKPLinear(nn.Module):
    """Hybrid KP: W = [U ; A ⊗ B], U the first `dense_rows` rows (dense), A ⊗ B the rest."""

    def __init__(self, dense_rows, cols, m1, n1, m2, n2, scale=0.5):
        super().__init__()
        assert n1 * n2 == cols
        self.U = nn.Parameter(torch.randn(dense_rows, cols) * scale / cols**0.5)
        self.kp = KPLinear(m1, n1, m2, n2, scale=scale)

    @property
    def shape(self):
        rows, cols = self.kp.shape
        return self.U.shape[0] + rows, cols

    def forward(self, x):
        return torch.cat([x @ self.U.T, self.kp(x)], dim=-1)

    def dense(self):
        return torch.cat([self.U, self.kp.dense()], dim=0)


def input_matrix(ih_shape, dense_rows):
    """The input matrix: KP of `ih_shape` (m1, n1, m2, n2), or with `dense_rows` R > 0 hybrid
    KP of the same size, R dense rows over (m1 - R / m2 x n1) ⊗ (m2 x n2)."""
    if not dense_rows:
        return KPLinear(*ih_shape)
    m1, n1, m2, n2 = ih_shape
    if dense_rows % m2 or not 0 < dense_rows < m1 * m2:
        raise SystemExit(
            f"--dense-rows {dense_rows}: expected a multiple of {m2} below {m1 * m2}"
        )
    return HKPLinear(dense_rows, n1 * n2, m1 - dense_rows // m2, n1, m2, n2)


class KPLSTM(nn.Module):
    """One LSTM layer, gates i, f, g, o as in nn.LSTM, with KP input and recurrent matrices."""

    def __init__(self, inputs, hidden, ih_shape, hh_shape, hh_dope_mask=None, ih_dense_rows=0):
        super().__init__()
        self.hidden = hidden
        self.weight_ih_l0 = input_matrix(ih_shape, ih_dense_rows)
        self.weight_hh_l0 = KPLinear(*hh_shape, dope_mask=hh_dope_mask)
        assert self.weight_ih_l0.shape == (4 * hidden, inputs)
        assert self.weight_hh_l0.shape == (4 * hidden, hidden)
        self.bias_ih_l0 = nn.Parameter(torch.zeros(4 * hidden))
        self.bias_hh_l0 = nn.Parameter(torch.zeros(4 * hidden))
        with torch.no_grad():
            self.bias_ih_l0[hidden : 2 * hidden] = 1.0  # forget-gate bias, the usual start

    def forward(self, x, lengths=None):
        """x: (batch, steps, inputs); returns the last valid hidden state (batch, hidden)."""
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.hidden)
        c = x.new_zeros(batch, self.hidden)
        for t in range(steps):
            gates = (
                self.weight_ih_l0(x[:, t])
                + self.bias_ih_l0
                + self.weight_hh_l0(h)
                + self.bias_hh_l0
            )
            i, f, g, o = gates.chunk(4, dim=-1)
            c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h_new = torch.sigmoid(o) * torch.tanh(c_new)
            if lengths is None:
                h, c = h_new, c_new
            else:
                keep = (t < lengths).unsqueeze(-1)
                h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        return h


class KPGRU(nn.Module):
    """One GRU layer, gates r, z, n as in nn.GRU, with KP input and recurrent matrices:
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h."""

    def __init__(self, inputs, hidden, ih_shape, hh_shape, hh_dope_mask=None, ih_dense_rows=0):
        super().__init__()
        self.hidden = hidden
        self.weight_ih_l0 = input_matrix(ih_shape, ih_dense_rows)
        self.weight_hh_l0 = KPLinear(*hh_shape, dope_mask=hh_dope_mask)
        assert self.weight_ih_l0.shape == (3 * hidden, inputs)
        assert self.weight_hh_l0.shape == (3 * hidden, hidden)
        self.bias_ih_l0 = nn.Parameter(torch.zeros(3 * hidden))
        self.bias_hh_l0 = nn.Parameter(torch.zeros(3 * hidden))

    def forward(self, x, lengths=None):
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.hidden)
        for t in range(steps):
            zi = self.weight_ih_l0(x[:, t]) + self.bias_ih_l0
            zh = self.weight_hh_l0(h) + self.bias_hh_l0
            (ri, zzi, ni), (rh, zzh, nh) = zi.chunk(3, dim=-1), zh.chunk(3, dim=-1)
            r, z = torch.sigmoid(ri + rh), torch.sigmoid(zzi + zzh)
            h_new = (1 - z) * torch.tanh(ni + r * nh) + z * h
            h = h_new if lengths is None else torch.where((t < lengths).unsqueeze(-1), h_new, h)
        return h


class KPClassifier(nn.Module):
    """A KP (DKP) LSTM or GRU + dense head: the shape of kpgen's bundled examples. The
    recurrent layer is `self.lstm` or `self.gru`, as nn.Module names it in the exported file."""

    def __init__(
        self,
        inputs,
        hidden,
        classes,
        ih_shape,
        hh_shape,
        hh_dope_mask=None,
        cell="lstm",
        ih_dense_rows=0,
    ):
        super().__init__()
        self.cell = cell
        layer = {"lstm": KPLSTM, "gru": KPGRU}[cell]
        setattr(
            self,
            cell,
            layer(inputs, hidden, ih_shape, hh_shape, hh_dope_mask, ih_dense_rows),
        )
        self.head = nn.Linear(hidden, classes)

    @property
    def recurrent(self):
        return getattr(self, self.cell)

    def forward(self, x, lengths=None):
        return self.head(self.recurrent(x, lengths))


def tensors(model: KPClassifier):
    """The exported tensors, by name (float32, contiguous)."""
    out = {}
    for name, p in model.named_parameters():
        out[name] = p.detach().to(torch.float32).contiguous()
    for name, m in model.named_modules():
        if isinstance(m, KPLinear) and m.S is not None:
            # The overlay as its non-zeros (coordinates, row-major), kpgen's explicit sparse form.
            # (The full-size parameter, unmasked, is not exported.)
            out.pop(f"{name}.S")
            s = (m.S * m.mask).detach().to(torch.float32).to_sparse_coo().coalesce()
            out[f"{name}.S.values"] = s.values().contiguous()
            out[f"{name}.S.rows"] = s.indices()[0].to(torch.int32).contiguous()
            out[f"{name}.S.cols"] = s.indices()[1].to(torch.int32).contiguous()
    return out


def kpgen_spec(name, model: KPClassifier, inputs, steps, weights_file):
    """The kpgen spec reading `weights_file` (a .safetensors of `tensors(model)`)."""
    cell, layer = model.cell, model.recurrent
    f = f"{weights_file}:{cell}"
    hh = f"{{kron: [{f}.weight_hh_l0.A, {f}.weight_hh_l0.B]"
    if layer.weight_hh_l0.S is not None:
        S, w = layer.weight_hh_l0.S, f"{f}.weight_hh_l0.S"
        hh += (f", dope: {{shape: [{S.shape[0]}, {S.shape[1]}], values: {w}.values, "
               f"rows: {w}.rows, cols: {w}.cols}}")
    hh += "}"
    if isinstance(layer.weight_ih_l0, HKPLinear):
        w = f"{f}.weight_ih_l0"
        ih = f"{{kron: [{w}.kp.A, {w}.kp.B], dense_rows: {w}.U}}"
    else:
        ih = f"{{kron: [{f}.weight_ih_l0.A, {f}.weight_ih_l0.B]}}"
    return f"""# Exported from PyTorch by examples/torch/train_export.py.
name: {name}
input: {{features: {inputs}, steps: {steps}}}
layers:
  - kind: {cell}
    units: {layer.hidden}
    w_ih: {ih}
    w_hh: {hh}
    b_ih: {f}.bias_ih_l0
    b_hh: {f}.bias_hh_l0
  - kind: dense
    units: {model.head.out_features}
    w: {weights_file}:head.weight
    b: {weights_file}:head.bias
    activation: none
"""
