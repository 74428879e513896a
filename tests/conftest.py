"""Shared test set-up: one thread (two threads on a busy 2-core machine run far slower)."""
import os

import pytest
import torch

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def cli(tmp_path):
    """Run the real console entry point in-process; returns (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from wsolbench.cli import app
    from wsolbench.cli import commands  # noqa: F401

    def run(*args):
        result = CliRunner().invoke(app, list(map(str, args)))
        return result

    return run
