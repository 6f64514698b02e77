from __future__ import annotations

import math

import pytest
import torch

from course_lib.attention import MultiHeadAttention
from course_lib.heads import ov_circuit, qk_circuit
from course_lib.induction import (
    INDUCTION_CHECKPOINT,
    AttentionOnlyTransformer,
    InductionConfig,
    SymbolVocab,
    ablate_heads,
    attention_patterns,
    composition_score,
    composition_scores,
    head_scores,
    induction_score,
    load_induction,
    main,
    measure,
    n_hooks,
    previous_token_score,
    random_composition_baseline,
    repeated_tokens,
    save_induction,
    split_losses,
    torch_reference,
    training_batch,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def small_model(seed: int, **kw) -> AttentionOnlyTransformer:
    torch.manual_seed(seed)
    cfg = InductionConfig(
        **{"vocab_size": 12, "d_model": 12, "n_heads": 3, "n_layers": 2, "max_len": 16, **kw}
    )
    return AttentionOnlyTransformer(cfg).double().eval()


# --- scores on hand-built patterns ---------------------------------------------------------------
def test_previous_token_score_of_hand_built_patterns():
    T = 6
    prev = torch.zeros(T, T)
    prev[0, 0] = 1.0
    prev[torch.arange(1, T), torch.arange(T - 1)] = 1.0  # every query on the token before it
    assert previous_token_score(prev).item() == pytest.approx(1.0)
    itself = torch.eye(T)
    assert previous_token_score(itself).item() == pytest.approx(0.0)
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # 1 / (t + 1) per key
    want = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    assert previous_token_score(uniform).item() == pytest.approx(want)
    half = 0.5 * prev + 0.5 * itself  # half on the previous token, half on itself
    assert previous_token_score(half).item() == pytest.approx(0.5)
    batch = torch.stack([prev, itself, uniform])[None]  # (1, 3, T, T): scores per leading index
    assert previous_token_score(batch).shape == (1, 3)


def test_induction_score_of_hand_built_patterns():
    period, T = 4, 8
    ind = torch.eye(T)  # first copy: attend to itself (not scored)
    for t in range(period, T):
        ind[t] = 0.0
        ind[t, t - period + 1] = 1.0  # the token after the earlier copy of token t
    assert induction_score(ind, period).item() == pytest.approx(1.0)
    dup = torch.eye(T)
    for t in range(period, T):
        dup[t] = 0.0
        dup[t, t - period] = 1.0  # the earlier copy itself: a duplicate-token head, not induction
    assert induction_score(dup, period).item() == pytest.approx(0.0)
    uniform = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]
    want = sum(1 / (t + 1) for t in range(period, T)) / (T - period)
    assert induction_score(uniform, period).item() == pytest.approx(want)
    # three copies of a period-3 stretch: queries 3..8 score their key t - 2
    w = torch.zeros(9, 9)
    w[:, 0] = 1.0
    w[5, 3], w[5, 0] = 1.0, 0.0  # one query of the six scored puts everything on its target
    assert induction_score(w, 3).item() == pytest.approx(1 / 6)


def test_scores_refuse_bad_input():
    with pytest.raises(ValueError, match="T, T"):
        previous_token_score(torch.ones(3, 4))
    with pytest.raises(ValueError, match="period"):
        induction_score(torch.ones(4, 4) / 4, 4)


def test_head_scores_on_a_built_circuit(gen):
    """Heads whose patterns are forced by the model's weights: the scores find them."""
    model = small_model(0, n_heads=1, d_model=16, vocab_size=8, max_len=16)
    ids = repeated_tokens(3, 8, 8, gen)
    w = attention_patterns(model, ids)
    assert w.shape == (2, 3, 1, 16, 16)
    scores = head_scores(model, ids, 8)
    assert torch.allclose(scores["previous token"], previous_token_score(w).mean(1))
    assert torch.allclose(scores["induction"], induction_score(w, 8).mean(1))


