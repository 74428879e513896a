"""The ACoL/I2C diagnostics (docs/i2c-diagnosis.md): logged beside the loss terms, never part of the loss."""
import json
from pathlib import Path

import pytest
import torch

from test_methods_models import TinyBackbone
from wsolbench.methods.base import build_method

LABELS = torch.tensor([0, 0, 1, 1, 2, 2])


def step(name, epoch=1, **settings):
    """One training forward on fixed images and weights; the method's output."""
    torch.manual_seed(0)
    method = build_method(name, TinyBackbone(), 3, head_width=8, loss_start_epoch=1, **settings)
    method.train()
    method.set_epoch(epoch)
    images = torch.randn(len(LABELS), 3, 16, 16, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(2)  # dropout and seed draws
    return method, method(images, LABELS)


def test_i2c_logs_norms_and_unweighted_terms_once_sc_gc_are_on():
    _, before = step("i2c", epoch=0)
    assert set(before.logs) == {"feat_norm"}  # SC/GC still off: no seeds drawn (the RNG stream is untouched)
    _, out = step("i2c", epoch=1)
    assert {"feat_norm", "seed_norm", "sc_unweighted", "gc_unweighted", "center_norm"} <= set(out.logs)
    assert float(out.losses["sc"].detach()) == pytest.approx(0.008 * float(out.logs["sc_unweighted"]), rel=1e-6)
    assert float(out.logs["feat_norm"]) == pytest.approx(float(out.features.norm(dim=1).mean()), rel=1e-6)
    assert all(not torch.as_tensor(v).requires_grad for v in out.logs.values())


def test_gradient_norms_follow_the_weights_and_leave_training_unchanged():
    _, plain = step("i2c-sc")
    _, logged = step("i2c-sc", log_grads=True)
    assert "grad_cls" not in plain.logs and float(logged.logs["grad_cls"]) > 0
    for k in plain.losses:  # the same terms: the extra backward passes change nothing
        assert torch.equal(plain.losses[k], logged.losses[k])
    _, ten = step("i2c-sc", log_grads=True, lambda1=0.08)
    assert float(ten.logs["grad_sc"]) == pytest.approx(10 * float(logged.logs["grad_sc"]), rel=1e-4)
    assert float(ten.logs["grad_cls"]) == pytest.approx(float(logged.logs["grad_cls"]), rel=1e-6)
    _, off = step("i2c-sc", epoch=0, log_grads=True)
    assert float(off.logs["grad_sc"]) == 0.0  # the zero term before loss_start_epoch


def test_parameters_after_a_step_do_not_depend_on_log_grads():
    params = []
    for log in (False, True):
        method, out = step("i2c", log_grads=log)
        sum(out.losses.values()).backward()
        params.append(torch.cat([p.grad.flatten() for p in method.parameters() if p.grad is not None]))
    assert torch.equal(params[0], params[1])


def test_the_engine_writes_diagnostics_to_the_step_log(tmp_path):
    from wsolbench.data.synthetic import generate
    from wsolbench.engine.runconfig import RunConfig
    from wsolbench.engine.train import train_and_evaluate

    root = generate(tmp_path / "synth", classes=4, per_class=8, test_per_class=2, size=32)
    cfg = RunConfig(method="i2c", backbone="test_resnet", output_stride=8, dataset="synthetic", data_root=str(root),
                    epochs=1, batch_size=8, lr=0.01, input_size=32, out=str(tmp_path / "runs"),
                    method_settings={"head_width": 16, "loss_start_epoch": 0, "log_grads": True})
    run_dir = train_and_evaluate(cfg, show_progress=False)
    steps = [json.loads(line) for line in (run_dir / "steps.jsonl").read_text().splitlines()]
    assert steps and all({"feat_norm", "seed_norm", "grad_cls", "grad_sc", "grad_gc"} <= set(r["diag"]) for r in steps)
    assert all(r["loss"] == pytest.approx(r["cls"] + r["sc"] + r["gc"], rel=1e-5) for r in steps)


def test_diagnosis_script_skips_steps_whose_ce_is_zero(tmp_path):
    """A fine-tuned classifier can log a CE of exactly 0.0; the per-epoch SC/CE ratio leaves that step out."""
    import importlib.util
    import math

    spec = importlib.util.spec_from_file_location("i2c_diagnosis", Path(__file__).parents[1] / "benchmarks" / "i2c_diagnosis.py")
    diagnosis = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(diagnosis)
    steps = [{"epoch": 0, "cls": 0.0, "sc": 4.0}, {"epoch": 0, "cls": 2.0, "sc": 4.0}]
    (tmp_path / "steps.jsonl").write_text("".join(json.dumps(s) + "\n" for s in steps))
    (tmp_path / "epochs.jsonl").write_text(json.dumps({"epoch": 0, "train_top1_cls": 50.0, "val": {"top1_cls": 40.0}}) + "\n")
    row = diagnosis.per_epoch(tmp_path)[0]
    assert row["sc/cls"] == 2.0 and row["sc/cls max"] == 2.0
    assert math.isnan(diagnosis.per_cls(steps[0], "sc"))
