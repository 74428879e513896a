"""Plugin loading, three routes, all ending in the same registries.

1. a module in ``methods/`` (or ``protocols/``, ``wsolbench/data/``): imported by ``load_builtin``;
2. a local file: ``load_file("my_method.py")``, the CLI's ``--plugin PATH``;
3. an installed distribution with an entry point in ``wsolbench.methods``, ``wsolbench.datasets``,
   ``wsolbench.protocols`` or ``wsolbench.backbones``: imported by ``load_entry_points``.

A plugin that fails to import raises ``PluginError`` with one line naming it and the cause.

This module is the loader; ``wsolbench.registry`` is the plain data it fills and never imports it
back. Importing this module (``wsolbench`` does) sets each registry's ``fill`` to ``load_builtin``,
so a lookup of a name not yet registered loads the built-in plugins first.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
from pathlib import Path

from wsolbench.registry import REGISTRIES

ENTRY_POINT_GROUPS = tuple(f"wsolbench.{kind}" for kind in REGISTRIES)
BUILTIN_PACKAGES = ("wsolbench.backbones", "wsolbench.data", "wsolbench.protocols", "wsolbench.methods")

_loaded_files: dict[Path, str] = {}
_builtin_done = False


class PluginError(RuntimeError):
    """A plugin could not be loaded; the message is one line naming it."""


@contextlib.contextmanager
def _source(name: str):
    """Tag everything registered while importing a plugin with where it came from."""
    old = {k: r.current_source for k, r in REGISTRIES.items()}
    for r in REGISTRIES.values():
        r.current_source = name
    try:
        yield
    finally:
        for k, r in REGISTRIES.items():
            r.current_source = old[k]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def import_package_modules(package: str) -> None:
    """Import every module of ``package`` (how a file dropped into methods/ gets registered)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name.startswith("_"):
            continue
        name = f"{package}.{info.name}"
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported as one line
            raise PluginError(f"plugin module {name} failed to import: {_describe(exc)}") from exc


def load_builtin() -> None:
    """Import the built-in packages and installed entry-point plugins, once."""
    global _builtin_done
    if _builtin_done:
        return
    _builtin_done = True
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    load_entry_points()


def load_file(path: str | Path) -> str:
    """Import a plugin file; returns its module name. Loading the same file twice is a no-op."""
    load_builtin()
    path = Path(path)
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist")
    resolved = path.resolve()
    if resolved in _loaded_files:
        return _loaded_files[resolved]
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:8]
    module_name = f"wsolbench_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, resolved)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        with _source(str(path)):
            spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        sys.modules.pop(module_name, None)
        raise PluginError(f"plugin file {path} failed to load: {_describe(exc)}") from exc
    _loaded_files[resolved] = module_name
    return module_name


def load_entry_points() -> None:
    for group in ENTRY_POINT_GROUPS:
        for ep in importlib.metadata.entry_points(group=group):
            dist = ep.dist.name if ep.dist is not None else "?"
            try:
                with _source(f"{dist}:{ep.name}"):
                    ep.load()
            except Exception as exc:  # noqa: BLE001 - reported as one line
                raise PluginError(
                    f"plugin entry point '{ep.name}' ({ep.value}) of {dist} in {group} failed to load: {_describe(exc)}"
                ) from exc


def load_plugins(paths=()) -> None:
    """The built-in plugins, then each local file (the CLI's ``--plugin``)."""
    load_builtin()
    for p in paths or ():
        load_file(p)


for _registry in REGISTRIES.values():
    _registry.fill = load_builtin
