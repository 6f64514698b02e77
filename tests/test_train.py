import math

import pytest
import torch
import torch.nn.functional as F

from course_lib.data import PAD, batch_at, get_task
from course_lib.losses import cross_entropy, label_smoothing_loss, perplexity
from course_lib.schedule import linear_lr, make_optimizer, make_scheduler, transformer_lr
from course_lib.train import TrainConfig, Trainer, evaluate, main, model_for_task


def _logits_and_target(gen, B=4, T=7, V=11):
    logits = torch.randn(B, T, V, generator=gen, dtype=torch.float64) * 3
    target = torch.randint(3, V, (B, T), generator=gen)
    target[0, 4:] = PAD  # padded positions
    target[2, 1:] = PAD
    return logits, target


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_label_smoothing_equals_torch(gen, eps):
    logits, target = _logits_and_target(gen)
    ours = label_smoothing_loss(logits, target, eps)
    ref = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=eps)
    assert torch.allclose(ours, ref, atol=1e-6)
    per_token = label_smoothing_loss(logits, target, eps, reduction="none")
    ref_none = F.cross_entropy(
        logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=eps, reduction="none"
    ).view_as(target)
    assert per_token.shape == target.shape and torch.allclose(per_token, ref_none, atol=1e-6)
    assert (per_token[target == PAD] == 0).all()
    summed = label_smoothing_loss(logits, target, eps, reduction="sum")
    assert torch.allclose(summed / (target != PAD).sum(), ref, atol=1e-5)


def test_label_smoothing_gradient_matches_torch(gen):
    logits, target = _logits_and_target(gen)
    a = logits.clone().requires_grad_(True)
    b = logits.clone().requires_grad_(True)
    label_smoothing_loss(a, target, 0.1).backward()
    F.cross_entropy(b.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=0.1).backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-6)
    assert (a.grad[target == PAD] == 0).all()  # padding positions get no gradient


def test_no_inf_when_a_probability_is_zero(gen):
    logits, target = _logits_and_target(gen)
    logits = logits.float()
    logits[..., 5] = -200.0  # softmax underflows to exactly 0 for this class in float32
    assert (logits.softmax(-1)[..., 5] == 0).all()
    naive = -(logits.softmax(-1).log().mean(-1))  # log of softmax: -inf -> inf
    assert torch.isinf(naive).any()
    ours = label_smoothing_loss(logits, target, 0.1)
    ref = F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD, label_smoothing=0.1)
    assert torch.isfinite(ours) and torch.allclose(ours, ref, rtol=1e-5)


def test_finite_with_minus_inf_logits(gen):
    logits, target = _logits_and_target(gen)
    logits[..., :3] = float("-inf")  # PAD, SOS, EOS forbidden outright
    logits.requires_grad_(True)
    ours = label_smoothing_loss(logits, target, 0.1)
    assert torch.isfinite(ours)
    ours.backward()
    assert torch.isfinite(logits.grad).all()
    # the forbidden classes get no smoothing mass: the same as smoothing over the allowed classes only
    ref = F.cross_entropy(
        logits.detach()[..., 3:].flatten(0, 1),
        (target - 3).clamp(min=0).flatten(),
        reduction="none",
        label_smoothing=0.1,
    )
    ref = ref[target.flatten() != PAD].mean()
    assert torch.allclose(ours, ref, atol=1e-5)
    # without smoothing, ours is torch's plain cross-entropy
    assert torch.allclose(
        cross_entropy(logits.detach(), target),
        F.cross_entropy(logits.detach().flatten(0, 1), target.flatten(), ignore_index=PAD),
    )


def test_loss_bad_inputs():
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothing_loss(torch.zeros(2, 3, 5), torch.ones(2, 3, dtype=torch.long), 1.5)
    with pytest.raises(ValueError, match="target.shape"):
        label_smoothing_loss(torch.zeros(2, 3, 5), torch.ones(2, 4, dtype=torch.long))


def test_perplexity():
    assert perplexity(math.log(7)) == pytest.approx(7)
    assert perplexity(0.0) == 1.0


