"""The scan_chunk benchmark runs as a user runs it (tiny sizes; its timings are not tested)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from synaptic_fwp.sequence.chunk import DEFAULT_CHUNK_SIZE

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scan_chunk.py"


def test_scan_chunk_benchmark_reports_every_rule(tmp_path):
    out = tmp_path / "r.json"
    args = ["--B", "1", "--H", "2", "--T", "40", "--K", "8", "--V", "4", "--repeats", "2",
            "--chunk-sizes", "16", str(DEFAULT_CHUNK_SIZE), "--out", str(out)]
    r = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                       timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("round ") == 2
    res = json.loads(out.read_text())
    assert set(res["rules"]) == {"delta", "gated_delta", "gla", "retnet"}
    peak = res["matmul_reference"]["peak_gflops"]
    for name, e in res["rules"].items():
        assert set(e["chunk"]) == {"16", str(DEFAULT_CHUNK_SIZE)}
        assert max(e["mm2048_gflops_interleaved"].values()) <= peak
        for c in e["chunk"].values():
            assert c["library_default"] == (c is e["chunk"][str(DEFAULT_CHUNK_SIZE)])
            assert c["flops"] > 0 and c["speedup"] > 0
            assert 0 < c["fraction_of_peak_matmul"] <= c["fraction_of_interleaved_mm2048_best"]
            assert c["targets_met"]["speedup"] == (c["speedup"] >= c["speedup_target"])
        assert name in r.stdout
