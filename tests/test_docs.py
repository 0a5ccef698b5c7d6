"""The documentation builds with warnings as errors (``sphinx-build -W``), in a temporary
directory, from the docstrings of the installed package."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_docs_build_without_warnings(tmp_path):
    from sphinx.cmd.build import build_main

    out = tmp_path / "html"
    status = build_main(
        [
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(ROOT / "docs"),
            str(out),
        ]
    )
    assert status == 0, "sphinx-build -W failed; run it by hand to see the warnings"
    for page in (
        "index",
        "getting_started",
        "user_guide",
        "experiment_files",
        "rules_primer",
        "performance",
        "api",
    ):
        assert (out / f"{page}.html").exists(), page
    primer = (out / "rules_primer.html").read_text()
    # the Table 1 rows come from the rule catalogue
    for name in (
        "hebbian",
        "delta",
        "oja",
        "retnet",
        "mamba2",
        "gated_rfa",
        "mlstm",
        "gla_table1",
        "gated_delta_table1",
    ):
        assert f'<span class="pre">{name}</span>' in primer, name
    api = (out / "api.html").read_text()
    assert "synaptic_fwp.experiment.load" in api and "synaptic_fwp.plot.figures.stdp_window" in api
