"""`make bench` in a tiny configuration: the table comes out with every row. Also the pieces
the benchmarks rest on: the timing arithmetic, the baseline wrapper, the GPU row's code
path (run on the CPU), and the fast paths they time agreeing with the teaching paths."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.baseline import TorchSeq2Seq
from benchmarks.gpu import matmul_peak_flops, training_throughput
from benchmarks.table import Line, markdown_table
from benchmarks.timing import Timings, interleaved
from course_lib.decode import greedy_decode
from course_lib.layers import LayerNorm
from course_lib.model import Transformer, TransformerConfig

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_prints_every_row(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table_rows = re.findall(r"^\| (\d) \|", proc.stdout, flags=re.M)
    assert set(table_rows) == {str(r) for r in range(1, 10)}, proc.stdout
    assert "failed" not in proc.stdout, proc.stdout
    doc = out.read_text()
    for heading in ("## Machine", "## Results", "## Changes made to close the gaps", "| CPU |", "| torch |"):
        assert heading in doc
    assert set(re.findall(r"^\| (\d) \|", doc, flags=re.M)) == {str(r) for r in range(1, 10)}
    if not torch.cuda.is_available():
        assert re.search(r"^\| 7 \|.*no CUDA device: unmeasured", proc.stdout, flags=re.M)
    assert re.search(r"^\| 2 \|.*quick mode", proc.stdout, flags=re.M)


def test_interleaved_timings_and_paired_ratio():
    calls = []
    t = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=4, warmup=1)
    assert calls == ["a", "b"] + ["a", "b", "b", "a", "a", "b", "b", "a"]  # warm-up, then flipped turns
    assert all(len(v) == 4 for v in t.times.values())
    fixed = Timings({"a": [2.0, 4.0, 30.0], "b": [1.0, 2.0, 10.0]})
    assert fixed.ratio("a", "b") == 2.0 and fixed.median("a") == 4.0  # paired: the outlier pair is 3x
    with pytest.raises(ValueError, match="repeats"):
        interleaved({"a": lambda: None}, repeats=0)


def test_markdown_table_escapes_pipes_and_marks_verdicts():
    table = markdown_table([Line(3, "a|b", "1.00x", "<= 1.05x", True), Line(7, "gpu", "unmeasured")])
    assert "a\\|b" in table and "| yes |" in table and table.splitlines()[-1].endswith("| - |")


def _small_cfg(**kw):
    kw = {
        "d_model": 32,
        "n_heads": 4,
        "d_ff": 64,
        "n_encoder_layers": 2,
        "n_decoder_layers": 2,
        "max_len": 40,
        **kw,
    }
    return TransformerConfig(15, 12, **kw)


def test_baseline_wraps_nn_transformer_and_decodes_without_cache(gen):
    torch.manual_seed(0)
    model = TorchSeq2Seq(_small_cfg(dropout=0.0)).eval()
    src = torch.randint(3, 15, (3, 9), generator=gen)
    src[0, 6:] = 0
    tgt = torch.randint(3, 12, (3, 5), generator=gen)
    assert model(src, tgt).shape == (3, 5, 12)
    # padding the source does not change the real outputs (the mask reaches torch's layers)
    padded = torch.cat([src[1:2], torch.zeros(1, 4, dtype=torch.long)], 1)
    assert (model(src[1:2], tgt[1:2]) - model(padded, tgt[1:2])).abs().max() < 1e-5
    # course_lib's greedy decoding drives it; each step equals one full forward's argmax
    out = greedy_decode(model, src, 1, None, 6, use_cache=False)
    ys = torch.cat([torch.ones(3, 1, dtype=torch.long), out[:, :-1]], 1)
    assert torch.equal(model(src, ys).argmax(-1), out)
    with pytest.raises(ValueError, match="no KV cache"):
        greedy_decode(model, src, 1, None, 6, use_cache=True)


def test_gpu_row_code_path_runs_on_cpu():
    """Row 7's functions take the device; on the CPU (bf16 autocast, no compile) they must run."""
    cfg = TransformerConfig(40, d_model=32, n_heads=4, d_ff=64, n_encoder_layers=1, n_decoder_layers=1)
    cpu = torch.device("cpu")
    for bf16 in (False, True):
        t = training_throughput(cfg, 2, 8, cpu, bf16=bf16, compile=False, steps=1, warmup=1)
        assert t.seconds_per_step > 0 and t.tokens_per_second == pytest.approx(2 * 2 * 8 / t.seconds_per_step)
    assert matmul_peak_flops(cpu, torch.float32, n=64, repeats=2) > 0


def test_fused_layernorm_equals_the_step_by_step_formula(gen):
    """The benchmarks time the fused LayerNorm; the lessons show the formula: same numbers."""
    fused, teaching = LayerNorm(24).double(), LayerNorm(24, fused=False).double()
    with torch.no_grad():
        fused.gamma.copy_(torch.randn(24, generator=gen, dtype=torch.float64))
        fused.beta.copy_(torch.randn(24, generator=gen, dtype=torch.float64))
    teaching.load_state_dict(fused.state_dict())
    x = torch.randn(3, 5, 24, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.allclose(fused(x), teaching(x), atol=1e-12)
    g_fused = torch.autograd.grad(fused(x).square().sum(), [x, fused.gamma])
    g_teach = torch.autograd.grad(teaching(x).square().sum(), [x, teaching.gamma])
    assert all(torch.allclose(a, b, atol=1e-10) for a, b in zip(g_fused, g_teach))
    assert torch.autograd.gradcheck(teaching, (x[:1, :2],))


def test_model_output_same_with_fused_or_teaching_layernorm(gen):
    torch.manual_seed(0)
    fast = Transformer(_small_cfg(dropout=0.0)).eval()
    slow = Transformer(_small_cfg(dropout=0.0)).eval()
    slow.load_state_dict(fast.state_dict())
    for m in slow.modules():
        if isinstance(m, LayerNorm):
            m.fused = False
    src, tgt = torch.randint(3, 15, (2, 7), generator=gen), torch.randint(3, 12, (2, 4), generator=gen)
    assert (fast(src, tgt) - slow(src, tgt)).abs().max() < 1e-5
