"""``wsolbench data ...``: dataset commands (synth, check)."""
import typer

from wsolbench.cli import app

data_app = typer.Typer(help="Make and check datasets.", no_args_is_help=True)
app.add_typer(data_app, name="data")
