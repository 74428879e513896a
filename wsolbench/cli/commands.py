"""Import every command module so each registers itself on ``wsolbench.cli.app``."""
from wsolbench.cli import data, leaderboard_cmd, list_cmd, run, score, show_cmd  # noqa: F401
from wsolbench.cli import weights_cmd  # noqa: F401
