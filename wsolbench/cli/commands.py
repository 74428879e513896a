"""Import every command module so each registers itself on ``wsolbench.cli.app``."""
from wsolbench.cli import data, diff_cmd, eval_cmd, leaderboard_cmd, list_cmd, report_cmd, run, score, show_cmd  # noqa: F401
from wsolbench.cli import status_cmd, weights_cmd  # noqa: F401
from wsolbench.cli import claims_cmd  # noqa: F401