# --- the model -----------------------------------------------------------------------------------
def test_attention_and_logits_equal_torch_reference(gen):
    model = small_model(int(torch.randint(0, 1000, (1,), generator=gen)))
    ref = torch_reference(model)
    ids = torch.randint(0, 12, (3, 16), generator=gen)
    logits_ref, weights_ref = ref(ids)
    w = attention_patterns(model, ids)  # (L, B, h, T, T)
    for layer in range(2):
        assert torch.allclose(w[layer], weights_ref[layer], atol=1e-12)
    assert torch.allclose(model(ids), logits_ref, atol=1e-10)
    assert w.triu(1).abs().max() == 0  # causal


def test_attention_equals_a_by_hand_computation(gen):
    """Layer 0's weights from the embeddings and the per-head matrices, float64."""
    model = small_model(3)
    ids = torch.randint(0, 12, (2, 10), generator=gen)
    x = model.embed.weight[ids] + model.pos.weight[:10]
    mha = model.layers[0]
    w = attention_patterns(model, ids)[0]
    for i in range(mha.n_heads):
        scores = x @ qk_circuit(mha, i) @ x.transpose(1, 2) / math.sqrt(mha.d_k)
        scores = scores.masked_fill(torch.ones(10, 10).triu(1).bool(), float("-inf"))
        assert torch.allclose(w[:, i], scores.softmax(-1), atol=1e-12)


