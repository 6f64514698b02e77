"""The decoder-only GPT of lesson 13: the model against torch's own layers, the cache, the config,
checkpoints, the shipped checkpoint against a bigram baseline, and generation."""

from __future__ import annotations

import math

import pytest
import torch

from course_lib.corpus import load_corpus
from course_lib.decode import next_token_distribution
from course_lib.gpt import (
    GPT,
    GPT_CHECKPOINT,
    GPTConfig,
    bigram_nll,
    evaluate,
    generate,
    greedy,
    lm_loss,
    load_gpt,
    sample,
    save_gpt,
    torch_reference,
    tune_k,
    unigram_nll,
)
from course_lib.tokenizer import BPETokenizer


def small(gen: torch.Generator, dtype=torch.float64, **kw) -> GPT:
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    cfg = {"vocab_size": 37, "d_model": 24, "n_heads": 3, "n_layers": 2, "d_ff": 40, "max_len": 20, **kw}
    return GPT(GPTConfig(**cfg)).to(dtype)


def test_matches_torch_reference_outputs_and_gradients(gen):
    model = small(gen)
    ref = torch_reference(model)
    ids = torch.randint(0, 37, (3, 17), generator=gen)
    ours, theirs = model(ids), ref(ids)
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)
    ours.square().sum().backward()
    theirs.square().sum().backward()
    torch.testing.assert_close(model.embed.weight.grad, ref.tok.grad, atol=1e-9, rtol=1e-9)
    for a, b in zip(model.blocks, ref.layers):
        torch.testing.assert_close(a.ff.w_1.weight.grad, b.linear1.weight.grad, atol=1e-9, rtol=1e-9)
        qkv = torch.cat(
            [a.self_attn.w_q.weight.grad, a.self_attn.w_k.weight.grad, a.self_attn.w_v.weight.grad]
        )
        torch.testing.assert_close(qkv, b.self_attn.in_proj_weight.grad, atol=1e-9, rtol=1e-9)


def test_causal_future_does_not_leak(gen):
    model = small(gen)
    ids = torch.randint(0, 37, (2, 12), generator=gen)
    changed = ids.clone()
    changed[:, 7:] = torch.randint(0, 37, (2, 5), generator=gen)
    torch.testing.assert_close(model(ids)[:, :7], model(changed)[:, :7])


def test_cache_equals_no_cache(gen):
    model = small(gen)
    ids = torch.randint(0, 37, (2, 15), generator=gen)
    full = model(ids)
    cache = model.new_cache()
    k = int(torch.randint(1, 8, (1,), generator=gen))
    parts = [model(ids[:, :k], cache=cache)] + [model(ids[:, t : t + 1], cache=cache) for t in range(k, 15)]
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-10, rtol=1e-10)
    assert len(cache[0]) == 15


def test_generation_with_and_without_cache(gen):
    model = small(gen, dtype=torch.float32)
    prompt = torch.randint(0, 37, (2, 4), generator=gen)
    assert torch.equal(greedy(model, prompt, 10), greedy(model, prompt, 10, use_cache=False))
    seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    a = sample(model, prompt, 10, 0.8, top_k=5, rng=torch.Generator().manual_seed(seed))
    b = sample(model, prompt, 10, 0.8, top_k=5, rng=torch.Generator().manual_seed(seed), use_cache=False)
    assert torch.equal(a, b) and a.shape == (2, 10)
    # greedy is argmax of the shared decode path's distribution at a tiny temperature
    logits = model(prompt)[:, -1]
    top1 = next_token_distribution(logits, temperature=1e-4).argmax(-1)
    assert torch.equal(greedy(model, prompt, 1)[:, 0], top1)
    one = greedy(model, prompt[0], 3)  # a 1-D prompt works too
    assert one.shape == (1, 3)


def test_generate_checks_its_arguments(gen):
    model = small(gen, dtype=torch.float32)
    prompt = torch.randint(0, 37, (1, 4), generator=gen)
    with pytest.raises(ValueError, match="max_new"):
        greedy(model, prompt, 100)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        greedy(model, prompt + 100, 3)
    with pytest.raises(ValueError, match="choose"):
        generate(model, prompt, 3, lambda z: z.float().mean(-1))
    with pytest.raises(ValueError, match="temperature"):
        sample(model, prompt, 3, temperature=0.0)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"n_layers": -1}, "n_layers"),
        ({"dropout": 1.5}, "dropout"),
        ({"positional": "rope"}, "positional"),
        ({"max_len": 2.5}, "max_len"),
    ],
)
def test_config_validation(kw, match):
    args = {"vocab_size": 10, **kw}
    with pytest.raises(ValueError, match=match) as e:
        GPTConfig(**args)
    assert "\n" not in str(e.value)


