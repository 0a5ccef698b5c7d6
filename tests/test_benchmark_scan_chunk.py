"""The scan_chunk benchmark runs as a user runs it (tiny sizes; its timings are not tested)."""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path

import torch

from synaptic_fwp.sequence.chunk import DEFAULT_CHUNK_SIZE

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scan_chunk.py"


def test_scan_chunk_benchmark_reports_every_rule(tmp_path):
    out = tmp_path / "r.json"
    args = ["--B", "1", "--H", "2", "--T", "40", "--K", "8", "--V", "4", "--repeats", "2",
            "--chunk-calls", "3",
            "--chunk-sizes", "16", str(DEFAULT_CHUNK_SIZE), "--out", str(out)]
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert [ln.split()[1] for ln in r.stdout.splitlines() if ln.startswith("  round ")] == [
        "1/2", "2/2"]
    res = json.loads(out.read_text())
    assert set(res["rules"]) == {"delta", "gated_delta", "gla", "retnet"}
    peak = res["matmul_reference"]["peak_gflops"]
    assert res["config"]["chunk_calls"] == 3
    assert isinstance(res["config"]["cpu"], str) and res["config"]["cpu"]
    assert "16 MB copy next to the rules" in r.stdout
    for name, e in res["rules"].items():
        assert set(e["chunk"]) == {"16", str(DEFAULT_CHUNK_SIZE)}
        assert max(e["mm2048_gflops_interleaved"].values()) <= peak
        assert set(e["copy16mb_gbps_interleaved"]) == {"1", "2"}
        assert all(x > 0 for x in e["copy16mb_gbps_interleaved"].values())
        for c in e["chunk"].values():
            assert c["library_default"] == (c is e["chunk"][str(DEFAULT_CHUNK_SIZE)])
            assert c["flops"] > 0 and c["speedup"] > 0
            assert 0 < c["fraction_of_peak_matmul"] <= c["fraction_of_interleaved_mm2048_best"]
            assert c["targets_met"]["speedup"] == (c["speedup"] >= c["speedup_target"])
            # the best of all calls is at least as fast as the best of the rounds' first calls
            assert 0 < c["fraction_of_peak_matmul_first_pass"] <= c["fraction_of_peak_matmul"]
            assert all(c["chunk_s_first_pass"][th] >= x for th, x in c["chunk_s"].items())
        assert name in r.stdout


def test_rounds_samples_every_function_spread_over_the_run():
    spec = importlib.util.spec_from_file_location("scan_chunk_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    calls: list[tuple[str, str, int]] = []
    keys = [("a", "rec"), ("a", "chunk"), ("b", "rec"), ("b", "chunk")]
    fns = {key: functools.partial(lambda key: calls.append((*key, torch.get_num_threads())), key)
           for key in keys}
    old = torch.get_num_threads()
    samples = bench.rounds((1, 2), 3, fns, again=(keys[1], keys[3]), calls=4)
    assert torch.get_num_threads() == old
    # per round and thread count: every function once in order, then 3 passes over `again`
    one = keys + [keys[1], keys[3]] * 3
    assert calls == [(*key, th) for _ in range(4) for th in (1, 2) for key in one]
    assert all(a[:2] != b[:2] for a, b in itertools.pairwise(calls))  # never twice in a row
    # the warm-up round is not kept; then one list per round, first-pass sample first
    assert set(samples) == {(*key, th) for key in keys for th in (1, 2)}
    for (_, f, _), rs in samples.items():
        assert len(rs) == 3
        assert all(len(r) == (4 if f == "chunk" else 1) and min(r) >= 0 for r in rs)


def test_scan_chunk_benchmark_refuses_zero_samples():
    for opt in ("--repeats", "--chunk-calls"):
        r = subprocess.run([sys.executable, str(SCRIPT), opt, "0"], capture_output=True,
                           text=True, timeout=120, check=False)
        assert r.returncode == 2 and f"{opt} must be at least 1, got 0" in r.stderr


def test_chunk_size_benchmark_reports_the_default_against_every_size(tmp_path):
    """benchmarks/chunk_size.py as a user runs it (one tiny shape; timings not tested)."""
    from synaptic_fwp import rules
    from synaptic_fwp.sequence.chunk import default_chunk_size

    script = SCRIPT.parent / "chunk_size.py"
    out = tmp_path / "c.json"
    for grad in ([], ["--grad"]):
        r = subprocess.run([sys.executable, str(script), "--T", "40", "--K", "16", "--repeats",
                            "1", "--rules", "delta", "gla", *grad, "--out", str(out)],
                           capture_output=True, text=True, timeout=300, check=False)
        assert r.returncode == 0, r.stderr
        res = json.loads(out.read_text())
        assert res["grad"] == bool(grad)
        assert [row["rule"] for row in res["rows"]] == ["delta", "gla"]
        for row in res["rows"]:
            assert (row["K"], row["V"], row["T"]) == (16, 16, 40)
            assert row["default"] == default_chunk_size(rules.get(row["rule"]), 16, 16, bool(grad))
            ratios = row["chunk_over_fastest"]
            assert min(ratios.values()) == 1.0 and set(ratios) == {"16", "32", "64", "128"}
            assert row["default_over_fastest"] == ratios[str(row["default"])]
            assert row["recurrent_over_default"] > 0
