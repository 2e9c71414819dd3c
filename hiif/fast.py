"""Fast decoders: the same functions as ``model.query_points``, reorganised for speed.

The decoders in :mod:`hiif.models.decoders` follow the official code line by line and serve as the
oracle. The classes here compute the same outputs (float32: within ~1e-5, tested against the
oracle in ``tests/test_fast.py``) with less arithmetic and fewer memory passes:

- all methods: the four local-ensemble neighbours are decoded in one batched MLP call; features are
  gathered by index from one channels-last table; on CPU the linear layers run through oneDNN with
  the activation (ReLU / exact GELU) or the residual add fused into the matrix product.
- LIIF: the first MLP layer applied to the 3×3-unfolded feature is a 3×3 convolution, computed once
  at LR resolution (``table = conv(feat, W1[:, :576]) + b1``); per query only the relative
  coordinate and cell columns remain (a rank-3 update). The 580→256 layer disappears from the
  per-query cost.
- LTE: coefficient and (de-interleaved) frequency convolutions form one 512-channel table; the cell
  phase is computed once per call. Its per-query work is the MLP's three 256×256 products, the same
  as the oracle's (no algebraic shortcut exists past the cos/sin), so LTE gains least.
- HIIF: LayerNorm(1028) + Linear(1028→256) of level 0 is evaluated algebraically. With
  ``W' = W·diag(γ)``, ``fc1(LN(x)) = rstd·(W'x − μ·W'1) + (Wβ + b)`` and
  ``W'x = Σ_n w_n·P_n[idx_n] + (cell and bit columns)``, where ``P_n = W'_n·f`` is precomputed per LR
  pixel for each neighbour slot and μ, σ come from per-pixel Σf and Σf² (float64). With the
  attention statistics ``kv`` given, an attention block ``proj1(q·kv + x)`` is one linear map of
  ``x``: ``W_p1·(BDᵀ·W_q + I)`` (BD = block-diagonal kv), so a block costs two 256×256 products
  instead of five; a statistics pass only computes k and v (with the per-head mean folded into
  the weights).

Only the official configurations are covered (LIIF with unfold/cell/ensemble, LTE, HIIF without
level shortcuts); :func:`fast_decoder` returns ``None`` for anything else and the engine then uses
the oracle.
"""
from __future__ import annotations

import math
import os
import sys
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .models.common import EPS_SHIFT, NEIGHBOUR_SHIFTS, bilinear_skip, nearest_index, pixel_centres

#: HIIF level-0 tables (4 × 256 floats per LR pixel) are built up to this size; beyond it level 0
#: gathers features and runs the 1028-wide LayerNorm + Linear per query (same result, slower).
HIIF_TABLE_BYTES = 1 << 30
#: feature maps above this many pixels go through their table convolution in bands of rows of
#: about this size (a band's temporaries: ~2 × 512 floats a pixel with LTE, 0.5 GB)
CONV_BAND_PIXELS = 1 << 18
#: HIIF attention statistics are summed in float32 over aligned blocks of this many queries
KV_BLOCK = 256

_ONEDNN: bool | None = None
_ALLOCATOR_TUNED: bool | None = None

#: glibc malloc settings applied by :func:`tune_allocator` (bytes)
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20


