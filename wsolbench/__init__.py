"""wsolbench: a benchmark harness for weakly supervised object localization."""
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("wsolbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

from wsolbench import plugins as _plugins  # noqa: E402,F401 - the loader: fills the registries on first lookup
