import math

import pytest
import torch

from course_lib.toy_tasks import (
    CopyTask,
    TinyLM,
    generate,
    make_tiny_lm,
    next_token_loss,
    train_lm,
    warmup_factor,
)


def test_copy_task_sequences(gen):
    task = CopyTask(k=4, n_letters=6)
    ids = task.sample(8, gen)
    assert ids.shape == (8, task.seq_len) and ids.dtype == torch.long
    assert torch.equal(ids[:, :4], ids[:, 5:9])
    assert (ids[:, 4] == task.sep_id).all() and (ids[:, -1] == task.end_id).all()
    assert ids.max() < task.vocab_size
    text = task.decode(ids[0])
    assert text[4] == "|" and text.endswith(".") and task.encode(text) == ids[0].tolist()
    assert torch.equal(task.prompts(ids), ids[:, :5])


def test_same_seed_same_batch():
    task = CopyTask()
    a = task.sample(4, torch.Generator().manual_seed(3))
    b = task.sample(4, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_honest_floor():
    task = CopyTask(k=5, n_letters=8)
    assert math.isclose(task.honest_floor(), 4 * math.log(8) / 11)
    # a model that knows the rule exactly and guesses uniformly where it must reaches the floor
    ids = task.sample(64, torch.Generator().manual_seed(0))
    logits = torch.full((64, task.seq_len - 1, task.vocab_size), -1e4)
    logits[:, : task.k - 1, : task.n_letters] = 0.0  # uniform over the letters
    logits[torch.arange(64)[:, None], torch.arange(task.k - 1, task.seq_len - 1), ids[:, task.k :]] = 0.0
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, task.vocab_size), ids[:, 1:].reshape(-1))
    assert math.isclose(loss.item(), task.honest_floor(), rel_tol=1e-6)


def test_copy_accuracy():
    task = CopyTask(k=3, n_letters=4)
    ids = torch.tensor([task.encode("abc|abc."), task.encode("dda|dda.")])
    gen = torch.tensor([task.encode("abc|abc"), task.encode("dda|ddd")])
    assert task.copy_accuracy(gen, ids) == pytest.approx((5 / 6, 0.5))


def test_bad_input():
    with pytest.raises(ValueError, match="n_letters"):
        CopyTask(n_letters=30)
    with pytest.raises(ValueError, match="vocabulary"):
        CopyTask().encode("xyz")
    model = make_tiny_lm(CopyTask())
    with pytest.raises(ValueError, match="outside the vocabulary"):
        model(torch.tensor([[0, 99]]))
    with pytest.raises(ValueError, match="steps"):
        train_lm(model, CopyTask(), steps=0)


def test_make_tiny_lm_is_seeded_and_leaves_global_rng():
    task = CopyTask()
    torch.manual_seed(5)
    before = torch.rand(2)
    torch.manual_seed(5)
    a, b = make_tiny_lm(task, seed=1), make_tiny_lm(task, seed=1)
    assert torch.equal(torch.rand(2), before)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_causal_model_does_not_see_the_future(gen):
    task = CopyTask()
    model = make_tiny_lm(task, n_layers=2, norm_first=True)
    ids = task.sample(2, gen)
    changed = ids.clone()
    changed[:, -1] = (changed[:, -1] + 1) % task.vocab_size
    with torch.no_grad():
        a, b = model(ids), model(changed)
        assert torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)  # earlier positions unaffected
        a, b = model(ids, causal=False), model(changed, causal=False)
        assert not torch.allclose(a[:, :-1], b[:, :-1], atol=1e-6)  # without the mask they are


def test_warmup_factor():
    assert warmup_factor(0, 0) == 1.0
    assert warmup_factor(0, 10) == pytest.approx(0.1)
    assert warmup_factor(9, 10) == 1.0 and warmup_factor(50, 10) == 1.0


def test_training_learns_to_copy_and_generate():
    task = CopyTask(k=3, n_letters=4)
    model = make_tiny_lm(task, seed=0)
    threads = torch.get_num_threads()
    losses = train_lm(model, task, steps=150, lr=1e-2, seed=0, progress=False)
    assert torch.get_num_threads() == threads  # one_thread() restored the setting
    assert len(losses) == 150 and losses[-1] < losses[0]
    ids = task.sample(64, torch.Generator().manual_seed(1))
    assert next_token_loss(model, ids).item() < task.honest_floor() + 0.2
    out = generate(model, task.prompts(ids), task.k)
    letters, exact = task.copy_accuracy(out, ids)
    assert letters > 0.9


def test_generate_shapes():
    model = TinyLM(6, d_model=8, n_heads=2, n_layers=1, d_ff=16)
    out = generate(model, torch.tensor([[1, 2], [3, 4]]), 3)
    assert out.shape == (2, 5) and torch.equal(out[:, :2], torch.tensor([[1, 2], [3, 4]]))