def test_schedule_values():
    d, w = 512, 4000
    # equation (3), the paper's base model
    assert transformer_lr(1, d, w) == pytest.approx(512**-0.5 * 4000**-1.5)
    assert transformer_lr(w, d, w) == pytest.approx(512**-0.5 * 4000**-0.5)  # the peak, ~7.0e-4
    assert transformer_lr(w, d, w) == pytest.approx(6.99e-4, rel=1e-3)
    assert transformer_lr(16000, d, w) == pytest.approx(512**-0.5 / 16000**0.5)
    up = [transformer_lr(s, d, w) for s in range(1, w + 1)]
    down = [transformer_lr(s, d, w) for s in range(w, 5 * w)]
    assert all(a < b for a, b in zip(up, up[1:])) and all(a > b for a, b in zip(down, down[1:]))
    assert max(range(1, 20001), key=lambda s: transformer_lr(s, d, w)) == w  # the peak is at step = warmup
    assert transformer_lr(2 * w, d, w) == pytest.approx(transformer_lr(w, d, w) / math.sqrt(2))
    assert transformer_lr(w // 2, d, w) == pytest.approx(transformer_lr(w, d, w) / 2)  # linear warm-up
    assert transformer_lr(100, d, w, scale=2.0) == pytest.approx(2 * transformer_lr(100, d, w))
    assert transformer_lr(0, d, w) == transformer_lr(1, d, w)
    with pytest.raises(ValueError, match="warmup"):
        transformer_lr(10, d, 0)


def test_scheduler_and_adam():
    model = torch.nn.Linear(3, 3)
    opt = make_optimizer(model)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-9
    sched = make_scheduler(opt, d_model=64, warmup=10, scale=1.5)
    seen = []
    for _ in range(30):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([transformer_lr(k, 64, 10, 1.5) for k in range(1, 31)])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_schedule_equals_torchs_linear_schedulers(seed):
    # reference: torch's own LinearLR warm-up followed by a LinearLR decay, on random settings
    g = torch.Generator().manual_seed(seed)
    warmup = int(torch.randint(1, 30, (), generator=g))
    total = warmup + int(torch.randint(5, 200, (), generator=g))
    peak, floor = float(torch.rand((), generator=g)) * 1e-2 + 1e-4, float(torch.rand((), generator=g)) * 0.2
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    parts = [
        torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, max(warmup - 1, 1)),
        torch.optim.lr_scheduler.LinearLR(opt, 1.0, floor, total - warmup),
    ]
    ref_sched = torch.optim.lr_scheduler.SequentialLR(opt, parts, milestones=[warmup - 1])
    ref = []
    for _ in range(total + 20):
        ref.append(opt.param_groups[0]["lr"])
        opt.step()
        ref_sched.step()
    start = 0 if warmup > 1 else 1  # LinearLR needs total_iters >= 1: skip its 1-step warm-up
    got = [linear_lr(k, peak, warmup, total, floor) for k in range(1, total + 21)]
    assert got[start:] == pytest.approx(ref[start:], abs=1e-12)
    assert got[warmup - 1] == pytest.approx(peak) and got[total - 1] == pytest.approx(peak * floor)
    for bad in ({"warmup": 0}, {"warmup": total}, {"peak": 0.0}, {"floor": 1.5}):
        kw = {"peak": peak, "warmup": warmup, "total": total, "floor": floor, **bad}
        with pytest.raises(ValueError, match="linear_lr needs"):
            linear_lr(5, **kw)


def test_trainer_with_the_linear_schedule():
    model = model_for_task("reversal", d_model=16, n_heads=2, layers=1, d_ff=32, seed=0)
    cfg = TrainConfig(
        task="reversal", batch_size=8, schedule="linear", warmup=3, peak_lr=2e-3, total_steps=10
    )
    h = Trainer(model, cfg, "cpu").run(12, progress=False)
    assert h["lr"] == pytest.approx([linear_lr(k, 2e-3, 3, 10) for k in range(1, 13)])
    with pytest.raises(ValueError, match="schedule must be one of"):
        Trainer(model, TrainConfig(task="reversal", schedule="cosine"), "cpu")
    with pytest.raises(ValueError, match="warmup < total"):  # linear needs the run's length
        Trainer(model, TrainConfig(task="reversal", schedule="linear"), "cpu")


