"""Grid files: a ``wsolbench run`` written down as TOML (``wsolbench run --config FILE.toml``).

Every ``run`` option is a key, named as its long option with ``_`` for ``-`` (``batch_size = 32``); the grid
axes are lists under plural names (``methods``, ``backbones``, ``datasets``, ``seeds``, ``explainers``); method
settings go in a ``[settings]`` table (a list is a sweep, as ``--set k=v1,v2``), dataset reader options in
``[data_options]``, launcher resources in ``[slurm]`` (as ``--cluster-config``). An option given on the command
line wins over the file. Shipped files (``configs/`` in the repository) are named without their suffix:
``--config main-job``. A bad file fails with one line naming the file, the key and what is allowed.
"""
from __future__ import annotations

import json
import tomllib
import types
import typing
from importlib import resources
from pathlib import Path

from wsolbench.errors import WsolbenchError

# option name -> its key in a grid file, where the two differ (a grid axis reads as a plural list)
KEY_OF = {"method": "methods", "backbone": "backbones", "dataset": "datasets"}
# options a grid file cannot hold: the file itself, one run folder, and the tables below
NOT_KEYS = {"config", "resume", "cluster_config", "settings", "slurm", "data_options"}
TABLES = ("settings", "data_options", "slurm")


def shipped(name: str) -> Path | None:
    """The shipped grid file ``name`` (``main-job`` -> configs/main-job.toml), or None."""
    path = resources.files("wsolbench.configs") / f"{name}.toml"
    return Path(str(path)) if path.is_file() else None


def shipped_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("wsolbench.configs").iterdir() if p.name.endswith(".toml"))


def resolve(spec: str) -> Path:
    """A path to a grid file, or the name of a shipped one."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    found = shipped(spec) if "/" not in spec and not path.suffix else None
    if found is None:
        raise WsolbenchError(f"--config {spec}: no such file (shipped grid files: {', '.join(shipped_names())})")
    return found


def option_kinds(command) -> dict[str, tuple[str, bool]]:
    """{option name: (kind, is a list)} of a command function, from its annotations: kind is bool, int, float,
    str or path (``Optional`` and ``Annotated`` taken off)."""
    kinds = {}
    for name, hint in typing.get_type_hints(command).items():
        if name in ("ctx", "return"):
            continue
        args = [a for a in typing.get_args(hint) if a is not type(None)] if typing.get_origin(hint) in (typing.Union, types.UnionType) else [hint]
        hint = args[0] if len(args) == 1 else hint
        many = typing.get_origin(hint) is list
        base = typing.get_args(hint)[0] if many else hint
        kinds[name] = ({bool: "bool", int: "int", float: "float", Path: "path"}.get(base, "str"), many)
    return kinds


def _check(path: Path, key: str, value, kind: str, many: bool):
    """``value`` as the option takes it, or one line saying what the key allows."""
    want = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string",
            "path": "a path (a string)"}[kind]
    if many:
        if not isinstance(value, list):
            raise WsolbenchError(f"{path}: key '{key}' must be a list ({key} = [...]) of values each {want}, got {value!r}")
        return [_check(path, key, v, kind, False) for v in value]
    ok = {"bool": isinstance(value, bool), "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": isinstance(value, str), "path": isinstance(value, str)}[kind]
    if not ok:
        raise WsolbenchError(f"{path}: key '{key}' must be {want}, got {value!r}")
    return float(value) if kind == "float" else Path(value).expanduser() if kind == "path" else value


def _pairs(path: Path, table: str, values) -> list[str]:
    """A ``[settings]`` / ``[data_options]`` table as ``key=value`` strings (a list: the sweep ``key=v1,v2``)."""
    if not isinstance(values, dict):
        raise WsolbenchError(f"{path}: '{table}' must be a table ([{table}] with key = value lines)")
    out = []
    for key, value in values.items():
        if isinstance(value, dict):
            raise WsolbenchError(f"{path}: [{table}] {key}: a value or a list of values, not a table")
        items = value if isinstance(value, list) and table == "settings" else [value]
        if not items:
            raise WsolbenchError(f"{path}: [{table}] {key}: an empty list")
        out.append(f"{key}=" + ",".join(v if isinstance(v, str) and table != "settings" else json.dumps(v) for v in items))
    return out


def read(path: Path, kinds: dict[str, tuple[str, bool]]) -> dict:
    """{option name: value} of the grid file at ``path`` for a command whose options have ``kinds``;
    the tables as ``settings`` / ``data_options`` (key=value lists) and ``slurm_file`` (the file, for [slurm])."""
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:  # a key given twice is one of these
        raise WsolbenchError(f"{path}: not a valid TOML file ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WsolbenchError(f"{path}: cannot read ({exc})") from None
    options = {KEY_OF.get(name, name): name for name in kinds if name not in NOT_KEYS}
    out = {}
    for key, value in data.items():
        if key in TABLES:
            if key == "slurm":
                if not isinstance(value, dict):
                    raise WsolbenchError(f"{path}: 'slurm' must be a table ([slurm] with key = value lines)")
                out["slurm_file"] = path  # read by parse_slurm when the grid runs on Slurm
            else:
                out[key] = _pairs(path, key, value)
            continue
        name = options.get(key)
        if name is None:
            hint = f"; did you mean '{KEY_OF[key]}'?" if key in KEY_OF else ""
            raise WsolbenchError(f"{path}: unknown key '{key}'{hint} (keys: {', '.join(sorted(options))}, "
                                 f"tables: {', '.join(f'[{t}]' for t in TABLES)})")
        out[name] = _check(path, key, value, *kinds[name])
    return out


def given_here(ctx) -> set[str]:
    """The options the command line gave (not left at their defaults)."""
    return {name for name in ctx.params if ctx.get_parameter_source(name).name not in ("DEFAULT", "DEFAULT_MAP")}


def merge(ctx, path: Path, command) -> dict:
    """The parameters of ``command`` (its typer context ``ctx``): each from the command line where given there,
    else from the file, else the default. ``--set`` keys on the command line replace the file's keys of the same
    name, the others stay."""
    from wsolbench.engine.runconfig import parse_settings

    given = given_here(ctx)
    params = dict(ctx.params)
    for name, value in read(path, option_kinds(command)).items():
        if name == "settings" and "settings" in given:
            cli_keys = {pair.partition("=")[0].strip() for pair in ctx.params["settings"]}
            params["settings"] = [p for p in value if p.partition("=")[0] not in cli_keys] + list(ctx.params["settings"])
        elif name not in given:
            params[name] = value
    parse_settings(params.get("data_options"))  # a malformed pair fails here, naming it
    return params
