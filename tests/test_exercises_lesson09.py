import torch
import torch.nn.functional as F

from course_lib.data import EOS, PAD, SOS
from course_lib.exercises.lesson09 import (
    check_label_smoothing,
    check_teacher_forcing,
    check_train_step,
)
from course_lib.losses import label_smoothing_loss


# --- teacher forcing -----------------------------------------------------------------------
def io_right(targets):
    B, T = targets.shape
    lengths = (targets != PAD).sum(1)
    tgt_in = torch.cat([torch.full((B, 1), SOS), targets], dim=1)
    tgt_out = torch.cat([targets, torch.full((B, 1), PAD)], dim=1)
    tgt_out[torch.arange(B), lengths] = EOS
    return tgt_in, tgt_out


def test_teacher_forcing_accepts_right_answer():
    r = check_teacher_forcing(io_right)
    assert r.passed, r.message
    assert str(r).startswith("✅")


def test_teacher_forcing_catches_swap():
    r = check_teacher_forcing(lambda t: io_right(t)[::-1])
    assert not r.passed and "swapped" in r.message


def test_teacher_forcing_catches_eos_at_the_end():
    def eos_last(targets):
        B = targets.size(0)
        tgt_in = torch.cat([torch.full((B, 1), SOS), targets], dim=1)
        return tgt_in, torch.cat([targets, torch.full((B, 1), EOS)], dim=1)

    r = check_teacher_forcing(eos_last)
    assert not r.passed and str(r).startswith("❌")
    assert "right after the last real token" in r.message


def test_teacher_forcing_catches_missing_sos_and_shape():
    r = check_teacher_forcing(lambda t: (t, t))
    assert not r.passed and "expected" in r.message and "SOS or EOS" in r.message
    r = check_teacher_forcing(lambda t: (torch.cat([t, t[:, :1]], 1), io_right(t)[1]))
    assert not r.passed and "start with SOS" in r.message
    r = check_teacher_forcing(lambda t: 3)
    assert not r.passed and "two tensors" in r.message


# --- label smoothing ------------------------------------------------------------------------
def ls_right(logits, target, eps):
    logp = logits.log_softmax(-1)
    keep = target != PAD
    nll = -logp.gather(-1, target[:, None]).squeeze(-1)
    loss = (1 - eps) * nll - eps * logp.mean(-1)
    return loss[keep].mean()


def test_label_smoothing_accepts_right_answer():
    r = check_label_smoothing(ls_right)
    assert r.passed, r.message
    assert str(r).startswith("✅")


def test_label_smoothing_catches_log_of_softmax():
    def naive(logits, target, eps):
        logp = logits.softmax(-1).log()
        keep = target != PAD
        nll = -logp.gather(-1, target[:, None]).squeeze(-1)
        return ((1 - eps) * nll - eps * logp.mean(-1))[keep].mean()

    r = check_label_smoothing(naive)
    assert not r.passed and "log_softmax" in r.message


def test_label_smoothing_catches_missing_smoothing_and_padding():
    def no_smoothing(lg, t, eps):
        nll = -lg.log_softmax(-1).gather(-1, t[:, None]).squeeze(-1)
        return nll[t != PAD].mean()

    r = check_label_smoothing(no_smoothing)
    assert not r.passed and "epsilon" in r.message

    def all_positions(lg, t, eps):
        logp = lg.log_softmax(-1)
        nll = -logp.gather(-1, t[:, None]).squeeze(-1)
        return ((1 - eps) * nll - eps * logp.mean(-1)).mean()

    r = check_label_smoothing(all_positions)
    assert not r.passed and "PAD" in r.message


def test_label_smoothing_refuses_the_library():
    from course_lib.losses import label_smoothing_loss

    for fn in (
        lambda lg, t, eps: F.cross_entropy(lg, t, ignore_index=PAD, label_smoothing=eps),
        label_smoothing_loss,
        lambda lg, t, eps: label_smoothing_loss(lg, t, eps),
    ):
        r = check_label_smoothing(fn)
        assert not r.passed and "write it yourself" in r.message


def test_label_smoothing_catches_other_variant():
    def excludes_true_class(logits, target, eps):  # eps spread over the V-1 wrong classes
        logp = logits.log_softmax(-1)
        V = logits.size(-1)
        q = torch.full_like(logp, eps / (V - 1)).scatter(-1, target[:, None], 1 - eps)
        return -(q * logp).sum(-1)[target != PAD].mean()

    r = check_label_smoothing(excludes_true_class)
    assert not r.passed
    assert "V - 1 wrong classes" in r.message and "epsilon / V each" in r.message
    assert "Szegedy" in r.message and "label_smoothing=" in r.message


def test_label_smoothing_other_variant_hint_is_specific():
    # a loss that is off in another way (epsilon doubled) gets the plain difference, not the V - 1 hint
    r = check_label_smoothing(lambda lg, t, eps: ls_right(lg, t, 2 * eps))
    assert not r.passed and "V - 1" not in r.message and "differs from the expected values" in r.message


# --- one training step ----------------------------------------------------------------------
def train_step(model, optimizer, src, tgt_in, tgt_out, epsilon, clip_norm, **wrong):
    model.train()
    logp = model(src, tgt_in).log_softmax(-1)  # (B, T, V)
    nll = -logp.gather(-1, tgt_out[..., None]).squeeze(-1)  # (B, T)
    per_token = (1 - epsilon) * nll + epsilon * (-logp.mean(-1)) if not wrong.get("no_smoothing") else nll
    loss = per_token.mean() if wrong.get("pad_counted") else per_token[tgt_out != PAD].mean()
    if not wrong.get("no_zero_grad"):
        optimizer.zero_grad()
    loss.backward()
    if not wrong.get("no_clip"):
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    if not wrong.get("no_step"):
        optimizer.step()
    if wrong.get("zero_grad_after"):
        optimizer.zero_grad()
    return loss.item()


def test_train_step_checker():
    r = check_train_step(train_step, repeat=2)
    assert r.passed and str(r).startswith("✅"), r.message
    for wrong, words in [
        ("no_smoothing", "plain cross-entropy"),
        ("pad_counted", "real tokens only"),
        ("no_clip", "not clipped"),
        ("no_zero_grad", "zero_grad() first"),
        ("no_step", "optimizer.step()"),
        ("zero_grad_after", "before loss.backward()"),
    ]:
        r = check_train_step(lambda *a, w=wrong: train_step(*a, **{w: True}))
        assert not r.passed and words in r.message, (wrong, r.message)
    r = check_train_step(lambda *a: torch.tensor([1.0, 2.0]))
    assert not r.passed and "number" in r.message


def test_train_step_checker_refuses_the_library():
    def with_library_loss(model, optimizer, src, tgt_in, tgt_out, epsilon, clip_norm):
        loss = label_smoothing_loss(model(src, tgt_in), tgt_out, epsilon)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    def with_torch_loss(model, optimizer, src, tgt_in, tgt_out, epsilon, clip_norm):
        logits = model(src, tgt_in)
        return F.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(), label_smoothing=epsilon).item()

    for answer in (with_library_loss, with_torch_loss):
        r = check_train_step(answer)
        assert not r.passed and "write it yourself" in r.message
