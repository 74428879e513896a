"""Import every command module so each registers itself on ``wsolbench.cli.app``."""
from wsolbench.cli import data, list_cmd, score  # noqa: F401
