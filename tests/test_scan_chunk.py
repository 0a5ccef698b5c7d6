"""The chunk-wise parallel backend equals the recurrence (the oracle) for every rule it covers.

Outputs, final and strided states, and gradients w.r.t. q, k, v, the gates and the initial
state; float64 to 1e-10 relative, float32 to 1e-4 of the output scale; T not a multiple of the
chunk size; decays of exactly 0; both GLA paths (factorised and exact).
"""

from __future__ import annotations

import pytest
import torch

from synaptic_fwp import rules, scan
from synaptic_fwp.sequence import _pick_backend, chunk_inference, prepare
from synaptic_fwp.sequence import chunk as chunk_mod
from synaptic_fwp.sequence.chunk import chunk_flops, scan_chunk
from synaptic_fwp.sequence.chunk_inference import ut_inverse, ut_inverse_flops

CHUNK_RULES = [n for n in rules.names() if n not in ("oja", "bcm")]
F64 = torch.float64


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max abs difference over the max abs of the reference (the output scale)."""
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))


def make(name: str, seed: int, dtype=F64, shape=None, zero_decay: bool = False):
    """Random inputs for ``name``: q, k, v, gates dict, W0; L2-normalised keys for the delta rules
    (the stable regime, Primer Sec. 3.6), random shapes unless given."""
    gen = torch.Generator().manual_seed(seed)
    if shape is None:
        B = int(torch.randint(1, 3, (1,), generator=gen))
        T = int(torch.randint(9, 41, (1,), generator=gen))
        H = int(torch.randint(1, 4, (1,), generator=gen))
        K = int(torch.randint(2, 7, (1,), generator=gen))
        V = int(torch.randint(2, 7, (1,), generator=gen))
    else:
        B, T, H, K, V = shape
    rule = rules.get(name, decay=0.8) if name == "retnet" else rules.get(name)

    def r(*s):
        return torch.randn(*s, generator=gen, dtype=dtype)

    def u(*s):
        return torch.rand(*s, generator=gen, dtype=dtype)

    q, k, v = r(B, T, H, K), r(B, T, H, K), r(B, T, H, V)
    if rule.correction == "delta":
        k = torch.nn.functional.normalize(k, dim=-1)
    gates = {}
    if "eta" in rule.needs:
        gates["eta"] = 1.5 * u(B, T, H)
    if "decay" in rule.needs and name != "retnet":
        gates["decay"] = u(B, T, H)
        if zero_decay:
            gates["decay"] = torch.where(u(B, T, H) < 0.2, 0.0, gates["decay"])
    if "gate" in rule.needs:
        X = V if rule.decay == "post" else K
        gates["gate"] = u(B, T, H, X)
        if zero_decay:
            gates["gate"] = torch.where(u(B, T, H, X) < 0.2, 0.0, gates["gate"])
    W0 = r(B, H, V, K)
    return rule, q, k, v, gates, W0


@pytest.mark.parametrize("name", CHUNK_RULES)
@pytest.mark.parametrize("seed", [0, 1])
def test_chunk_equals_recurrent_float64(name, seed):
    rule, q, k, v, gates, W0 = make(name, seed)
    S = [3, 8][seed]  # T (9..40) is rarely a multiple; make sure at least one case is ragged
    if q.shape[1] % S == 0:
        q, k, v = q[:, :-1], k[:, :-1], v[:, :-1]
        gates = {n: x[:, :-1] for n, x in gates.items()}
    kw = dict(initial_state=W0, **gates)
    y1, W1 = scan(q, k, v, rule, backend="recurrent", **kw)
    y2, W2 = scan(q, k, v, rule, backend="chunk", chunk_size=S, **kw)
    assert rel(y2, y1) <= 1e-10
    assert rel(W2, W1) <= 1e-10


@pytest.mark.parametrize("name", CHUNK_RULES)
def test_exact_decay_path(name, monkeypatch):
    """With the factorised-decay threshold disabled every chunk takes the exact product path."""
    monkeypatch.setitem(chunk_mod._SAFE_LOG, F64, -1.0)
    rule, q, k, v, gates, W0 = make(name, 4)
    y1, W1 = scan(q, k, v, rule, initial_state=W0, backend="recurrent", **gates)
    y2, W2 = scan(q, k, v, rule, initial_state=W0, backend="chunk", chunk_size=6, **gates)
    assert rel(y2, y1) <= 1e-10 and rel(W2, W1) <= 1e-10


@pytest.mark.parametrize("name", CHUNK_RULES)
def test_chunk_equals_recurrent_float32(name):
    rule, q, k, v, gates, W0 = make(name, 7, dtype=torch.float32, shape=(2, 150, 2, 16, 12))
    kw = dict(initial_state=W0, **gates)
    y1, W1 = scan(q, k, v, rule, backend="recurrent", **kw)
    y2, W2 = scan(q, k, v, rule, backend="chunk", chunk_size=32, **kw)
    assert rel(y2, y1) <= 1e-4
    assert rel(W2, W1) <= 1e-4


@pytest.mark.parametrize("name", CHUNK_RULES)
def test_gradients_match(name):
    rule, q, k, v, gates, W0 = make(name, 3, shape=(2, 13, 2, 4, 3))
    leaves = {"q": q, "k": k, "v": v, "W0": W0, **gates}
    out = {}
    for backend in ("recurrent", "chunk"):
        xs = {n: x.clone().requires_grad_(True) for n, x in leaves.items()}
        g = {n: xs[n] for n in gates}
        y, W = scan(
            xs["q"],
            xs["k"],
            xs["v"],
            rule,
            initial_state=xs["W0"],
            backend=backend,
            chunk_size=5,
            **g,
        )
        gen = torch.Generator().manual_seed(11)
        loss = (y * torch.randn(y.shape, generator=gen, dtype=F64)).sum() + (
            W * torch.randn(W.shape, generator=gen, dtype=F64)
        ).sum()
        grads = torch.autograd.grad(loss, list(xs.values()))
        out[backend] = dict(zip(xs, grads, strict=True))
    for n in leaves:
        assert torch.isfinite(out["chunk"][n]).all(), n
        assert rel(out["chunk"][n], out["recurrent"][n]) <= 1e-10, n


@pytest.mark.parametrize(
    "name", ["mamba2", "gated_delta", "gated_delta_table1", "gla", "gla_table1", "gated_rfa"]
)
def test_zero_decay_no_nan_and_exact(name):
    """Decays of exactly 0 (a full reset) give no NaN, forward or backward, and match."""
    rule, q, k, v, gates, W0 = make(name, 5, shape=(2, 30, 2, 4, 5), zero_decay=True)
    key = "gate" if "gate" in gates else "decay"
    assert (gates[key] == 0).any()
    res = {}
    for backend in ("recurrent", "chunk"):
        gt = gates[key].clone().requires_grad_(True)
        W0r = W0.clone().requires_grad_(True)
        y, W = scan(
            q, k, v, rule, initial_state=W0r, backend=backend, chunk_size=8, **{**gates, key: gt}
        )
        gy, gW0 = torch.autograd.grad((y**2).sum() + W.sum(), [gt, W0r])
        res[backend] = (y, W, gy, gW0)
    for a, b in zip(res["chunk"], res["recurrent"], strict=True):
        assert torch.isfinite(a).all()
        assert rel(a, b) <= 1e-10


@pytest.mark.parametrize("side", ["gla", "gla_table1"])
@pytest.mark.parametrize("regime", ["mild", "strong", "mixed"])
def test_gla_both_intra_paths_float32(side, regime, monkeypatch):
    """Weak decay takes the factorised (log-space) path, strong decay the exact path (here in
    batches of 3 chunks)."""
    monkeypatch.setattr(chunk_mod, "_EXACT_ELEMS", 3 * 16 * 16 * 8)
    rule, q, k, v, gates, W0 = make(side, 9, dtype=torch.float32, shape=(2, 70, 2, 8, 6))
    a = gates["gate"]
    if regime == "mild":
        a = a ** (1 / 16)  # GLA's usual range: total log-decay per chunk well above -20
    elif regime == "mixed":
        a = torch.where(torch.arange(70).view(1, -1, 1, 1) < 35, a ** (1 / 16), a)
    y1, W1 = scan(q, k, v, rule, gate=a, initial_state=W0, backend="recurrent")
    y2, W2 = scan(q, k, v, rule, gate=a, initial_state=W0, backend="chunk", chunk_size=16)
    assert rel(y2, y1) <= 1e-4 and rel(W2, W1) <= 1e-4


@pytest.mark.parametrize("name", ["delta", "gla", "gla_table1", "mlstm", "gated_delta"])
@pytest.mark.parametrize("stride", [1, 3, 4, 8, 50])
def test_strided_states(name, stride):
    rule, q, k, v, gates, W0 = make(name, 2, shape=(2, 26, 2, 3, 4))
    kw = dict(initial_state=W0, return_states=stride, **gates)
    y1, W1, s1 = scan(q, k, v, rule, backend="recurrent", **kw)
    y2, W2, s2 = scan(q, k, v, rule, backend="chunk", chunk_size=4, **kw)
    assert s2.shape == s1.shape == (2, 26 // stride, 2, 4, 3)
    if s1.numel():
        assert rel(s2, s1) <= 1e-10
    assert rel(W2, W1) <= 1e-10


def test_chunk_longer_than_sequence_and_single_step():
    for T in (1, 5):
        rule, q, k, v, gates, W0 = make("gated_delta", 4, shape=(1, T, 1, 3, 3))
        y1, W1 = scan(q, k, v, rule, initial_state=W0, backend="recurrent", **gates)
        y2, W2 = scan(q, k, v, rule, initial_state=W0, backend="chunk", chunk_size=64, **gates)
        assert rel(y2, y1) <= 1e-12 and rel(W2, W1) <= 1e-12


def test_auto_picks_chunk_for_long_sequences():
    rule, q, k, v, gates, W0 = make("gated_delta", 6, shape=(1, 100, 2, 4, 4))
    assert _pick_backend(rule, q, "auto") == "chunk"
    assert _pick_backend(rule, q[:, :32], "auto") == "chunk"
    assert _pick_backend(rule, q[:, :31], "auto") == "recurrent"
    assert _pick_backend(rules.get("oja"), q, "auto") == "recurrent"
    weird = rules.LinearRule("delta_gla", decay="pre", correction="delta", write="eta")
    assert _pick_backend(weird, q, "auto") == "recurrent"  # a form the chunk path lacks
    y0, W0_ = scan(q, k, v, rule, initial_state=W0, **gates)
    yc, Wc = scan(q, k, v, rule, initial_state=W0, backend="chunk", **gates)
    yr, Wr = scan(q, k, v, rule, initial_state=W0, backend="recurrent", **gates)
    assert torch.equal(y0, yc) and torch.equal(W0_, Wc)
    assert rel(y0, yr) <= 1e-10


@pytest.mark.parametrize("S", [1, 2, 5, 16, 17, 40, 64])
def test_ut_inverse(S):
    """Both forms (in place into ``out``, and out of place for autograd) equal a triangular
    solve; only the strictly lower triangle of ``A`` is read."""
    gen = torch.Generator().manual_seed(S)
    A = torch.randn(3, S, S, generator=gen, dtype=F64) * 0.3
    ref = torch.linalg.solve_triangular(
        torch.eye(S, dtype=F64) + A.tril(-1), torch.eye(S, dtype=F64).expand(3, S, S), upper=False
    )
    assert rel(ut_inverse(A), ref) <= 1e-12
    out = torch.full_like(A, float("nan"))
    assert ut_inverse(A, out=out) is out and rel(out, ref) <= 1e-12
    if S <= 17:  # autograd through the out-of-place form
        assert torch.autograd.gradcheck(ut_inverse, (A.clone().requires_grad_(),))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_delta_chunk_half_precision(dtype):
    """float16/bfloat16 inputs (the UT blocks are solved in float32 on the CPU), with and without
    autograd, against the float64 recurrence: within a few units of the format's precision."""
    rule, q, k, v, gates, W0 = make("gated_delta", 21, dtype=F64, shape=(1, 40, 2, 8, 8))
    ref, _ = scan(q, k, v, rule, backend="recurrent", initial_state=W0, **gates)
    low = [x.to(dtype) for x in (q, k, v)]
    gl = {n: x.to(dtype) for n, x in gates.items()}
    tol = {torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    with torch.no_grad():
        y, _ = scan(*low, rule, backend="chunk", chunk_size=16, initial_state=W0.to(dtype), **gl)
    assert y.dtype == dtype and rel(y.double(), ref) <= tol
    yg, _ = scan(low[0].requires_grad_(), *low[1:], rule, backend="chunk", chunk_size=16,
                 initial_state=W0.to(dtype), **gl)
    assert rel(yg.detach().double(), ref) <= tol


def test_ut_inverse_flops():
    # S = 32, b = 16: two diagonal blocks (16^3 / 3 each) and one block row (2 16 16^2 + 2 16^3)
    assert ut_inverse_flops(32) == 2 * (16**3 // 3) + 2 * 16 * 16**2 + 2 * 16**3
    assert ut_inverse_flops(8) == 8**3 // 3


@pytest.mark.parametrize("name", CHUNK_RULES)
@pytest.mark.parametrize("dtype", [F64, torch.float32])
@pytest.mark.parametrize("K, V", [(5, 3), (3, 6)])
def test_segmented_inference_path(name, dtype, K, V, monkeypatch):
    """The segment-wise path taken without autograd (``chunk_inference.segmented_scan``) against
    the recurrence, for every rule: several segments, the last one short, T not a multiple of S
    (the partial chunk goes to the general path), states at a stride that is a multiple of S;
    K > V and K < V, S^2 above and below K V (buffers that hold two quantities in turn)."""
    for n in ("SEGMENT_ROWS", "SEGMENT_ROWS_DELTA"):
        monkeypatch.setattr(chunk_inference, n, 3 * 2 * 2 * 4)  # G = 3 chunks a segment
    calls = []
    real = chunk_inference.segmented_scan
    monkeypatch.setattr(
        chunk_mod, "segmented_scan", lambda *a, **kw: calls.append(1) or real(*a, **kw)
    )
    rule, q, k, v, gates, W0 = make(name, 11, dtype=dtype, shape=(2, 45, 2, K, V))
    for n in ("decay", "gate"):
        if n in gates:
            gates[n] = 0.5 + 0.5 * gates[n]  # mild: the factorised regime
    kw = dict(initial_state=W0, **gates)
    tol = 1e-10 if dtype == F64 else 1e-4
    y1, W1, st1 = scan(q, k, v, rule, backend="recurrent", return_states=8, **kw)
    with torch.no_grad():
        y2, W2, st2 = scan(q, k, v, rule, backend="chunk", chunk_size=4, return_states=8, **kw)
    assert calls, "the segmented path was not taken"
    assert rel(y2, y1) <= tol and rel(W2, W1) <= tol and rel(st2, st1) <= tol


@pytest.mark.parametrize("X", [1, 16])
def test_chunk_cumprod_both_methods(X):
    """Decay products within chunks: torch.cumprod (narrow gates) and the step loop (wide)."""
    gen = torch.Generator().manual_seed(X)
    a = torch.rand(2, 12, 3, X, generator=gen, dtype=F64)
    ref = a.reshape(2, 3, 4, 3, X).cumprod(dim=2).reshape(2, 12, 3, X)
    assert rel(chunk_inference.chunk_cumprod(a, 4), ref) <= 1e-14


def test_workspace_is_kept_aligned_and_disjoint(monkeypatch):
    """CPU scratch buffers: the same memory on the next call with the slot, separate slots and
    buffers do not overlap, each starts on a cache line; fresh tensors over the size cap and on
    other devices."""
    ws = chunk_inference.workspace
    shapes = [(3, 5), (7,), (2, 2, 2)]
    a = ws("test-a", shapes, torch.float32, torch.device("cpu"))
    b = ws("test-a", shapes, torch.float32, torch.device("cpu"))
    c = ws("test-b", shapes, torch.float32, torch.device("cpu"))
    assert [x.shape for x in a] == [torch.Size(s) for s in shapes]
    assert [x.data_ptr() for x in a] == [x.data_ptr() for x in b]
    spans = sorted((x.data_ptr(), x.data_ptr() + x.numel() * 4) for x in a + c)
    assert all(end <= nxt for (_, end), (nxt, _) in zip(spans, spans[1:], strict=False))
    assert all(x.data_ptr() % 64 == 0 and x.is_contiguous() for x in a + c)
    assert ws("test-a", [(1,)], torch.float64, torch.device("cpu"))[0].dtype == F64
    assert ws("test-m", shapes, torch.float32, torch.device("meta"))[0].device.type == "meta"
    monkeypatch.setattr(chunk_inference, "WORKSPACE_MAX_BYTES", 16)
    d = ws("test-a", shapes, torch.float32, torch.device("cpu"))
    assert all(x._base is None for x in d)  # fresh tensors, not views of the kept buffer


@pytest.mark.parametrize("V", [1, 3])
@pytest.mark.parametrize("name", ["gla", "delta"])
def test_results_do_not_share_the_workspace(name, V):
    """Outputs, final state and strided states of one call survive the next call (the scratch
    buffers are reused; results must be their own memory, also when V = 1 makes W^T a view)."""
    outs = []
    with torch.no_grad():
        for seed in (21, 22):
            rule, q, k, v, gates, W0 = make(name, seed, shape=(1, 16, 2, 3, V))
            res = scan(q, k, v, rule, backend="chunk", chunk_size=4, initial_state=W0,
                       return_states=4, **gates)
            outs.append((res, [x.clone() for x in res]))
    (first, saved), _ = outs
    assert all(torch.equal(x, y) for x, y in zip(first, saved, strict=True))


def test_workspace_is_per_thread():
    """Chunk scans running at once in several threads (a thread-pool sweep) each get their own
    scratch buffers: results equal the serial ones."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [make(name, seed, shape=(2, 64, 2, 8, 8)) for name in ("gla", "delta")
            for seed in range(4)]

    def run(job):
        rule, q, k, v, gates, W0 = job
        with torch.no_grad():
            return scan(q, k, v, rule, backend="chunk", chunk_size=8, initial_state=W0, **gates)

    serial = [run(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            threaded = list(pool.map(run, jobs))
            assert all(torch.equal(a, b) for s, t in zip(serial, threaded, strict=True)
                       for a, b in zip(s, t, strict=True))


@pytest.mark.parametrize("name", ["gated_delta", "gla"])
def test_strong_decay_takes_the_general_path(name, monkeypatch):
    """A decay that is not mild in some chunk (here exact zeros): the segmented path is not
    taken, and the general (exact) path gives the result."""
    monkeypatch.setattr(chunk_mod, "segmented_scan", None)  # would raise if called
    rule, q, k, v, gates, W0 = make(name, 12, shape=(1, 24, 2, 3, 3), zero_decay=True)
    kw = dict(initial_state=W0, return_states=4, **gates)
    y1, W1, st1 = scan(q, k, v, rule, backend="recurrent", **kw)
    y2, W2, st2 = scan(q, k, v, rule, backend="chunk", chunk_size=4, **kw)
    assert rel(y2, y1) <= 1e-10 and rel(W2, W1) <= 1e-10 and rel(st2, st1) <= 1e-10


def test_segmented_path_not_taken(monkeypatch):
    """States at a stride that is not a multiple of S, or autograd: the general path."""
    monkeypatch.setattr(chunk_mod, "segmented_scan", None)  # would raise if called
    rule, q, k, v, gates, W0 = make("gated_delta", 12, shape=(1, 24, 1, 3, 3))
    y1, W1, st1 = scan(
        q, k, v, rule, backend="recurrent", initial_state=W0, return_states=3, **gates
    )
    y2, W2, st2 = scan(
        q, k, v, rule, backend="chunk", chunk_size=4, initial_state=W0, return_states=3, **gates
    )
    assert rel(y2, y1) <= 1e-10 and rel(st2, st1) <= 1e-10
    rule, q, k, v, gates, W0 = make("delta", 13, shape=(1, 24, 1, 3, 3))
    y1, _ = scan(q, k, v, rule, backend="recurrent", **gates)
    y2, _ = scan(q.requires_grad_(), k, v, rule, backend="chunk", chunk_size=4, **gates)
    assert rel(y2, y1) <= 1e-10 and y2.requires_grad


def test_errors():
    rule, q, k, v, gates, W0 = make("delta", 0, shape=(1, 8, 1, 3, 3))
    with pytest.raises(ValueError, match="oja"):
        scan(q, k, v, "oja", eta=0.1, backend="chunk")
    _, g, W = prepare(q, k, v, "bcm")
    with pytest.raises(TypeError, match="LinearRule"):
        scan_chunk(q, k, v, rules.get("bcm"), g, W)
    weird = rules.LinearRule("delta_gla", decay="pre", correction="delta", write="eta")
    with pytest.raises(ValueError, match="vector gate"):
        scan_chunk(q, k, v, weird, {"eta": None, "decay": None, "gate": None}, W)
    _, g, W = prepare(q, k, v, rule, **gates)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="chunk_size"):
            scan_chunk(q, k, v, rule, g, W, chunk_size=bad)
    with pytest.raises(ValueError, match="stride"):
        scan_chunk(q, k, v, rule, g, W, stride=-1)


def test_flop_count_formula():
    r = rules.get("retnet", decay=0.9)
    # per chunk-head: 2 S^2 K + 2 S^2 V + 4 S K V; 2 chunks of 4 (T = 7 is padded)
    assert chunk_flops(r, 1, 7, 1, 3, 2, 4) == 2 * (2 * 16 * 3 + 2 * 16 * 2 + 4 * 4 * 3 * 2)
    # the delta rules add K K^T, the UT inverse, its application to (c V | gamma K), Wt W^T
    extra = 2 * 16 * 3 + ut_inverse_flops(4) + 2 * 16 * (2 + 3) + 2 * 4 * 3 * 2
    delta = chunk_flops(rules.get("delta"), 1, 8, 1, 3, 2, 4)
    assert delta == chunk_flops(r, 1, 8, 1, 3, 2, 4) + 2 * extra


def test_default_threads_restore_and_override(monkeypatch):
    from synaptic_fwp.sequence import RECURRENT_PARALLEL_MIN as big
    from synaptic_fwp.sequence import default_threads

    # small states: one thread for the recurrence; large ones and the chunk path: torch's own
    assert default_threads("recurrent") == 1 and default_threads("recurrent", big - 1) == 1
    assert default_threads("recurrent", big) is None and default_threads("chunk") is None
    monkeypatch.setenv("SYNAPTIC_FWP_THREADS", "3")
    assert default_threads("chunk") == 3 and default_threads("recurrent") == 3
    monkeypatch.setenv("SYNAPTIC_FWP_THREADS", "zero")
    with pytest.raises(ValueError, match="SYNAPTIC_FWP_THREADS"):
        default_threads("chunk")
    monkeypatch.setenv("SYNAPTIC_FWP_THREADS", "1")
    rule, q, k, v, gates, W0 = make("mamba2", 0, shape=(1, 70, 1, 2, 2))
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for backend in ("recurrent", "chunk"):
            scan(q, k, v, rule, backend=backend, **gates)
            assert torch.get_num_threads() == 2  # the caller's setting is restored
    finally:
        torch.set_num_threads(old)
