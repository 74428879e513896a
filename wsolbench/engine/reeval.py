"""``wsolbench eval RUN_DIR``: evaluate a trained run again, under its protocol or another one, and as the
papers also ran it: through a post-hoc explainer, with ten-crop classification, with another run's classes.

Each such evaluation is a *variant* of the run's own numbers, with its own files beside them:
``eval-PROTOCOL-VARIANT.json`` and ``per-image-PROTOCOL-VARIANT.npz`` (``eval_variant`` names it), so the
run's own rows and intervals never change.
"""
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


def eval_variant(explainer: str | None = None, tencrop: bool = False, classifier_run: str | None = None) -> str:
    """The variant's name: its parts joined by '-' ("" for the run's own evaluation)."""
    parts = [explainer or "", "tencrop" if tencrop else "", f"classifier-{classifier_run}" if classifier_run else ""]
    return "-".join(p for p in parts if p)


def metrics_name(protocol: str, variant: str = "") -> str:
    return f"eval-{protocol}{'-' + variant if variant else ''}.json"


def load_weights(method, checkpoint: Path, cfg: RunConfig) -> None:
    """Load a run's checkpoint into ``method`` (one error line when it does not fit)."""
    ckpt = load_checkpoint(checkpoint)
    try:
        method.load_state_dict(ckpt["model"])
    except (RuntimeError, KeyError) as exc:
        raise WsolbenchError(f"{checkpoint}: does not fit {cfg.method}/{cfg.backbone} "
                             f"({str(exc).splitlines()[0]})") from None


def _run_of(source: Path, option: str) -> tuple[Path, Path]:
    """(run folder, checkpoint file) of a run folder or of a run's checkpoint file (its config.json beside it)."""
    source = Path(source)
    run_dir, checkpoint = (source, source / R.CHECKPOINT) if source.is_dir() else (source.parent, source)
    if not source.exists():
        raise WsolbenchError(f"{option} {source}: no such run folder or checkpoint file")
    if not (run_dir / R.CONFIG).is_file():
        raise WsolbenchError(f"{option} {source}: no {R.CONFIG} in {run_dir} (give a run folder or its checkpoint file)")
    return run_dir, checkpoint


def load_classifier(source: Path, class_names: list[str], dev, info):
    """Another run's trained method, as the classifier of this evaluation; its classes must be these, in order.

    Returns (method, its run folder's config.json)."""
    run_dir, checkpoint = _run_of(source, "--classifier")
    saved = R.read_json(run_dir / R.CONFIG)
    cfg = dataclasses.replace(RunConfig.from_dict(saved), device=str(dev))
    setup = build(cfg, dev, info, log=lambda *_: None)
    theirs = list(setup.dataset.class_names)
    if len(theirs) != len(class_names):
        raise WsolbenchError(f"--classifier {source}: {len(theirs)} classes ({cfg.dataset}), but the evaluated run "
                             f"has {len(class_names)}; Top-k needs the same classes")
    if theirs != list(class_names):
        i = next(i for i, (a, b) in enumerate(zip(theirs, class_names)) if a != b)
        raise WsolbenchError(f"--classifier {source}: its classes are in another order (class {i} is '{theirs[i]}' "
                             f"there, '{class_names[i]}' here)")
    load_weights(setup.method, checkpoint, cfg)
    if getattr(setup.method, "needs_backbone", True) is False:
        raise WsolbenchError(f"--classifier {source}: {cfg.method} has no classifier")
    return setup.method, saved


def reevaluate(run_dir: Path, protocol: str | None = None, policy: str | None = None, save_maps: bool = False,
               device: str = "auto", explainer: str | None = None, explainer_layer: str | None = None,
               box_search: str | None = None, score_workers: int | None = None, tencrop: bool = False,
               classifier: Path | None = None) -> str:
    """Returns the name of the metrics file written in ``run_dir``.

    ``explainer``: the maps come from that post-hoc explainer on the run's classifier (wsolbench.explain).
    ``tencrop``: the classes from ten crops (``data.loading.TenCropTransform``), the maps from the full view.
    ``classifier``: the classes from another run (its folder or checkpoint file), the maps from this one.
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
    load_weights(setup.method, run_dir / R.CHECKPOINT, cfg)
    method = setup.method
    if explainer:
        from wsolbench.explain import make_explainer

        method = make_explainer(setup.method, explainer, explainer_layer)
    other, other_cfg = None, None
    if classifier is not None:
        other, other_cfg = load_classifier(classifier, setup.dataset.class_names, dev, info)
        other = other.to(dev)
    variant = eval_variant(explainer, tencrop, other_cfg and other_cfg.get("run_id"))
    # the network sees what it saw in training; only the scoring protocol changes
    input_size = saved.get("resolved_input_size") or setup.input_size
    accs, collected = {}, {}
    for split in ("val", "test"):
        samples = setup.splits[split]
        collected[split] = [] if save_maps else None
        accs[split] = evaluate_split(method, ImageDataset(samples, test_transform(input_size, tencrop)), samples,
                                     setup.protocol, dev, batch_size=max(cfg.batch_size, 1), info=info,
                                     collect=collected[split], score_workers=score_workers, classifier=other)
        if save_maps and info.is_main:
            write_maps_file(run_dir / f"maps-{split}{'-' + variant if variant else ''}.npz", collected[split],
                            [s.image_id for s in samples])
    metrics = setup.protocol.summarize(accs["test"], accs["val"], policy=cfg.threshold_policy)
    metrics.update(run_id=saved.get("run_id"), method=cfg.method, backbone=cfg.backbone, dataset=cfg.dataset,
                   seed=cfg.seed, commit=R.git_commit(), cls_views="ten-crop" if tencrop else "one view")
    if variant:
        metrics["variant"] = variant
    if explainer:
        metrics.update(explainer=explainer, explainer_layer=method.layer_name)
    if other_cfg:
        metrics.update(classifier=f"{other_cfg['method']}/{other_cfg['backbone']}", classifier_run=other_cfg.get("run_id"),
                       classifier_seed=other_cfg.get("seed"))
    name = metrics_name(setup.protocol.name, variant)
    if info.is_main:
        write_run_records(run_dir, setup.protocol, accs, setup.splits, variant)  # per-image rows (wsolbench.stats)
        write_json(run_dir / name, metrics)
    D.barrier()  # under torchrun every rank returns only once rank 0 has written the file
    return name


def extra_evaluations(run_dirs: list[Path], explainers: list[str], layer: str | None, console, device: str = "auto",
                      tencrop: bool = False) -> None:
    """The grid's evaluation axes: score every finished run through each explainer and, with ``tencrop``, its own
    maps and each explainer's with ten-crop classes (each variant once: an existing file is kept)."""
    from wsolbench.engine.rundir import read_json
    from wsolbench.explain import explainer_class

    for name in explainers:
        explainer_class(name)  # an unknown name fails before any work
    variants = [(name, False) for name in explainers] + ([(None, True)] + [(n, True) for n in explainers] if tencrop else [])
    for run_dir in run_dirs:
        protocol = read_json(Path(run_dir) / "config.json").get("resolved_protocol")
        for name, ten in variants:
            if (Path(run_dir) / metrics_name(protocol, eval_variant(name, ten))).exists():
                continue
            reevaluate(run_dir, explainer=name, explainer_layer=layer, device=device, tencrop=ten)
            console.print(f"{run_dir}: scored {'through ' + name if name else ''}{' with ten-crop classes' if ten else ''}")
