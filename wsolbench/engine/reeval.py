"""``wsolbench eval RUN_DIR``: evaluate a trained run again, under its protocol or another one."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from wsolbench.engine import distributed as D
from wsolbench.engine import rundir as R
from wsolbench.engine.atomic import write_json
from wsolbench.engine.evaluate import evaluate_split
from wsolbench.engine.evaluate import save_maps as write_maps_file
from wsolbench.engine.runconfig import RunConfig
from wsolbench.engine.train import build, load_checkpoint, resolve_device
from wsolbench.errors import WsolbenchError
from wsolbench.stats import write_run_records


def load_weights(method, run_dir: Path, cfg: RunConfig) -> None:
    """Load a run's last checkpoint into ``method`` (one error line when it does not fit)."""
    ckpt = load_checkpoint(Path(run_dir) / R.CHECKPOINT)
    try:
        method.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        raise WsolbenchError(f"{Path(run_dir) / R.CHECKPOINT}: does not fit {cfg.method}/{cfg.backbone} "
                             f"({str(exc).splitlines()[0]})") from None


def reevaluate(run_dir: Path, protocol: str | None = None, policy: str | None = None, save_maps: bool = False,
               device: str = "auto", explainer: str | None = None, explainer_layer: str | None = None,
               box_search: str | None = None, score_workers: int | None = None) -> str:
    """Returns the name of the metrics file written in ``run_dir``.

    ``explainer``: the maps come from that post-hoc explainer on the run's classifier (wsolbench.explain);
    the file is ``eval-PROTOCOL-EXPLAINER.json`` with ``explainer`` in it.
    """
    from wsolbench.data.loading import ImageDataset, test_transform

    run_dir = Path(run_dir)
    saved = R.read_json(run_dir / R.CONFIG)
    cfg = RunConfig.from_dict(saved)
    cfg = dataclasses.replace(cfg, device=device, protocol=protocol or saved.get("resolved_protocol"),
                              threshold_policy=policy or cfg.threshold_policy, box_search=box_search or cfg.box_search,
                              score_workers=score_workers)
    dev = resolve_device(cfg.device)
    info = D.init(dev)
    setup = build(cfg, dev, info)
    load_weights(setup.method, run_dir, cfg)
    method = setup.method
    if explainer:
        from wsolbench.explain import Explained

        method = Explained(setup.method, explainer, explainer_layer)
    # the network sees what it saw in training; only the scoring protocol changes
    input_size = saved.get("resolved_input_size") or setup.input_size
    accs, collected = {}, {}
    for split in ("val", "test"):
        samples = setup.splits[split]
        collected[split] = [] if save_maps else None
        accs[split] = evaluate_split(method, ImageDataset(samples, test_transform(input_size)), samples,
                                     setup.protocol, dev, batch_size=max(cfg.batch_size, 1), info=info,
                                     collect=collected[split], score_workers=score_workers)
        if save_maps and info.is_main:
            write_maps_file(run_dir / f"maps-{split}{'-' + explainer if explainer else ''}.npz", collected[split], [s.image_id for s in samples])
    metrics = setup.protocol.summarize(accs["test"], accs["val"], policy=cfg.threshold_policy)
    metrics.update(run_id=saved.get("run_id"), method=cfg.method, backbone=cfg.backbone, dataset=cfg.dataset,
                   seed=cfg.seed, commit=R.git_commit())
    name = f"eval-{setup.protocol.name}.json"
    if explainer:
        from wsolbench.explain import explained_metrics_name

        metrics.update(explainer=explainer, explainer_layer=method.layer_name)
        name = explained_metrics_name(setup.protocol.name, explainer)
    if info.is_main:
        write_run_records(run_dir, setup.protocol, accs, setup.splits)  # per-image rows (wsolbench.stats)
        write_json(run_dir / name, metrics)
    D.barrier()  # under torchrun every rank returns only once rank 0 has written the file
    return name


def explain_runs(run_dirs: list[Path], explainers: list[str], layer: str | None, console, device: str = "auto") -> None:
    """The grid's explainer axis: score every finished run's classifier through each explainer (once)."""
    from wsolbench.engine.rundir import read_json
    from wsolbench.explain import explained_metrics_name, explainer_class

    for name in explainers:
        explainer_class(name)  # an unknown name fails before any work
    for run_dir in run_dirs:
        protocol = read_json(Path(run_dir) / "config.json").get("resolved_protocol")
        for name in explainers:
            if (Path(run_dir) / explained_metrics_name(protocol, name)).exists():
                continue
            reevaluate(run_dir, explainer=name, explainer_layer=layer, device=device)
            console.print(f"{run_dir}: scored through {name}")