def test_save_load_round_trip(tmp_path, gen):
    model = small(gen, dtype=torch.float32)
    tok = BPETokenizer.train("the cat sat on the mat, the cat sat.", 270)
    path = tmp_path / "gpt.pt"
    save_gpt(path, model, tok, {"note": "test"})
    raw = torch.load(path, weights_only=True)  # plain data only
    assert raw["checksum"].startswith("sha256:")
    loaded, tok2, extra = load_gpt(path)
    assert tok2 == tok and extra == {"note": "test"}
    ids = torch.randint(0, 37, (2, 9), generator=gen)
    assert torch.equal(loaded(ids), model.eval()(ids))
    raw["model"]["norm.gamma"] = raw["model"]["norm.gamma"] + 1
    torch.save(raw, path)
    with pytest.raises(ValueError, match="checksum"):
        load_gpt(path)
    with pytest.raises(ValueError, match="no checkpoint"):
        load_gpt(tmp_path / "missing.pt")


def test_save_refuses_non_finite(tmp_path, gen):
    model = small(gen, dtype=torch.float32)
    with torch.no_grad():
        model.norm.gamma[0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        save_gpt(tmp_path / "x.pt", model, BPETokenizer())
    assert not (tmp_path / "x.pt").exists()


def test_shipped_checkpoint_beats_bigram():
    model, tok, extra = load_gpt(GPT_CHECKPOINT)
    corpus = load_corpus()
    train, val, test = (tok.encode(corpus.split(s)) for s in ("train", "validation", "test"))
    V = tok.vocab_size
    k = tune_k(lambda k: bigram_nll(train, val, V, k))
    bigram = bigram_nll(train, test, V, k) / (len(test) - 1)
    unigram = unigram_nll(train, test, V, tune_k(lambda k: unigram_nll(train, val, V, k))) / (len(test) - 1)
    ours = evaluate(model, torch.tensor(test)) / (len(test) - 1)
    assert ours < bigram - 0.3 < unigram
    assert math.isclose(math.exp(ours), extra["test_perplexity"], rel_tol=1e-3)


def test_lm_loss_is_next_token_cross_entropy(gen):
    model = small(gen)
    ids = torch.randint(0, 37, (2, 8), generator=gen)
    logits = model(ids[:, :-1])
    want = -logits.log_softmax(-1).gather(-1, ids[:, 1:, None]).mean()
    torch.testing.assert_close(lm_loss(model, ids), want)


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--steps", "-1"], "--steps"),
        (["--minutes", "0"], "--minutes"),
        (["--steps", "3", "--minutes", "2"], "--minutes"),
        (["--dropout", "1.5"], "--dropout"),
        (["--n-heads", "3"], "--n-heads"),
        (["--lr", "nan"], "--lr"),
    ],
)
def test_train_command_refuses_bad_arguments(args, flag, tmp_path, capsys):
    from course_lib.gpt import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path / "m.pt"), *args])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"argument {flag}" in err
    assert not (tmp_path / "m.pt").exists()


def test_train_command_refuses_a_folder_as_out(tmp_path, capsys):
    from course_lib.gpt import main

    with pytest.raises(SystemExit) as e:
        main(["train", "--out", str(tmp_path), "--steps", "1"])
    assert e.value.code == 2 and "expected a file path" in capsys.readouterr().err


def test_train_command_refuses_a_bad_corpus_file(tmp_path, capsys):
    from course_lib.gpt import main

    empty = tmp_path / "empty.txt"
    empty.write_text("")
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"\x00\x01\xff\xfe")
    for bad, word in ((tmp_path / "missing.txt", "missing.txt"), (empty, "empty"), (binary, "data.bin")):
        assert main(["train", "--out", str(tmp_path / "m.pt"), "--steps", "1", "--corpus", str(bad)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and word in err[0], err
    assert not (tmp_path / "m.pt").exists()
