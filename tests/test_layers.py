"""The layering of DESIGN.md, checked on the source: each layer imports only from below.

Layers (low to high): rules < sequence (the scan layer), kernels < neurons, synapses, inputs,
plasticity < records < engine < protocols, datasets < fit, compare < plot < faces (cli,
experiment, demo, sweep, brian2_export). models/ and analyses/ sit on top and may use
everything. Nothing below ``plot`` imports matplotlib; nothing below the faces imports brian2 or
dask.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

LAYER = {
    "_validation": 0,
    "_params": 0,
    "rules": 1,
    "sequence": 2,
    "kernels": 2,
    "plasticity": 3,
    "neurons": 3,
    "synapses": 3,
    "inputs": 3,
    "records": 4,
    "engine": 5,
    "protocols": 6,
    "datasets": 6,
    "fit": 7,
    "compare": 7,
    "plot": 8,
    "cli": 9,
    "experiment": 9,
    "demo": 9,
    "sweep": 9,
    "brian2_export": 9,
    "models": 10,
    "analyses": 10,
}
# files whose layer differs from their folder's: the fused spiking kernel implements a
# projection (neurons + plasticity), so it sits with layer 3, below the engine that calls it.
FILE_LAYER = {"kernels/spiking.py": 3}
PLOT, FACES = LAYER["plot"], LAYER["cli"]


def _modules():
    for base, prefix in ((ROOT / "synaptic_fwp", None), (ROOT / "kernels", "kernels"),
                         (ROOT / "models", "models"), (ROOT / "analyses", "analyses")):
        for p in sorted(base.rglob("*.py")):
            rel = p.relative_to(base).parts
            top = prefix or (rel[0][:-3] if rel[0].endswith(".py") else rel[0])
            if top == "__init__":
                continue
            yield p, top


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:  # resolve relative imports inside synaptic_fwp
                pkg = path.relative_to(ROOT).parts[:-1]
                if pkg and pkg[0] in ("kernels", "models", "analyses"):
                    pkg = ("synaptic_fwp",) + pkg
                base = list(pkg[: len(pkg) - node.level + 1])
                mod = ".".join(base + ([mod] if mod else []))
                if not node.module:
                    out += [(f"{mod}.{a.name}", node.lineno) for a in node.names]
                    continue
            out.append((mod, node.lineno))
    return out


def _target_layer(mod: str) -> int | None:
    parts = mod.split(".")
    if parts[0] != "synaptic_fwp" or len(parts) < 2:
        return None
    return LAYER.get(parts[1])


CASES = list(_modules())


@pytest.mark.parametrize("path,top", CASES, ids=[str(p.relative_to(ROOT)) for p, _ in CASES])
def test_imports_go_downward(path, top):
    own = FILE_LAYER.get(str(path.relative_to(ROOT)), LAYER.get(top))
    assert own is not None, f"{path}: module {top!r} has no layer; add it to LAYER in this test"
    for mod, line in _imports(path):
        root = mod.split(".")[0]
        if root == "matplotlib":
            assert own >= PLOT, f"{path}:{line} imports matplotlib below the plot layer"
        if root in ("brian2", "dask", "distributed"):
            assert own >= FACES, f"{path}:{line} imports {root} below the faces layer"
        tl = _target_layer(mod)
        if tl is not None:
            assert tl <= own, f"{path}:{line} imports {mod} (layer {tl}) from layer {own}"
