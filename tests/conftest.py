"""Shared test set-up: one thread (two threads on a busy 2-core machine run far slower)."""
import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["COLUMNS"] = "250"  # wide rich tables: no folded names in captured output


@pytest.fixture
def run_cli(capsys):
    """Run the real console entry point in-process: ``code, out, err = run_cli("list", "methods")``."""
    from wsolbench.cli import main

    def run(*args):
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
