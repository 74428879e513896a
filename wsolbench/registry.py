"""One small registry mechanism for methods, backbones, datasets and protocols.

Register by decorator, look up by name (a clear error lists close names), list with
shell-style wildcards. A variant is the same object registered again under another
name with other default keyword arguments (timm's ``arch.tag`` idea):

    @METHODS.register("i2c", description="I2C: SC + GC")
    @METHODS.register("i2c-sc", description="I2C: SC only", use_gc=False)
    class I2C(Method): ...

    METHODS.build("i2c-sc", backbone=..., num_classes=10)

An alias is another name for one entry (an old name kept working): ``get`` returns the entry under
its own name, so everything derived from the name (run ids, folders, leaderboard rows) uses the
canonical one; ``names`` lists canonical names only.

This module holds data and imports nothing of the project: ``wsolbench.plugins`` fills the
registries (it sets ``fill`` on import, and ``wsolbench`` imports it), and a lookup that misses
or a listing calls ``fill`` once first so built-in plugins load on first need.
"""
from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable


class RegistryError(LookupError):
    """A name was registered twice or looked up but never registered."""


@dataclass(frozen=True)
class Entry:
    name: str
    obj: Any
    defaults: dict = field(default_factory=dict)
    description: str = ""
    source: str = "builtin"  # builtin | a plugin file path | an entry point "dist:name"

    def build(self, *args, **kwargs):
        return self.obj(*args, **{**self.defaults, **kwargs})


class Registry:
    def __init__(self, kind: str):
        self.kind = kind  # "method", "backbone", ...: used in messages
        self._entries: dict[str, Entry] = {}
        self._aliases: dict[str, str] = {}  # old name -> canonical name
        self.current_source = "builtin"  # set by the plugin loader while it imports a plugin
        self.fill: Callable[[], None] | None = None  # set by the plugin loader; called before a lookup misses

    def _fill(self) -> None:
        if self.fill is not None:
            self.fill()

    def register(
        self, name: str | None = None, *, description: str | None = None, aliases: tuple[str, ...] = (), **defaults
    ) -> Callable:
        """Decorator registering ``obj`` as ``name`` (default: ``obj.__name__``), also reachable as ``aliases``."""

        def deco(obj):
            key = name or obj.__name__
            for taken in (key, *aliases):
                if taken in self._entries or taken in self._aliases:
                    owner = self._entries.get(self._aliases.get(taken, taken))
                    raise RegistryError(
                        f"{self.kind} '{taken}' is already registered (by {owner.source}); pick another name"
                    )
            doc = description if description is not None else _first_line(obj.__doc__)
            self._entries[key] = Entry(key, obj, dict(defaults), doc, self.current_source)
            self._aliases.update({alias: key for alias in aliases})
            return obj

        return deco

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._aliases = {a: n for a, n in self._aliases.items() if n != name and a != name}

    def __contains__(self, name: str) -> bool:
        return name in self._entries or name in self._aliases

    def get(self, name: str) -> Entry:
        """The entry of ``name`` or of the name it is an alias of (``entry.name`` is the canonical name)."""
        if name not in self:
            self._fill()  # the built-in plugins and installed entry points, imported on first need
        try:
            return self._entries[self._aliases.get(name, name)]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def canonical(self, name: str) -> str:
        """``name`` with an alias resolved (an unknown name is an error)."""
        return self.get(name).name

    def aliases(self) -> dict[str, str]:
        """Alias -> canonical name, for every alias."""
        self._fill()
        return dict(sorted(self._aliases.items()))

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, [*self._entries, *self._aliases], n=5, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        known = ", ".join(sorted(self._entries)) or "none"
        return f"unknown {self.kind} '{name}'{hint} (registered: {known})"

    def build(self, name: str, /, *args, **kwargs):
        return self.get(name).build(*args, **kwargs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names (aliases left out), sorted, filtered by a shell-style wildcard pattern."""
        self._fill()
        names = sorted(self._entries)
        return [n for n in names if pattern is None or fnmatch.fnmatchcase(n, pattern)]

    def entries(self, pattern: str | None = None) -> list[Entry]:
        return [self._entries[n] for n in self.names(pattern)]


def _first_line(doc: str | None) -> str:
    return (doc or "").strip().splitlines()[0].strip() if (doc or "").strip() else ""


METHODS = Registry("method")
BACKBONES = Registry("backbone")
DATASETS = Registry("dataset")
PROTOCOLS = Registry("protocol")

REGISTRIES = {"methods": METHODS, "backbones": BACKBONES, "datasets": DATASETS, "protocols": PROTOCOLS}


def list_methods(pattern: str | None = None) -> list[str]:
    return METHODS.names(pattern)


def list_datasets(pattern: str | None = None) -> list[str]:
    return DATASETS.names(pattern)


def list_protocols(pattern: str | None = None) -> list[str]:
    return PROTOCOLS.names(pattern)