def tune_allocator() -> bool:
    """Keep freed tensor memory in the heap instead of returning it to the OS (Linux/glibc).

    The decoders allocate and free many temporaries of 1–32 MB per chunk. glibc serves blocks
    above its mmap threshold (dynamic, 128 kB–32 MB) with fresh ``mmap`` pages and trims the heap
    beyond 2× that threshold, so each chunk pays page faults on memory it just freed: measured here
    as 25–45 % of LTE's decoding time. Raising the mmap threshold to 64 MB and the trim threshold
    to 256 MB removes that (the process keeps up to 256 MB of freed memory for reuse).
    Process-wide, applied once; disable with ``HIIF_TUNE_MALLOC=0``. Returns whether applied.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED is None:
        _ALLOCATOR_TUNED = False
        if os.environ.get("HIIF_TUNE_MALLOC", "1") != "0" and sys.platform.startswith("linux"):
            try:
                import ctypes
                libc = ctypes.CDLL("libc.so.6")
                m_trim_threshold, m_mmap_threshold = -1, -3
                _ALLOCATOR_TUNED = bool(libc.mallopt(m_mmap_threshold, MMAP_THRESHOLD)
                                        and libc.mallopt(m_trim_threshold, TRIM_THRESHOLD))
            except (OSError, AttributeError):  # not glibc
                pass
    return _ALLOCATOR_TUNED


def onednn_linear_available() -> bool:
    """Whether oneDNN's fused linear (``torch.ops.mkldnn._linear_pointwise``) works here."""
    global _ONEDNN
    if _ONEDNN is None:
        try:
            op = torch.ops.mkldnn._linear_pointwise
            x, w, b = torch.randn(5, 7), torch.randn(3, 7), torch.randn(3)
            ok = torch.allclose(op(x, w, b, "relu", [], ""), F.relu(F.linear(x, w, b)), atol=1e-5)
            ok &= torch.allclose(op(x, w, b, "gelu", [], "none"), F.gelu(F.linear(x, w, b)), atol=1e-5)
            ok &= torch.allclose(op.binary(x, b.expand(5, 3).contiguous(), w, b, "add"),
                                 F.linear(x, w, b) + b, atol=1e-5)
            _ONEDNN = bool(ok) and torch.backends.mkldnn.is_available()
        except Exception:  # noqa: BLE001 - any failure means: use the plain path
            _ONEDNN = False
    return _ONEDNN