def test_training_lowers_the_loss_and_clips():
    torch.manual_seed(0)
    model = model_for_task("reversal", d_model=32, n_heads=2, layers=1, d_ff=64, seed=0)
    trainer = Trainer(model, TrainConfig(task="reversal", batch_size=32, warmup=20, clip_norm=0.5), "cpu")
    h = trainer.run(60, progress=False)
    assert trainer.step == 60 and len(h["loss"]) == 60
    assert sum(h["loss"][-10:]) / 10 < sum(h["loss"][:10]) / 10 - 0.2
    assert all(math.isfinite(x) for x in h["loss"])
    # the recorded norm is before clipping; after clipping the update used norm <= 0.5
    b = batch_at("reversal", "train", 32, 0, 999)
    trainer.train_step(b)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    assert total <= 0.5 + 1e-4
    assert h["lr"][:3] == pytest.approx(
        [transformer_lr(k, 32, 20, trainer.config.lr_scale) for k in (1, 2, 3)]
    )
    assert h["perplexity"][-1] == pytest.approx(math.exp(h["cross_entropy"][-1]))
    ev = evaluate(model, "reversal", n=20)
    # against an independent evaluation: greedy decoding by full forward passes, one example at a
    # time and without the KV cache, and the token cross-entropy from F.cross_entropy
    task = get_task("reversal")
    pairs = task.eval_pairs(20, "test")
    sv, tv = task.src_vocab, task.tgt_vocab
    model.eval()
    got, nll, n_tok = [], 0.0, 0
    with torch.no_grad():
        for src, tgt in pairs:
            s = torch.tensor([sv.encode(src)])
            out = [tv.sos_id]
            for _ in range(task.max_tgt_len + 1):
                nxt = int(model(s, torch.tensor([out]))[0, -1].argmax())
                if nxt == tv.eos_id:
                    break
                out.append(nxt)
            got.append(tv.decode(out[1:]))
            ids = tv.encode(tgt, add_sos=True, add_eos=True)
            logits = model(s, torch.tensor([ids[:-1]]))[0]
            nll += float(F.cross_entropy(logits.double(), torch.tensor(ids[1:]), reduction="sum"))
            n_tok += len(ids) - 1
    assert ev.n == 20
    assert ev.errors == [(s, t, g) for (s, t), g in zip(pairs, got) if g != t]
    assert ev.exact_match == sum(g == t for (_, t), g in zip(pairs, got)) / 20
    assert ev.cross_entropy == pytest.approx(nll / n_tok, rel=1e-4)
    assert ev.perplexity == pytest.approx(math.exp(nll / n_tok), rel=1e-4)


def test_trainer_refuses_a_model_of_another_task():
    model = model_for_task("reversal", d_model=16, n_heads=2, layers=1)
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(model, TrainConfig(task="dates"), "cpu")


def test_cli_trains_and_saves(tmp_path, capsys):
    out = tmp_path / "rev.pt"
    metrics = main(
        [
            "--task",
            "reversal",
            "--steps",
            "12",
            "--out",
            str(out),
            "--d-model",
            "16",
            "--heads",
            "2",
            "--layers",
            "1",
        ]
        + [
            "--d-ff",
            "32",
            "--batch-size",
            "8",
            "--eval-n",
            "10",
            "--eval-every",
            "0",
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    text = capsys.readouterr().out
    assert "held-out: exact match" in text and out.is_file()
    assert 0 <= metrics["heldout_exact_match"] <= 1 and metrics["tokens_per_second"] > 0
    resumed = main(
        [
            "--resume",
            str(out),
            "--steps",
            "15",
            "--eval-n",
            "10",
            "--no-progress",
            "--device",
            "cpu",
            "--task",
            "reversal",
        ]
    )
    assert "resumed from" in capsys.readouterr().out and 0 <= resumed["heldout_exact_match"] <= 1


def test_cli_linear_schedule(tmp_path, capsys):
    out = tmp_path / "lin.pt"
    small = "--d-model 16 --heads 2 --layers 1 --d-ff 32 --batch-size 8 --eval-n 5 --eval-every 0"
    args = f"--task reversal --steps 12 --schedule linear --warmup 4 --peak-lr 2e-3 {small} --no-progress"
    main(args.split() + ["--device", "cpu", "--out", str(out)])
    trainer = Trainer.load(out, "cpu")
    assert trainer.config.schedule == "linear" and trainer.config.total_steps == 12
    assert trainer.history["lr"] == pytest.approx([linear_lr(k, 2e-3, 4, 12) for k in range(1, 13)])
    capsys.readouterr()
