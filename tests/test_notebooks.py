"""Every tutorial notebook executes without errors (nbclient), in a temporary directory with a
copy of ``examples/``; notebooks are stored without outputs.

One kernel runs all notebooks in turn (the imports, torch above all, are paid once); each
notebook is self-contained. ``TRITON_INTERPRET=1`` is set in the kernel's environment so the
GPU-kernel tutorial runs on the CPU.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    work = tmp_path_factory.mktemp("notebooks")
    shutil.copytree(ROOT / "examples", work / "examples")
    env = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "TQDM_DISABLE": "1",
    }
    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    km.start_kernel(cwd=str(work), env=env)
    try:
        yield km, work
    finally:
        km.shutdown_kernel(now=True)


def test_notebooks_exist():
    names = [p.stem for p in NOTEBOOKS]
    for topic in ("getting_started", "own_rule", "btsp", "fitting", "sweep", "gpu", "recurrent"):
        assert any(topic in n for n in names), topic


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel):
    km, work = kernel
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:  # stored without outputs
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name} has outputs"
    client = NotebookClient(nb, km=km, timeout=300, resources={"metadata": {"path": str(work)}})
    client.execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert not errors
