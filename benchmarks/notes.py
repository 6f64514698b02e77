"""The hand-written parts of docs/benchmarks.md: how each row is measured, and the
changes made to close the gaps, with the effect measured when they were made."""

METHOD = """\
## How the figures are taken

* Every figure is a ratio of two contenders measured in the same run. The machine is shared,
  so the contenders' repeats are interleaved (A, B, A, B, ... with the order flipped on
  every other repeat) after warm-up calls, and a ratio is the median of the per-repeat
  ratios: a burst of load from another process lands on both members of a pair.
  `torch.set_num_threads` is set to every core the process may use, and
  `OMP_WAIT_POLICY=PASSIVE` (unless already set): on a loaded machine an OpenMP thread that
  spins while waiting steals the time slice its partner needs, and a step of the small
  model took 0.3-2.7 s instead of 0.04 s; with sleeping waiters the timings stay sane.
* Row 1 runs each notebook with nbclient in a fresh kernel (kernel start and shutdown
  included, nothing written back); the whole course is the sum over the lessons.
* Row 2 trains, for each of three fresh seeds (which set the initial weights and the batches),
  three contenders in the same process, in turns of 50 steps (the order flipped every turn):
  the course's model with the course's recipe (`Trainer`, `--schedule linear`); the *same*
  model with the *same* initial weights trained with the plain recipe (Adam at 1e-3, plain
  cross-entropy), so that the first ratio measures the recipe alone; and a stock
  `nn.Transformer` of the same size (benchmarks/baseline.py: its own initialisation and its
  extra final LayerNorms) with the plain recipe, so that the second ratio measures model and
  recipe together. All train on the train split and stop when greedy exact match on 1000
  examples of the validation split reaches 99% (or at the step cap). Each contender's clock
  counts making batches and training steps only; evaluations are timed on a separate clock
  and reported beside it (the course's model decodes with its KV cache, nn.Transformer has
  none, so evaluation would otherwise favour the course). The test split is scored once per
  run, after it stops. The verdict is the median over the seeds of the seed-by-seed ratio.
  The plain recipe is untuned (the common default); the course recipe was chosen earlier
  among the variants listed under "Changes" while looking at held-out accuracy on seed 0,
  before the validation split existed, so seeds 1-3 and the validation split are the guard
  against that choice having been lucky.
* Row 3: self-attention without a mask, forward and backward into the input and every
  weight, against `nn.MultiheadAttention(need_weights=False)` (its fastest setting) with the
  same weights (outputs checked equal first).
* Row 4: forward, cross-entropy over real tokens, backward and an Adam step, on the same
  padded batch, against `nn.Transformer` of the same size wrapped with the same embeddings,
  positional encoding and tied output layer (benchmarks/baseline.py), with dropout on as in
  training.
* Row 5: greedy decoding of exactly 256 tokens (no end token), for one source and for 8
  held-out sources at once, with `course_lib.decode.greedy_decode(use_cache=True)` against
  `use_cache=False`, with torch's threads and with one thread; the tokens are checked
  identical. The FLOP ratio comes from `course_lib.flops.generation_flops`. Inside the decoding
  loop the per-layer input checks are skipped (`course_lib.validate.inputs_checked`): the loop
  checks what the caller gave once and then feeds the model its own outputs.
* Row 6: the analytic FLOPs of a training step (`course_lib.flops.training_step_flops`:
  matmuls only, backward = 2 x forward) divided by its time, over the FLOP rate of a
  2048 x 2048 float32 matmul timed interleaved with it.
* Row 7 runs only where CUDA is present: the paper's base model (37000-token shared
  vocabulary) with bf16 autocast, the fused attention path and `torch.compile`, on random
  full-length sequences; MFU = analytic step FLOPs / step time / measured bf16 matmul peak.
"""

