"""The grid ``wsolbench run`` trains: method x backbone x dataset x seed, each dataset's defaults, the options
given, and a ``--set`` sweep's product (selected on val after training: ``engine/sweep.py``)."""
from __future__ import annotations

import dataclasses


def plan_configs(methods, backbones, datasets, seeds, given: dict, fixed: dict, settings, data_options,
                 sweep_budget, sweep_seed) -> tuple[list, list, dict]:
    """(the RunConfigs, one per cell, the sweep's settings list, the sweep's record).

    ``given``: RunConfig options the user set (None: unset); ``fixed``: options that are always taken as given."""
    from wsolbench.backbones import is_transformer_name
    from wsolbench.backbones.families import apply_family_regime  # --pretrained: the family's input size, stride
    from wsolbench.engine.defaults import run_defaults
    from wsolbench.engine.grid import expand
    from wsolbench.engine.runconfig import RunConfig, parse_settings, parse_sweep
    from wsolbench.engine.sweep import check_sweep, sweep_settings

    methods = canonical_methods(methods)  # an alias (acol) names the same run as its entry (acol-simplified)
    sweep = parse_sweep(settings)  # key -> values; one value each: no sweep
    grid, sweep_info = sweep_settings(sweep, sweep_budget, sweep_seed)
    configs = []
    for name in datasets or [RunConfig.dataset]:
        # per dataset: its defaults, then the options given; its method settings apply where a
        # method has them, --set wins over them
        defaults = run_defaults(name)
        dataset_settings = defaults.pop("method_settings", {})
        check_sweep(sweep, methods or [RunConfig.method], dataset_settings)
        for user_settings in grid:
            method_settings = {**dataset_settings, **user_settings}
            base = RunConfig(dataset=name, **fixed, **defaults, method_settings=method_settings,
                             dataset_options=parse_settings(data_options))
            base = dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})
            configs += expand(base, methods, backbones, [name], seeds,
                              default_settings=set(method_settings) - set(user_settings))
    configs = [apply_family_regime(c, {k for k, v in given.items() if v is not None}) for c in configs]
    if given.get("output_stride") is None:  # a dataset's default stride is for CNNs: a transformer's is its patch
        configs = [dataclasses.replace(c, output_stride=None) if c.output_stride and is_transformer_name(c.backbone)
                   else c for c in configs]
    configs = list({c.run_id(): c for c in configs}.values())  # a method without the swept key: once
    return configs, grid, sweep_info


def canonical_methods(names: list[str] | None) -> list[str] | None:
    """Aliases resolved, duplicates dropped (``-m acol -m acol-simplified`` is one method)."""
    from wsolbench.registry import METHODS

    return list(dict.fromkeys(METHODS.canonical(n) for n in names)) if names else names