class Lin:
    """A frozen linear layer with fused activation / residual; weights cached per dtype."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        self.weight = weight.detach().float().contiguous()
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self._cast: dict[tuple, tuple[Tensor, Tensor | None]] = {}

    def params(self, like: Tensor) -> tuple[Tensor, Tensor | None]:
        key = (like.dtype, like.device)
        if key not in self._cast:
            b = None if self.bias is None else self.bias.to(like.device, like.dtype)
            self._cast[key] = (self.weight.to(like.device, like.dtype).contiguous(), b)
        return self._cast[key]

    def __call__(self, x: Tensor, act: str = "none", residual: Tensor | None = None) -> Tensor:
        if x.shape[0] == 1:  # one row takes a matrix-vector kernel that rounds differently
            res = None if residual is None else residual.expand(2, -1)
            return self(x.expand(2, -1), act, res)[:1]
        w, b = self.params(x)
        if (x.device.type == "cpu" and x.dtype in (torch.float32, torch.bfloat16)
                and onednn_linear_available()):
            op = torch.ops.mkldnn._linear_pointwise
            if residual is not None:
                return op.binary(x, residual.to(x.dtype).contiguous(), w, b, "add")
            return op(x, w, b, act, [], "none" if act == "gelu" else "")
        y = F.linear(x, w, b)
        if act == "relu":
            y = F.relu(y)
        elif act == "gelu":
            y = F.gelu(y)
        return y + residual if residual is not None else y


def neighbours4(coord: Tensor, feat_hw: tuple[int, int],
                centre_hw: tuple[int, int] | None = None) -> tuple[Tensor, Tensor]:
    """The four local-ensemble neighbours of ``coord`` (Q, 2) at once: flat indices (4, Q) and
    relative coordinates (4, Q, 2), bit-identical to :func:`hiif.models.common.local_neighbours`."""
    h, w = feat_hw
    ch, cw = centre_hw or feat_hw
    rx, ry = 2 / h / 2, 2 / w / 2
    shifts = torch.tensor([[vx * rx + EPS_SHIFT, vy * ry + EPS_SHIFT] for vx, vy in NEIGHBOUR_SHIFTS],
                          dtype=coord.dtype, device=coord.device)
    shifted = (coord.unsqueeze(0) + shifts.unsqueeze(1)).clamp_(-1 + 1e-6, 1 - 1e-6)
    iy, ix = nearest_index(shifted[..., 0], h), nearest_index(shifted[..., 1], w)
    if (ch, cw) == (h, w):
        cy, cx = iy, ix
    else:
        cy, cx = nearest_index(shifted[..., 0], ch), nearest_index(shifted[..., 1], cw)
    rows, cols = pixel_centres(ch, coord.device), pixel_centres(cw, coord.device)
    centre = torch.stack([rows[cy], cols[cx]], dim=-1)
    return iy * w + ix, coord.unsqueeze(0) - centre


def area_weights(rel: Tensor) -> Tensor:
    """(4, Q, 2) scaled relative coordinates -> (4, Q) ensemble weights (diagonal swap)."""
    areas = torch.abs(rel[..., 0] * rel[..., 1]) + 1e-9
    return areas.flip(0) / areas.sum(dim=0)


def _scale(t: Tensor, h: float, w: float) -> Tensor:
    return t * torch.tensor([h, w], dtype=t.dtype, device=t.device)


def conv3x3_flat(feat: Tensor, weight: Tensor, bias: Tensor,
                 band_pixels: int = CONV_BAND_PIXELS) -> Tensor:
    """``conv2d(feat, weight, bias, padding=1)`` of a (1, C, h, w) map as a channels-last
    (h·w, n) table. Maps above ``band_pixels`` are convolved in bands of rows (each with its
    neighbour rows, zeros at the image's edges) written straight into the table, so that no
    full-size (n, h, w) copy exists besides it: large tiled encodes stay within their estimate."""
    dev = feat.device
    weight, bias = weight.to(dev), bias.to(dev)
    _, _, h, w = feat.shape
    n = weight.shape[0]
    if h * w <= band_pixels:
        out = F.conv2d(feat, weight, bias, padding=1)
        return out[0].permute(1, 2, 0).reshape(h * w, n).contiguous()
    table = feat.new_empty(h * w, n)
    band = max(1, band_pixels // w)
    for top in range(0, h, band):
        bottom = min(h, top + band)
        rows = feat[..., max(0, top - 1):min(h, bottom + 1), :]
        rows = F.pad(rows, (0, 0, 1 if top == 0 else 0, 1 if bottom == h else 0))
        out = F.conv2d(rows, weight, bias, padding=(0, 1))
        table[top * w:bottom * w] = out[0].permute(1, 2, 0).reshape(-1, n)
    return table


def conv_table(feat: Tensor, inp: Tensor, weight: Tensor, bias: Tensor) -> dict[str, Tensor]:
    """One 3×3 conv of the encoder features into a channels-last (h·w, n) lookup table."""
    _, _, h, w = feat.shape
    return {"inp": inp, "table": conv3x3_flat(feat, weight, bias), "hw": torch.tensor([h, w])}


class FastDecoder:
    """Common interface. ``encode(inp) -> tables`` (the model's encoder, then
    ``features_from(feat, inp)``); ``query(tables, coord (Q, 2), cell (2,), dtype) -> (Q, 3)`` in
    float32 (normalised space, as ``model.query_points``)."""

    method = ""
    mixes_queries = False

    def __init__(self, model: nn.Module):
        self.model = model

    @staticmethod
    def fingerprint(model: nn.Module) -> tuple:
        """Identity and version counter of every parameter (in-place updates bump it; tensors
        made under ``torch.inference_mode`` have none and count as unchanged)."""
        out = []
        for p in model.parameters():
            try:
                version = p._version
            except RuntimeError:  # inference tensor
                version = -1
            out.append((p.data_ptr(), version))
        return tuple(out)

    def encode(self, inp: Tensor) -> dict[str, Tensor]:
        return self.features_from(self.model.encoder(inp), inp)

    def features_from(self, feat: Tensor, inp: Tensor) -> dict[str, Tensor]:
        """The lookup tables from the encoder's map ``feat`` (1, C, h, w) of ``inp``."""
        raise NotImplementedError

    def query(self, tables: dict[str, Tensor], coord: Tensor, cell: Tensor,
              dtype: torch.dtype = torch.float32) -> Tensor:
        raise NotImplementedError


class FastLIIF(FastDecoder):
    method = "liif"

    def __init__(self, model: nn.Module):
        super().__init__(model)
        layers = [m for m in model.imnet.layers if isinstance(m, nn.Linear)]
        c = model.encoder.out_dim
        w1 = layers[0].weight.detach().float()
        self.conv_weight = w1[:, :c * 9].reshape(-1, c, 3, 3).contiguous()
        self.conv_bias = layers[0].bias.detach().float()
        self.rel_weight = w1[:, c * 9:c * 9 + 2].t().contiguous()  # (2, 256)
        self.cell_weight = w1[:, c * 9 + 2:c * 9 + 4].t().contiguous()  # (2, 256)
        self.hidden = [Lin(m.weight, m.bias) for m in layers[1:-1]]
        self.last = Lin(layers[-1].weight, layers[-1].bias)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        return (model.feat_unfold and model.cell_decode and model.local_ensemble
                and model.imnet is not None and len(model.imnet.layers) >= 3)

    def features_from(self, feat: Tensor, inp: Tensor) -> dict[str, Tensor]:
        return conv_table(feat, inp, self.conv_weight, self.conv_bias)

    def query(self, tables: dict[str, Tensor], coord: Tensor, cell: Tensor,
              dtype: torch.dtype = torch.float32) -> Tensor:
        table = tables["table"]
        h, w = (int(v) for v in tables["hw"])
        q = coord.shape[0]
        idx, rel = neighbours4(coord, (h, w))
        rel = _scale(rel, h, w)
        dev = table.device
        cell_term = _scale(cell.view(1, 2).float(), h, w) @ self.cell_weight.to(dev)
        update = torch.cat([self.rel_weight.to(dev), cell_term], dim=0)  # (3, 256)
        aux = torch.cat([rel, rel.new_ones(4, q, 1)], dim=-1).view(4 * q, 3)
        x = table.index_select(0, idx.view(-1))
        x.addmm_(aux, update).relu_()
        x = x.to(dtype)
        for lin in self.hidden:
            x = lin(x, "relu")
        pred = self.last(x).float().view(4, q, -1)
        return (pred * area_weights(rel).unsqueeze(-1)).sum(dim=0)


class FastLTE(FastDecoder):
    method = "lte"

    def __init__(self, model: nn.Module):
        super().__init__(model)
        fw, fb = model.freq.weight.detach().float(), model.freq.bias.detach().float()
        # one conv: [coef | freq (row terms) | freq (col terms)], freq de-interleaved
        self.conv_weight = torch.cat([model.coef.weight.detach().float(), fw[0::2], fw[1::2]]).contiguous()
        self.conv_bias = torch.cat([model.coef.bias.detach().float(), fb[0::2], fb[1::2]]).contiguous()
        self.phase_weight = model.phase.weight.detach().float().t().contiguous()  # (2, 128)
        self.n_coef = model.coef.out_channels
        layers = [m for m in model.imnet.layers if isinstance(m, nn.Linear)]
        self.hidden = [Lin(m.weight, m.bias) for m in layers[:-1]]
        self.last = Lin(layers[-1].weight, layers[-1].bias)

    @staticmethod
    def supports(model: nn.Module) -> bool:
        return model.phase.bias is None and model.coef.out_channels == model.freq.out_channels

    def features_from(self, feat: Tensor, inp: Tensor) -> dict[str, Tensor]:
        return conv_table(feat, inp, self.conv_weight, self.conv_bias)

    def query(self, tables: dict[str, Tensor], coord: Tensor, cell: Tensor,
              dtype: torch.dtype = torch.float32) -> Tensor:
        table, inp = tables["table"], tables["inp"]
        h, w = (int(v) for v in tables["hw"])
        q, nc = coord.shape[0], self.n_coef
        # official quirk: cell centres from the input grid (differs with SwinIR's padding)
        idx, rel = neighbours4(coord, (h, w), centre_hw=tuple(inp.shape[-2:]))
        rel = _scale(rel, h, w)
        phase = _scale(cell.view(1, 2).float(), h, w) @ self.phase_weight.to(table.device)  # (1, 128)
        x = fourier_features(table, idx.view(-1), rel.view(4 * q, 2), phase, nc).to(dtype)
        for lin in self.hidden:
            x = lin(x, "relu")
        pred = self.last(x).float().view(4, q, -1)
        out = (pred * area_weights(rel).unsqueeze(-1)).sum(dim=0)
        return out + bilinear_skip(inp, coord.unsqueeze(0))[0]


def fourier_features(table: Tensor, index: Tensor, rel: Tensor, phase: Tensor, n_coef: int) -> Tensor:
    """LTE's decoder input for gathered table rows ``[coef | f_row | f_col]``:
    ``coef ⊙ [cos, sin](π·(f_row·rel_y + f_col·rel_x + phase))`` -> (N, n_coef)."""
    half = n_coef // 2
    g = table.index_select(0, index)
    # same association as the official code: ((f_row·y + f_col·x) + phase)·π; the phases are
    # large and LTE's output is sensitive to their rounding
    f = g[:, n_coef:n_coef + half] * rel[:, :1]
    f += g[:, n_coef + half:] * rel[:, 1:]  # (addcmul_ rounds differently: up to 5e-5 off)
    f += phase
    f *= math.pi
    x = torch.cat([torch.cos(f), torch.sin(f)], dim=1)  # (cos/sin written into halves: slower)
    return x.mul_(g[:, :n_coef])


def hierarchical_bits(local: Tensor, level: int) -> Tensor:
    clipped = torch.clip(local - 1e-9, 0.0, 1.0)
    return (clipped * 2 ** (level + 1)).floor() % 2


class FastHIIF(FastDecoder):
    """HIIF in stages, so that the engine can run statistics passes and cache activations:
    ``level0`` -> ``block(i, x, kv)`` (×2) -> ``tail``; ``kv_sum(i, x)`` for statistics."""

    method = "hiif"
    mixes_queries = True

    def __init__(self, model: nn.Module, table_bytes: int = HIIF_TABLE_BYTES):
        super().__init__(model)
        self.table_bytes = table_bytes
        fc0 = model.fc_layers[0]
        self.dim = model.freq.out_channels
        d = self.dim
        w = fc0.fc1.weight.detach().double()
        gamma, beta = fc0.norm.weight.detach().double(), fc0.norm.bias.detach().double()
        wp = w * gamma  # W' = W·diag(γ)
        self.ln0_eps = fc0.norm.eps
        self.ln0_dim = fc0.norm.normalized_shape[0]
        # (256, 4·256): f @ slot_weight = [P_0 | P_1 | P_2 | P_3], P_n = W'_n·f
        self.slot_weight = torch.cat([wp[:, n * d:(n + 1) * d] for n in range(4)]).t().contiguous().float()
        self.cell_cols = wp[:, 4 * d:4 * d + 2].t().contiguous()  # (2, 256) float64
        # rows of the per-query rank-5 update: −μ·rstd, b0·rstd, b1·rstd, rstd, 1
        self.fc0_update_fixed = torch.stack([wp.sum(dim=1), wp[:, 4 * d + 2], wp[:, 4 * d + 3]]).float()
        self.fc0_const = (w @ beta + fc0.fc1.bias.detach().double()).float()
        self.fc0_direct = (fc0.norm, Lin(fc0.fc1.weight, fc0.fc1.bias))
        self.fc0_out = Lin(fc0.fc2.weight, fc0.fc2.bias)
        self.levels = []
        for layer in model.fc_layers[1:]:
            self.levels.append((layer.norm, Lin(layer.fc1.weight, layer.fc1.bias),
                                Lin(layer.fc2.weight, layer.fc2.bias)))
        self.blocks = []
        for blk in model.attention_blocks:
            heads, hd = blk.heads, blk.head_dim
            wqkv = blk.qkv_proj.weight.detach().double().view(heads, 3, hd, -1)
            bqkv = blk.qkv_proj.bias.detach().double().view(heads, 3, hd)
            wk, wv = wqkv[:, 1], wqkv[:, 2]
            bk, bv = bqkv[:, 1], bqkv[:, 2]
            kv_w = torch.cat([(wk - wk.mean(1, keepdim=True)).reshape(heads * hd, -1),
                              (wv - wv.mean(1, keepdim=True)).reshape(heads * hd, -1)])
            kv_b = torch.cat([(bk - bk.mean(1, keepdim=True)).reshape(-1),
                              (bv - bv.mean(1, keepdim=True)).reshape(-1)])
            self.blocks.append({
                "heads": heads, "hd": hd,
                "wq": wqkv[:, 0].reshape(heads * hd, -1), "bq": bqkv[:, 0].reshape(-1),
                "wp1": blk.proj1.weight.detach().double(), "bp1": blk.proj1.bias.detach().double(),
                "proj2": Lin(blk.proj2.weight, blk.proj2.bias),
                "kv": Lin(kv_w, kv_b),
                # LN(k), LN(v): shared normalisation, then per-tensor affine (2, 1, hd)
                "gamma": torch.stack([blk.kln.weight, blk.vln.weight]).detach().float()[:, None],
                "beta": torch.stack([blk.kln.bias, blk.vln.bias]).detach().float()[:, None],
                "eps": blk.kln.eps,
            })

    @staticmethod
    def supports(model: nn.Module) -> bool:
        layers = model.fc_layers
        return (layers[0].fc1.in_features == 4 * model.freq.out_channels + 4
                and all(l.fc2.out_features != l.fc1.in_features for l in layers)
                and len(model.attention_blocks) == 2
                and all(b.kln.eps == b.vln.eps for b in model.attention_blocks))

    # -- per image -----------------------------------------------------------------------------
    def builds_tables(self, h: int, w: int) -> bool:
        """Whether ``encode`` of an h×w feature map builds the per-pixel lookup tables (4 × dim
        float32 a pixel) by default: while they fit ``table_bytes``. The engine's memory
        estimate asks the same question."""
        return h * w * 4 * self.dim * 4 <= self.table_bytes

    def encode(self, inp: Tensor, tables: bool | None = None) -> dict[str, Tensor]:
        return self.features_from(self.model.encoder(inp), inp, tables)

    def features_from(self, feat: Tensor, inp: Tensor, tables: bool | None = None) -> dict[str, Tensor]:
        _, _, h, w = feat.shape
        freq = self.model.freq
        flat = conv3x3_flat(feat, freq.weight.detach(), freq.bias.detach())
        out = {"inp": inp, "feat": flat, "hw": torch.tensor([h, w])}
        if tables is None:
            tables = self.builds_tables(h, w)
        if tables:
            slots = flat @ self.slot_weight.to(flat.device)  # (h·w, 4·fc1 width)
            out["slots"] = slots.view(h * w * 4, slots.shape[1] // 4)
            s1 = torch.empty(h * w, dtype=torch.float64, device=flat.device)
            s2 = torch.empty_like(s1)
            for a in range(0, h * w, 16384):  # per-pixel Σf, Σf² in float64, in row blocks
                f64 = flat[a:a + 16384].double()
                s1[a:a + 16384] = f64.sum(dim=1)
                s2[a:a + 16384] = f64.square_().sum(dim=1)
            out["s1"], out["s2"] = s1, s2
        return out

    # -- stages --------------------------------------------------------------------------------
    def level0(self, tables: dict[str, Tensor], coord: Tensor, cell: Tensor,
               dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
        """Level-0 output (Q, 256) and the in-cell position ``local`` (Q, 2)."""
        feat = tables["feat"]
        h, w = (int(v) for v in tables["hw"])
        q = coord.shape[0]
        dev = feat.device
        idx, rel = neighbours4(coord, (h, w))
        rel = _scale(rel, h / 2, w / 2)
        wts = area_weights(rel)  # (4, Q)
        first = rel[0]
        positive = (first > 0).float()
        half_cell = torch.tensor([1 / h, 1 / w], device=dev)[None, :]
        local = positive * first + (1.0 - positive) * (half_cell - first)
        bits = hierarchical_bits(local, 0)  # (Q, 2)
        rel_cell = _scale(cell.view(1, 2).float(), h, w)
        if "slots" in tables:
            n = self.ln0_dim
            w64 = wts.double()
            s1, s2 = tables["s1"][idx], tables["s2"][idx]  # (4, Q) float64
            b64, rc = bits.double(), rel_cell.double()
            mu = ((w64 * s1).sum(0) + rc.sum() + b64.sum(1)) / n
            ex2 = ((w64 * w64 * s2).sum(0) + rc.square().sum() + b64.sum(1)) / n
            rstd = torch.rsqrt((ex2 - mu * mu).clamp_min(0) + self.ln0_eps)
            aux = torch.stack([-mu * rstd, b64[:, 0] * rstd, b64[:, 1] * rstd, rstd,
                               torch.ones_like(rstd)], dim=1).float()
            update = torch.cat([self.fc0_update_fixed.to(dev),
                                (rc @ self.cell_cols.to(dev)).float(),
                                self.fc0_const.to(dev)[None]])  # (5, 256)
            # Σ_n (w_n·rstd)·P_n[idx_n]: gather and weighted sum in one pass
            slot_idx = idx.t() * 4 + torch.arange(4, device=dev)
            y = F.embedding_bag(slot_idx, tables["slots"], mode="sum",
                                per_sample_weights=(wts.t() * aux[:, 3:4]).contiguous())
            y = F.gelu(y.addmm_(aux, update))
        else:
            norm, fc1 = self.fc0_direct
            g = feat.index_select(0, idx.view(-1)).view(4, q, -1) * wts.unsqueeze(-1)
            x = torch.cat([g[0], g[1], g[2], g[3], rel_cell.expand(q, 2), bits], dim=-1)
            y = fc1(F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps), "gelu")
        return self.fc0_out(y.to(dtype)), local

    def attention_map(self, i: int, kv_mean: Tensor) -> Lin:
        """``proj1(q·kv + x)`` of block ``i`` as one linear map of ``x`` (kv: (heads, hd, hd))."""
        blk = self.blocks[i]
        kv = kv_mean.detach().double().to(blk["wq"].device).reshape(blk["heads"], blk["hd"], blk["hd"])
        bd = torch.block_diag(*kv)  # (256, 256): mixed = q @ bd
        dim = bd.shape[0]
        weight = blk["wp1"] @ (bd.t() @ blk["wq"] + torch.eye(dim, dtype=torch.float64, device=bd.device))
        bias = blk["wp1"] @ (bd.t() @ blk["bq"]) + blk["bp1"]
        return Lin(weight.float(), bias.float())

    def block(self, i: int, x: Tensor, mixer: Lin) -> Tensor:
        """Attention block ``i`` with its statistics folded into ``mixer`` (:meth:`attention_map`)."""
        return self.blocks[i]["proj2"](mixer(x, "gelu"), residual=x)

    def kv_terms(self, i: int, x: Tensor) -> tuple[Tensor, Tensor]:
        """LN(k), LN(v) of block ``i`` for these queries: (Q, heads, hd) each, float32."""
        blk = self.blocks[i]
        heads, hd = blk["heads"], blk["hd"]
        # k, v with the per-head mean folded out of the weights: LN needs only the variance
        kv = blk["kv"](x).float().view(-1, 2, heads, hd)
        var = torch.linalg.vector_norm(kv, dim=-1, keepdim=True).square_().div_(hd)
        scale = torch.rsqrt(var.add_(blk["eps"])) * blk["gamma"].to(x.device)
        kv = torch.addcmul(blk["beta"].to(x.device), kv, scale)
        return kv[:, 0], kv[:, 1]

    def kv_accumulator(self, i: int) -> "KVSum":
        return KVSum(self.blocks[i]["heads"], self.blocks[i]["hd"])

    def tail(self, tables: dict[str, Tensor], x: Tensor, local: Tensor, coord: Tensor) -> Tensor:
        for level, (norm, fc1, fc2) in enumerate(self.levels, start=1):
            z = torch.cat([x, hierarchical_bits(local, level).to(x.dtype)], dim=-1)
            z = F.layer_norm(z, norm.normalized_shape, norm.weight.to(z.dtype), norm.bias.to(z.dtype),
                             norm.eps)
            x = fc2(fc1(z, "gelu"))
        return x.float() + bilinear_skip(tables["inp"], coord.unsqueeze(0))[0]

    def query(self, tables: dict[str, Tensor], coord: Tensor, cell: Tensor,
              dtype: torch.dtype = torch.float32, kv_means: Sequence[Tensor] | None = None) -> Tensor:
        """Like ``model.query_points``: without ``kv_means`` the attention mixes these queries."""
        x, local = self.level0(tables, coord, cell, dtype)
        for i in range(len(self.blocks)):
            if kv_means is None:
                acc = self.kv_accumulator(i)
                acc.add(*self.kv_terms(i, x))
                mixer = self.attention_map(i, acc.mean())
            else:
                mixer = self.attention_map(i, kv_means[i])
            x = self.block(i, x, mixer)
        return self.tail(tables, x, local, coord)


class KVSum:
    """Running Σ_q LN(k_q)ᵀ LN(v_q) per head over queries fed in grid order, in any chunks.

    Sums are taken in float32 over consecutive blocks of ``KV_BLOCK`` queries counted from the
    first query fed (a partial block waits for the next chunk) and added in float64, so the
    result does not depend on how the queries were chunked: renders are pixel-identical whatever
    the chunk size.
    """

    def __init__(self, heads: int, head_dim: int):
        self.heads, self.hd = heads, head_dim
        self.total: Tensor | None = None
        self.count = 0
        self._pending: list[tuple[Tensor, Tensor]] = []

    def _reduce(self, k: Tensor, v: Tensor) -> None:
        """k, v: (n·B, heads, hd) with B = KV_BLOCK, or one partial block."""
        bs = min(KV_BLOCK, k.shape[0])
        nb = k.shape[0] // bs
        kb = k.reshape(nb, bs, self.heads, self.hd).permute(0, 2, 3, 1).reshape(nb * self.heads, self.hd, bs)
        vb = v.reshape(nb, bs, self.heads, self.hd).permute(0, 2, 1, 3).reshape(nb * self.heads, bs, self.hd)
        part = torch.bmm(kb, vb).view(nb, self.heads, self.hd, self.hd).double().sum(dim=0)
        self.total = part if self.total is None else self.total + part

    def add(self, k: Tensor, v: Tensor) -> None:
        self.count += k.shape[0]
        if self._pending:
            k = torch.cat([p[0] for p in self._pending] + [k])
            v = torch.cat([p[1] for p in self._pending] + [v])
            self._pending = []
        full = k.shape[0] // KV_BLOCK * KV_BLOCK
        if full:
            self._reduce(k[:full], v[:full])
        if full < k.shape[0]:
            self._pending.append((k[full:].clone(), v[full:].clone()))

    def mean(self) -> Tensor:
        """(heads, hd, hd) float64 mean over all queries fed."""
        if self._pending:
            k, v = self._pending[0]
            self._pending = []
            self._reduce(k, v)
        return self.total / self.count


def fast_decoder(model: nn.Module | None) -> FastDecoder | None:
    """The fast decoder for ``model``, or None when its configuration is not covered."""
    method = getattr(model, "method", None)
    cls = {"liif": FastLIIF, "lte": FastLTE, "hiif": FastHIIF}.get(method)
    if cls is None or not cls.supports(model):
        return None
    return cls(model)