def test_model_refuses_bad_ids():
    model = small_model(0)
    with pytest.raises(ValueError, match="at most 16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError):
        model(torch.full((1, 3), 12))


def test_vocab_round_trip_and_unknown_characters():
    vocab = SymbolVocab()
    assert vocab.vocab_size == 64
    text = "kQ3x9Lm2,Zp7.Wd0"
    assert vocab.decode(vocab.encode(text)) == text
    with pytest.raises(ValueError, match="unknown characters ' !'"):
        vocab.encode("a b!")


def test_data(gen):
    ids = repeated_tokens(5, 7, 20, gen)
    assert ids.shape == (5, 14) and torch.equal(ids[:, :7], ids[:, 7:])
    batch = training_batch(50, 33, 64, gen)
    assert batch.shape == (50, 33)
    for row in batch:  # each row repeats with some period in [4, 16]
        periods = [p for p in range(4, 17) if torch.equal(row[p:], row[:-p])]
        assert periods, row


def test_split_losses():
    losses = torch.tensor([4.0, 4.0, 4.0, 9.0, 1.0, 1.0, 1.0])  # half = 4: tokens 1..7
    assert split_losses(losses, 4) == {"first": 4.0, "repeat": 1.0}
    with pytest.raises(ValueError, match="shape"):
        split_losses(losses, 5)


# --- ablation ------------------------------------------------------------------------------------
def test_ablation_zeroes_the_head_and_restores_the_model(gen):
    model = small_model(1)
    ids = repeated_tokens(2, 8, 12, gen)
    before = model(ids)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    layer, head = 1, int(torch.randint(0, 3, (1,), generator=gen))
    with ablate_heads(model, [(layer, head)]):
        assert n_hooks(model) == 1
        ablated = model(ids)
    assert n_hooks(model) == 0
    assert torch.equal(model(ids), before)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not torch.allclose(ablated, before)
    # by hand: layer 1's output minus head `head`'s contribution
    x1 = model.residual(ids)[1]
    mha: MultiHeadAttention = model.layers[1]
    mha(x1, mask=torch.ones(16, 16).tril().bool(), need_weights=True)
    a = mha.attn_weights[:, head]  # (B, T, T)
    v = x1 @ mha.w_v.weight.T[:, head * 4 : (head + 1) * 4]
    contribution = (a @ v) @ mha.w_o.weight.T[head * 4 : (head + 1) * 4]
    assert torch.allclose(ablated, model.unembed(model.residual(ids)[2] - contribution), atol=1e-10)
    assert torch.allclose(contribution, (a @ x1) @ ov_circuit(mha, head), atol=1e-10)  # the OV circuit


def test_ablation_restores_the_model_after_an_error(gen):
    model = small_model(2)
    ids = repeated_tokens(2, 8, 12, gen)
    before = model(ids)
    with pytest.raises(RuntimeError, match="inside"):
        with ablate_heads(model, [(0, 0), (1, 2)]):
            assert n_hooks(model) == 2
            raise RuntimeError("inside")
    assert n_hooks(model) == 0
    assert all(len(m._forward_pre_hooks) == 0 for m in model.modules())
    assert torch.equal(model(ids), before)


def test_ablation_refuses_bad_heads():
    model = small_model(0)
    for heads, match in (([(2, 0)], "layer"), ([(0, 3)], "head index"), ([0], "pairs")):
        with pytest.raises(ValueError, match=match):
            with ablate_heads(model, heads):
                pass
        assert n_hooks(model) == 0


def test_ablating_every_head_leaves_the_direct_path(gen):
    model = small_model(4)
    ids = repeated_tokens(2, 8, 12, gen)
    with ablate_heads(model, [(layer, h) for layer in range(2) for h in range(3)]):
        out = model(ids)
    direct = model.unembed(model.embed(ids) + model.pos.weight[:16])
    assert torch.allclose(out, direct, atol=1e-12)


# --- composition ---------------------------------------------------------------------------------
def test_composition_score_limits(gen):
    a = torch.randn(6, 6, generator=gen, dtype=torch.float64)
    assert composition_score(a, torch.eye(6)) == pytest.approx(1 / math.sqrt(6))
    u = torch.zeros(6, 6, dtype=torch.float64)
    u[0, 0] = 1.0
    assert composition_score(u, u) == pytest.approx(1.0)  # rank one, aligned
    assert composition_score(u, u.T.roll(1, 0)) == pytest.approx(0.0)  # writes where nothing reads


def test_composition_scores_match_their_definition():
    model = small_model(5)
    k = composition_scores(model, "K")
    assert k.shape == (3, 3)
    a, b = model.layers
    with torch.no_grad():
        m = qk_circuit(b, 2) @ ov_circuit(a, 1).T  # keys of head (1, 2) reading what (0, 1) wrote
        want = (m.norm() / (qk_circuit(b, 2).norm() * ov_circuit(a, 1).norm())).item()
    assert k[1, 2].item() == pytest.approx(want)
    assert not torch.allclose(composition_scores(model, "Q"), k)
    base = random_composition_baseline(12, 4, "K", samples=50, generator=torch.Generator().manual_seed(0))
    assert 0.05 < base < 0.6


# --- training and checkpoints --------------------------------------------------------------------
def test_train_command_writes_a_checkpoint_that_loads_back(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    args = ["train", "--out", str(out), "--steps", "3", "--d-model", "8", "--n-heads", "2", "--context", "8"]
    assert main(args + ["--eval-every", "2"]) == 0
    model, extra = load_induction(out)
    assert model.cfg == InductionConfig(64, 8, 2, 2, 8)
    assert extra["train_config"]["steps"] == 3
    assert [s for s, _ in extra["history"]["evals"]] == [0, 2, 3]
    assert extra["metrics"] == measure(model, half=4)
    assert "saved" in capsys.readouterr().out
    assert main(["info", str(out)]) == 0


def test_checkpoint_is_checked_when_read(tmp_path):
    model = small_model(0).float()
    path = tmp_path / "m.pt"
    save_induction(path, model, {"note": "x"})
    again, extra = load_induction(path)
    assert extra == {"note": "x"}
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    ckpt = torch.load(path, weights_only=True)
    ckpt["model"]["unembed.weight"][0, 0] += 1.0
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="checksum"):
        load_induction(path)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable"):
        load_induction(path)


@pytest.mark.skipif(not INDUCTION_CHECKPOINT.exists(), reason="no shipped checkpoint")
def test_shipped_checkpoint_reaches_its_recorded_in_context_drop():
    model, extra = load_induction()
    got = measure(model)
    for key in ("loss_first", "loss_repeat"):
        assert got[key] == pytest.approx(extra["metrics"][key], abs=1e-3)
    for key in ("previous_token", "induction"):
        assert torch.allclose(torch.tensor(got[key]), torch.tensor(extra["metrics"][key]), atol=1e-3)
    assert got["loss_repeat"] < 0.3 < 4.0 < got["loss_first"]
    assert max(max(row) for row in got["induction"][1:]) > 0.7
    assert max(got["previous_token"][0]) > 0.7
