"""Import every command module so each registers itself on ``wsolbench.cli.app``."""
from wsolbench.cli import data, leaderboard_cmd, list_cmd, report_cmd, run, score, show_cmd  # noqa: F401
