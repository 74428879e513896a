"""Import every command module so each registers itself on ``wsolbench.cli.app``."""
from wsolbench.cli import data, diff_cmd, leaderboard_cmd, list_cmd, run, score, show_cmd, status_cmd, weights_cmd  # noqa: F401
