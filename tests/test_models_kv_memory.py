"""Key-value memory model: Hebbian crosstalk theory, Box 3, decay gain."""

from __future__ import annotations

import pytest
import torch
from synaptic_fwp.models.kv_memory import (
    KeyValueMemory,
    hebbian_crosstalk_error,
    random_pairs,
    relative_error,
)


def test_hebbian_error_matches_crosstalk_theory():
    g = torch.Generator().manual_seed(0)
    N, P = 32, 16
    k, v = random_pairs(200, P, N, N, generator=g)
    W, _ = KeyValueMemory("hebbian").write(k, v)
    err = relative_error(KeyValueMemory.read(W, k), v).mean().item()
    assert err == pytest.approx(hebbian_crosstalk_error(P, N), rel=0.1)


def test_box3_one_hot_repeat():
    e = torch.tensor([[[0.0, 1.0, 0.0]]], dtype=torch.float64)
    val = torch.tensor([[[0.5, -2.0]]], dtype=torch.float64)
    for rule, kw, gain in (("hebbian", {}, 2.0), ("delta", {"eta": 1.0}, 1.0)):
        mem = KeyValueMemory(rule, **kw)
        W1, _ = mem.write(e, val)
        W2, _ = mem.write(e, val, W0=W1)
        assert torch.allclose(KeyValueMemory.read(W2, e), gain * val)


def test_states_stride_and_errors():
    k, v = random_pairs(2, 8, 4, 3)
    W, st = KeyValueMemory("delta", eta=0.5).write(k, v, stride=4)
    assert st.shape == (2, 2, 3, 4) and torch.allclose(st[:, -1], W)
    with pytest.raises(ValueError, match="takes no eta"):
        KeyValueMemory("hebbian", eta=0.5)
    with pytest.raises(ValueError, match="share"):
        KeyValueMemory("hebbian").write(k, v[:, :3])
