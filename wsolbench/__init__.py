"""wsolbench: a benchmark harness for weakly supervised object localization."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wsolbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
