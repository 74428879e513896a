"""GPU smoke check: one small grid cell on CUDA with --amp and --channels-last, against the same cell on the CPU.

    python benchmarks/gpu_smoke.py              # on a CUDA machine: both halves, the checks, images/s; < 5 min
    python benchmarks/gpu_smoke.py --cpu-only   # the CPU half alone (what a machine without a GPU can run)

Without a CUDA device (and without --cpu-only) it prints one line and exits 1.

The cell: i2c (class-paired batches, SC + GC from epoch 0) on a random-init timm resnet18, the synthetic
set (8 classes, 64 px), 2 epochs. Dropout 0 and raster-order seeds, so the first step of the CPU run and of the
CUDA run see the same weights, the same images and the same seed rule: they differ only in arithmetic.

Checks (each prints its figures, then PASS or FAIL; any FAIL exits 1):

1. Training, first step: the CUDA loss (float16 autocast, channels_last) equals the CPU loss (float32)
   within 1 % relative, for the total loss and for its cross-entropy term. Why 1 %: float16 keeps 11
   significant bits (relative rounding 4.9e-4 per operation); a loss is a mean over the batch, so the
   rounding errors of ~20 layers partly average out and stay near 1e-3, while a wrong memory format,
   a missing cast or a broken kernel moves a random-init network's loss by far more than 1 %. The SC and
   GC terms are printed but not checked: a seed may move to a neighbouring pixel when two map values
   are equal to float16 precision. Later steps are not compared: the two runs diverge as training
   amplifies the rounding differences, as two seeds would.
2. Evaluation, same weights: the CUDA-trained checkpoint scored on the CPU in float32 (``wsolbench eval
   --device cpu``, at the threshold the CUDA run chose) against the CUDA run's own AMP evaluation:
   Top-1 Cls, GT-known Loc, Top-1 Loc and the whole GT-known Loc curve over thresholds agree within 2 test
   images (2 / n_test in percent). Why 2 images: the maps differ by float16 rounding (~1e-3 after min-max
   normalisation, against a threshold step of 0.01), so an image changes its box or class only when a
   map value or a logit lies within that rounding of a threshold edge, an IoU of 0.5 or a tie: at most a
   couple of images of a small test set, never a systematic shift.

Images/s: training (steps' images over the training time, ``times.json``) and evaluation (val + test
images over the final evaluation's time) for each device. Tiny images and a small set: a smoke figure,
not a throughput benchmark (see bench_loader.py and the README's performance notes for those).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

LOSS_RTOL = 0.01  # check 1
EVAL_IMAGES = 2  # check 2


def cell(out: Path, data: Path, device: str, fast: bool, args) -> "RunConfig":  # noqa: F821
    from wsolbench.engine.runconfig import RunConfig

    return RunConfig(method="i2c", backbone=args.backbone, dataset="synthetic", data_root=str(data), epochs=args.epochs,
                     batch_size=16, images_per_class=2, lr=0.01, input_size=args.input_size, seed=0,
                     method_settings={"head_width": 128, "dropout": 0.0, "seed_order": "raster", "loss_start_epoch": 0},
                     device=device, amp=fast, channels_last=fast, out=str(out))


def train(cfg) -> tuple[Path, dict]:
    """Train and evaluate the cell; returns its run folder and its figures."""
    from wsolbench.engine.train import train_and_evaluate

    t0 = time.perf_counter()
    run_dir = train_and_evaluate(cfg, show_progress=False)
    times = json.loads((run_dir / "times.json").read_text())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    first = json.loads((run_dir / "steps.jsonl").read_text().splitlines()[0])
    n_eval = metrics["n_val_images"] + metrics["n_images"]
    return run_dir, {"first_step": first, "metrics": metrics, "wall_s": time.perf_counter() - t0,
                     "train_ips": times["train_images_per_s"], "eval_ips": n_eval / times["eval_s"]}


def report(name: str, figures: dict) -> None:
    m = figures["metrics"]
    print(f"{name}: {figures['wall_s']:.1f} s; train {figures['train_ips']:.0f} images/s, "
          f"eval {figures['eval_ips']:.0f} images/s; test top1_cls {m.get('top1_cls', float('nan')):.2f}, "
          f"gt_known_loc {m['gt_known_loc']:.2f} (n_test {m['n_images']})")


def check(label: str, ok: bool, detail: str) -> bool:
    print(f"{'PASS' if ok else 'FAIL'} {label}: {detail}")
    return ok


def compare_first_step(cpu: dict, gpu: dict) -> bool:
    ok = True
    for key in ("loss", "cls"):
        a, b = cpu["first_step"][key], gpu["first_step"][key]
        rel = abs(a - b) / max(abs(a), 1e-12)
        ok &= check(f"first-step {key}", rel <= LOSS_RTOL, f"cpu {a:.6f}, cuda amp {b:.6f}, relative {rel:.2e} "
                                                            f"(tolerance {LOSS_RTOL:g})")
    terms = ", ".join(f"{k} cpu {cpu['first_step'][k]:.4g} / cuda {gpu['first_step'][k]:.4g}" for k in ("sc", "gc"))
    print(f"info first-step {terms} (not checked)")
    return ok


def compare_evaluation(run_dir: Path, gpu: dict) -> bool:
    """The CUDA-trained weights scored on the CPU in float32, at the CUDA run's threshold."""
    from wsolbench.engine.reeval import reevaluate

    amp = gpu["metrics"]
    name = reevaluate(run_dir, policy=f"fixed:{amp['threshold']}", device="cpu")
    fp32 = json.loads((run_dir / name).read_text())
    tol = 100.0 * EVAL_IMAGES / amp["n_images"]
    ok = True
    for key in ("top1_cls", "gt_known_loc", "top1_loc"):
        diff = abs(fp32[key] - amp[key])
        ok &= check(f"eval {key}", diff <= tol + 1e-9, f"cuda amp {amp[key]:.2f}, cpu fp32 {fp32[key]:.2f}, "
                                                     f"|diff| {diff:.2f} (tolerance {tol:.2f} = {EVAL_IMAGES} images)")
    a, b = amp["curves"]["gt_known_loc"]["test"], fp32["curves"]["gt_known_loc"]["test"]
    worst = max(abs(x - y) for x, y in zip(a, b))
    ok &= check("eval gt_known_loc curve", worst <= tol + 1e-9,
                f"largest |diff| over {len(a)} thresholds {worst:.2f} (tolerance {tol:.2f})")
    return ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-only", action="store_true", help="run the CPU half only (no GPU needed, no checks)")
    parser.add_argument("--out", type=Path, help="where the data and the runs go (default: a temporary folder)")
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    if not args.cpu_only and not torch.cuda.is_available():
        print("gpu_smoke: no CUDA device here (torch.cuda.is_available() is False); nothing checked "
              "(--cpu-only runs the CPU half)", file=sys.stderr)
        return 1
    from wsolbench.data.synthetic import generate

    with tempfile.TemporaryDirectory(prefix="gpu_smoke_") as tmp:
        root = args.out or Path(tmp)
        data = generate(root / "synthetic", classes=8, per_class=16, test_per_class=10, size=64)
        print(f"cell: i2c / {args.backbone} / synthetic 8 classes / {args.input_size} px / {args.epochs} epochs; "
              f"torch {torch.__version__}")
        _, cpu = train(cell(root / "cpu", data, "cpu", False, args))
        report("cpu fp32", cpu)
        if args.cpu_only:
            return 0
        print(f"cuda: {torch.cuda.get_device_name(0)}")
        gpu_dir, gpu = train(cell(root / "cuda", data, "cuda", True, args))
        report("cuda amp + channels_last", gpu)
        ok = compare_first_step(cpu, gpu)
        ok &= compare_evaluation(gpu_dir, gpu)
    print("gpu_smoke: all checks passed" if ok else "gpu_smoke: FAILED (see FAIL lines above)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