CHANGES = """\
## Changes made to close the gaps

Each measured on this machine (2 shared cores) when it was made, contenders interleaved.

1. **LayerNorm: one fused kernel by default** (course_lib/layers.py, row 4). The library's
   `LayerNorm` computed mean, variance, subtraction, division, scale and shift as six
   tensor operations, each keeping its input for the backward pass. It now calls
   `torch.nn.functional.layer_norm` (the same formula in one kernel) unless
   `LayerNorm(d, fused=False)`, which keeps the step-by-step formula for the lessons; the
   public API is unchanged (one new keyword with a default) and tests/test_bench_smoke.py
   checks the two paths agree, values and gradients. One training step of a 3+3-layer,
   d_model=256 model on a 32 x 32-token batch: 415 ms -> 383 ms with dropout 0.1 (0.92x),
   321 ms -> 294 ms without (0.92x); row 4 went from 1.06-1.08x of nn.Transformer to
   0.85-0.98x. Every table repeats this comparison live (row 4, "step-by-step LayerNorm").
2. **No mask for a single cached decoding step** (course_lib/model.py `Transformer.decode`,
   row 5). With a KV cache and one new token, the causal mask is a row of all True (the new
   token may see every cached key), yet it was built, validated, made safe for fully masked
   rows and handed to the masked attention kernel in every layer at every step. `decode`
   now passes no self-attention mask in that case (same tokens; the test that cached and
   uncached decoding agree still passes). Greedy generation of 256 tokens, final dates
   model, batch 1: 337 ms -> 309 ms (0.91x), the cache's speed-up 2.5x -> 2.8x.
3. **A training recipe that anneals** (row 2; `TrainConfig(schedule="linear")` and
   `python -m course_lib.train --schedule linear` in course_lib/train.py, checked against
   torch's `LinearLR` schedulers in tests/test_train.py). With course_lib.train's defaults (equation 3, warm-up 400,
   label smoothing 0.1) the final model needs 900-950 steps to reach 99% on the dates and
   600-650 on reversal, slower than the plain baseline (650-750 and 200-250): equation (3) peaks at
   4.4e-3 for d_model=128 and then decays as 1/sqrt(step), so after a few hundred steps the
   weights still move and held-out exact match hovers between 92% and 98%. The same
   Trainer with a linear warm-up over 50 steps to 3e-3 and a linear decay to 2% of it at
   step 400 reaches 99% on the dates in 300-350 steps (0.39-0.46x of the baseline's time over three runs)
   and on reversal in 200-250 (0.63-0.82x). Steps to
   99% exact match of the variants tried (evaluated every 25-50 steps, one seed each):

   | recipe | dates | reversal |
   |---|---|---|
   | plain baseline: Adam 1e-3 constant, no label smoothing | 650-750 | 200-250 |
   | course_lib.train defaults: eq. (3), warm-up 400 | 900-950 | 600-650 |
   | eq. (3), warm-up 100, peak 3.0e-3 (with / without label smoothing) | 600 / 750 | - |
   | eq. (3), warm-up 100, peak 5.3e-3 | 650 | - |
   | eq. (3), warm-up 50, peak 3.1e-3, no label smoothing | 650 | - |
   | linear 50 -> 3e-3 -> 2% at 300 / 400 / 600 steps | 350 / 300-350 / - | - / 200-250 / 200-225 |
   | linear warm-up 1-30 steps to 1e-3, 2e-3, 3e-3, 6e-3, 1e-2, decay at 300-400 | - | 300 to > 400 |

   The paper's schedule stays the default, because lessons 09-11 teach equation (3) and the
   shipped checkpoint (3,000 steps) was trained with it; the table's row 2 measures both.

4. **Row 2 measured by the rules** (benchmarks/convergence.py, course_lib/data.py). Until then
   the row compared clocks that included evaluation (the course evaluates with its KV cache, the
   baseline re-runs the prefix), stopped on held-out *test* accuracy, used one seed, and compared
   with an `nn.Transformer` that has two extra LayerNorms and its own initialisation; the recipe
   had been chosen among the variants above by looking at test accuracy. Now both tasks have a
   validation split (a hash bucket of its own: 80 / 10 / 10), runs stop on validation and score
   the test split once, evaluation has its own clock, and three fresh seeds give a median and a
   range; the recipe is measured on the course's own model with the same initial weights, and
   model and recipe together against the stock `nn.Transformer`. The old figure for the dates,
   0.46x, became 0.44x (seeds 0.41-0.60) for the recipe and 0.60x against the stock model.
5. **A decoding step without per-layer checks** (course_lib/validate.py `inputs_checked`,
   course_lib/decode.py `generate`, row 5). The loop checks what the caller gives once; then each
   step fed the model its own outputs and still re-checked every tensor in every layer (types,
   shapes, dtypes, devices, the cache's consistency, and the token ids, which means reading them
   back from a GPU). Inside the loop those checks now return at once (tests/test_fast_decoding.py:
   the lean step equals the checked one bit for bit, and a strategy's ids are still checked against
   the vocabulary). Under the profiler: 82 ms -> 65 ms for 128 cached tokens at batch 1, one
   thread. Row 5 now also measures each setting on one thread: the matmuls of one token are too
   small to gain from a second thread, and on a shared machine a second thread can cost more
   than it saves (the `one_thread()` context of course_lib.device does this for a caller).

## What stands in the way of the missed targets

* **Row 2, dates against the stock nn.Transformer (0.60x, target 0.5x; the recipe alone: 0.44x,
  met).** The stock model needs 650 steps on every seed, the course's model with the plain recipe
  700-950: torch's own initialisation and its final LayerNorms suit the plain recipe better than
  the course's initialisation does, and its step is faster on this machine (fused kernels), so
  against it the recipe's halving of the steps (350 against 650) is worth 0.60x of the time.
* **Row 2, reversal (0.88x for the recipe, 1.28x against the stock model; target 0.5x).** Every
  contender learns reversal in a sudden transition between steps 150 and 250 (0% to 99% within
  about 100 steps), and evaluating every 50 steps puts them all at 200-300 steps: the course's
  recipe needs 250-300, the same model with the plain recipe 250-300, the stock model 200.
  Earlier tuning (the table above) found no schedule that moves the transition much earlier, and
  no further tuning was tried here (any would have to be done on the validation split, with
  fresh seeds). The target is not met, and this is not a recipe that halves the time on this task.
* **Row 9, the GPT training step (1.19x of torch's TransformerEncoderLayer stack, target 1.05x).**
  The course's block runs its attention through `MultiHeadAttention`'s own projections and
  checks, torch's layer through its fused fast path; the gap was not worked on this time.
* **Row 7** needs a CUDA device; none was available to this run. The code path
  (benchmarks/gpu.py) is exercised on the CPU by the smoke test, with bf16 autocast, and
  was compiled with torch.compile on the CPU once. `check_token_ids`
  (course_lib/validate.py) used to read `int(ids.min())` on every forward, which made
  torch.compile break the graph 8 times per step (and would synchronise a GPU); it now
  reads the range once with `torch.aminmax` and skips the check while compiling
  (`torch.compiler.is_compiling()`).
"""
