"""An independent NumPy LLaMA forward pass over a GGUF file, with llama.cpp's conventions.

It reads only the GGUF file (hyper-parameters from the ``llama.*`` keys, weights dequantized with
gguf-py) and undoes nothing: RoPE rotates *adjacent* pairs (x[2j], x[2j+1]) of each head, as
llama.cpp's ``rope`` (mode 0, used for LLaMA) does on the permuted Q/K projections.  If the exporter
forgot or botched the permutation, these logits stop matching the Hugging Face model's.
"""

from __future__ import annotations

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def read_gguf(path) -> tuple[dict, dict[str, np.ndarray]]:
    reader = GGUFReader(str(path))
    meta = {name: field.contents() for name, field in reader.fields.items()}
    weights = {}
    for t in reader.tensors:
        shape = tuple(int(n) for n in reversed(t.shape))  # GGUF lists ne0 (the row length) first
        weights[t.name] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    return meta, weights


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def _rope_interleaved(x: np.ndarray, base: float) -> np.ndarray:
    """x: (T, heads, d). Rotate pairs (2j, 2j+1) by pos * base^(-2j/d)."""
    T, _, d = x.shape
    theta = base ** (-np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(T, dtype=np.float64)[:, None] * theta[None, :]  # (T, d/2)
    cos, sin = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def _attention(h, W, i, n_head, n_kv, base):
    T = h.shape[0]
    q = (h @ W[f"blk.{i}.attn_q.weight"].T).reshape(T, n_head, -1)
    k = (h @ W[f"blk.{i}.attn_k.weight"].T).reshape(T, n_kv, -1)
    v = (h @ W[f"blk.{i}.attn_v.weight"].T).reshape(T, n_kv, -1)
    q, k = _rope_interleaved(q, base), _rope_interleaved(k, base)
    d = q.shape[-1]
    group = n_head // n_kv
    mask = np.triu(np.full((T, T), -np.inf), 1)
    out = np.empty_like(q)
    for hh in range(n_head):
        kv = hh // group
        s = q[:, hh] @ k[:, kv].T / np.sqrt(d) + mask
        p = np.exp(s - s.max(-1, keepdims=True))
        out[:, hh] = (p / p.sum(-1, keepdims=True)) @ v[:, kv]
    return out.reshape(T, -1) @ W[f"blk.{i}.attn_output.weight"].T


def forward(meta: dict, W: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """Logits (T, vocab) for the token ids."""
    eps = float(meta["llama.attention.layer_norm_rms_epsilon"])
    base = float(meta["llama.rope.freq_base"])
    n_head, n_kv = int(meta["llama.attention.head_count"]), int(meta["llama.attention.head_count_kv"])
    x = W["token_embd.weight"][ids].astype(np.float64)
    for i in range(int(meta["llama.block_count"])):
        x = x + _attention(_rms_norm(x, W[f"blk.{i}.attn_norm.weight"], eps), W, i, n_head, n_kv, base)
        h = _rms_norm(x, W[f"blk.{i}.ffn_norm.weight"], eps)
        gate = h @ W[f"blk.{i}.ffn_gate.weight"].T
        x = x + ((gate / (1 + np.exp(-gate))) * (h @ W[f"blk.{i}.ffn_up.weight"].T)) @ W[f"blk.{i}.ffn_down.weight"].T
    x = _rms_norm(x, W["output_norm.weight"], eps)
    return x @ W.get("output.weight", W["token_embd.weight"]).T
