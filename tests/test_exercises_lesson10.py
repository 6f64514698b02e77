import pytest
import torch

from course_lib.decode import beam_hypotheses, length_penalty
from course_lib.exercises.lesson10 import (
    check_beam_search,
    check_greedy_decode,
    check_top_p_filter,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see conftest.py


def right_greedy(model, src, sos_id, eos_id, max_len):
    memory = model.encode(src)
    src_mask = (src != model.cfg.pad_id)[:, None, None, :]
    ys = torch.full((src.size(0), 1), sos_id)
    for _ in range(max_len):
        h = model.decode(ys, memory, src_mask)
        ys = torch.cat([ys, model.generator(h[:, -1]).argmax(-1, keepdim=True)], 1)
        if (ys == eos_id).any(1).all():
            break
    return ys[:, 1:]


def reencoding_greedy(model, src, sos_id, eos_id, max_len):
    ys = torch.full((src.size(0), 1), sos_id)
    for _ in range(max_len):
        ys = torch.cat([ys, model(src, ys)[:, -1].argmax(-1, keepdim=True)], 1)  # encoder every step
    return ys[:, 1:]


def first_position_greedy(model, src, sos_id, eos_id, max_len):
    memory = model.encode(src)
    ys = torch.full((src.size(0), 1), sos_id)
    for _ in range(max_len):
        h = model.decode(ys, memory)
        ys = torch.cat([ys, model.generator(h[:, 0]).argmax(-1, keepdim=True)], 1)  # wrong position
    return ys[:, 1:]


def test_greedy_checker():
    res = check_greedy_decode(right_greedy)
    assert res and str(res).startswith("✅")
    res = check_greedy_decode(reencoding_greedy)
    assert not res and "encoder ran" in res.message and "once" in res.message
    res = check_greedy_decode(first_position_greedy)
    assert not res and "differs from greedy decoding" in res.message and "LAST position" in res.message
    res = check_greedy_decode(lambda m, s, a, b, n: right_greedy(m, s, a, b, n).tolist())
    assert not res and "tensor" in res.message


def right_top_p(probs, p):
    sorted_p, order = probs.sort(descending=True)
    keep = (sorted_p.cumsum(0) - sorted_p) < p
    out = torch.zeros_like(probs)
    out[order[keep]] = sorted_p[keep]
    return out / out.sum()


def too_small_top_p(probs, p):  # keeps only tokens whose running mass stays <= p
    sorted_p, order = probs.sort(descending=True)
    keep = sorted_p.cumsum(0) <= p
    keep[0] = True
    out = torch.zeros_like(probs)
    out[order[keep]] = sorted_p[keep]
    return out / out.sum()


def test_top_p_checker():
    assert check_top_p_filter(right_top_p)
    res = check_top_p_filter(too_small_top_p)
    assert not res and "crosses p" in res.message
    res = check_top_p_filter(lambda probs, p: right_top_p(probs, p) * right_top_p(probs, p).sum() * 0.5)
    assert not res and "renormalise" in res.message
    res = check_top_p_filter(lambda probs, p: probs)
    assert not res and "keep the" in res.message


def right_beam(next_log_probs, sos_id, eos_id, max_len, beam_size, alpha, penalty=True, start=False):
    live, finished = [([], 0.0)], []  # live: (tokens, log P); finished: (score, tokens)
    for _ in range(max_len):
        step = next_log_probs(torch.tensor([[sos_id] + t for t, _ in live]))  # (n, V)
        V = step.size(-1)
        total = (torch.tensor([lp for _, lp in live])[:, None] + step).view(-1)
        top, idx = total.topk(min(beam_size - len(finished), total.numel()))
        new_live = []
        for s, i in zip(top.tolist(), idx.tolist()):
            b, w = divmod(i, V)
            toks = live[b][0] + [w]
            if w == eos_id:
                finished.append((s / ((5 + len(toks)) / 6) ** (alpha if penalty else 0.0), toks))
            else:
                new_live.append((toks, s))
        live = new_live
        if not live:
            break
    best = max(finished)[1] if finished else max(live, key=lambda h: h[1])[0]
    return [sos_id] + best if start else best


def test_beam_search_checker():
    res = check_beam_search(right_beam, repeat=2)
    assert res and str(res).startswith("✅")
    res = check_beam_search(lambda *a: right_beam(*a, penalty=False))
    assert not res and "raw log P" in res.message and "(5 + |Y|) / 6" in res.message
    res = check_beam_search(lambda f, s, e, n, k, a: right_beam(f, s, e, n, 1, a), repeat=4)
    # greedy's output can also be the best by the raw log P: either hint is then right
    assert not res and ("beam_size best" in res.message or "raw log P" in res.message)
    res = check_beam_search(lambda *a: right_beam(*a, start=True))
    assert not res and "start token" in res.message
    res = check_beam_search(lambda *a: right_beam(*a)[:-1] + [0])
    assert not res and "should be" in res.message
    for cheat in (beam_hypotheses, lambda f, s, e, n, k, a: length_penalty(n, a)):
        res = check_beam_search(cheat)
        assert not res and "write it yourself" in res.message
