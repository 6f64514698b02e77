"""The course's quiz questions: one or more per learner misconception, and an exit quiz per lesson.

    from course_lib.quiz_bank import quiz_for
    quiz_for("06", "misconceptions")                     # the questions on what lesson 06 corrects
    quiz_for("02", "misconceptions", misconception="sqrt-dk")   # just one of them, near its section
    quiz_for("06", "exit")                               # 3-5 questions on the whole lesson
    quiz_for("06", "all")                                # both

Every question is tagged with its lesson and, when it corrects a misconception, with a key of
`MISCONCEPTIONS`. The "predict, then run" questions run the small functions defined here (the
learner reads their source); `tests/test_quiz.py` runs each one and checks its stored answer.

Numbers are the paper's (Vaswani et al., 2017): d_model = 512, h = 8, d_k = d_v = 64, d_ff = 2048,
N = 6, warm-up 4000 steps, Adam(0.9, 0.98, 1e-9), label smoothing 0.1, dropout 0.1, beam 4 with
alpha = 0.6, about 65M parameters for the base model and 213M for the big one.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass

import torch

from .quiz import MultipleChoice, Option, PredictThenRun, Question, Quiz

LESSONS: dict[str, str] = {
    "00": "Welcome",
    "01": "Why not RNNs",
    "02": "Tokens, embeddings, Q/K/V",
    "03": "Attention patterns",
    "04": "Multi-head attention",
    "05": "Positional encoding",
    "06": "Residuals, LayerNorm, feed-forward",
    "07": "Masking",
    "08": "Encoder, decoder, cross-attention",
    "09": "Training",
    "10": "Inference",
    "11": "The complete model",
    "12": "Tokens: byte-pair encoding",
    "13": "A decoder-only GPT on text",
    "14": "Translation and the paper's results",
    "15": "Training in parallel",
    "16": "Inside a trained model: induction heads",
    "17": "Beyond attention",
}
KINDS = ("exit", "misconceptions", "all")


@dataclass(frozen=True)
class Misconception:
    """A mistaken belief the course corrects (summarised in our words) and the lessons that do."""

    key: str
    belief: str
    correction: str
    lessons: tuple[str, ...]


MISCONCEPTIONS: dict[str, Misconception] = {
    m.key: m
    for m in (
        Misconception(
            "groupnorm",
            "the Transformer's normalisation is GroupNorm",
            "it is Layer Normalization (Ba, Kiros and Hinton, 2016), one token at a time",
            ("06",),
        ),
        Misconception(
            "layernorm-range",
            "layer norm squeezes values into a fixed range",
            "it standardises each token's features (mean 0, variance 1), then applies learned gamma and beta",
            ("06",),
        ),
        Misconception(
            "permutation",
            "self-attention ignores a shuffle of its inputs (invariance)",
            "it is equivariant: the outputs are shuffled the same way",
            ("03", "05"),
        ),
        Misconception(
            "qkv-roles",
            "Q, K and V are three different texts (prompt, context, output)",
            "they are learned projections of the same token vectors (or, in cross-attention, of decoder and encoder states)",
            ("02", "08"),
        ),
        Misconception(
            "softmax-axis",
            "the attention softmax runs down the columns",
            "it runs over the keys of each query; rows or columns depends only on the drawing",
            ("02", "03"),
        ),
        Misconception(
            "w-o",
            "W^O normalises the concatenated heads",
            "it is a learned linear map that mixes the heads back into d_model",
            ("04",),
        ),
        Misconception(
            "gpt3-count",
            "GPT-3's 96 attention blocks hold 96 query and key matrices",
            "96 layers x 96 heads: 9,216 head-sized matrices of each kind",
            ("04",),
        ),
        Misconception(
            "encoder-kv",
            "the encoder's output is the decoder's keys and values",
            "each decoder layer projects the encoder's output with its own W^K and W^V",
            ("08",),
        ),
        Misconception(
            "encoder-once",
            "the encoder runs again for every generated token",
            "in encoder-decoder inference it runs once; only the decoder loops",
            ("08", "10"),
        ),
        Misconception(
            "greedy",
            "a model always emits its most probable token",
            "that is greedy decoding; beam search and sampling are other rules",
            ("10",),
        ),
        Misconception(
            "sqrt-dk",
            "dividing by sqrt(d_k) prevents exploding gradients",
            "it keeps the scores' variance near 1 so the softmax does not saturate and its gradient does not vanish",
            ("02",),
        ),
    )
}


def _mc(
    lesson: str, id: str, prompt: str, *options: Option, misconception: str | None = None, select_all=None
):
    """A multiple-choice question whose options are shown in an order fixed by its id (the bank
    writes the right answers first; the shuffle is the same on every run)."""
    shown = list(options)
    random.Random(zlib.crc32(id.encode())).shuffle(shown)
    return MultipleChoice(
        id, prompt, shown, lesson=lesson, misconception=misconception, select_all=select_all
    )


def _ptr(lesson: str, id: str, prompt: str, run, expected, answer: str, explanation: str, **kw):
    return PredictThenRun(id, prompt, run, expected, answer, explanation, lesson=lesson, **kw)


Y, N = True, False  # Option(text, correct, why)


# --- the code of the "predict, then run" questions (the learner reads each function) --------------
def weights_shape_of_a_batch():
    from course_lib.attention import scaled_dot_product_attention

    B, h, T_q, T_k, d_k = 2, 8, 5, 7, 64
    q = torch.randn(B, h, T_q, d_k)
    k = torch.randn(B, h, T_k, d_k)
    v = torch.randn(B, h, T_k, d_k)
    output, weights = scaled_dot_product_attention(q, k, v)
    return tuple(weights.shape)


def gradient_thirty_tokens_back():
    from course_lib.rnn import TanhRNN, gradient_norm_vs_distance

    H = 32
    rnn = TanhRNN(input_size=8, hidden_size=H)
    with torch.no_grad():  # small recurrent weights: spectral radius about 0.5
        rnn.weight_hh.copy_(torch.randn(H, H) * 0.5 / math.sqrt(H))
    x = torch.randn(4, 40, 8)  # 4 sequences of 40 tokens
    norms = gradient_norm_vs_distance(rnn, x)  # (4, 40): entry [b, k] = gradient norm k steps back
    typical = norms[:, 30].log().mean().exp().item()  # geometric mean over the 4 sequences
    return "larger than 1e-6" if typical > 1e-6 else "smaller than 1e-6"


def output_shape_of_attention():
    from course_lib.attention import scaled_dot_product_attention

    q = torch.randn(3, 4)  # 3 queries, d_k = 4
    k = torch.randn(5, 4)  # 5 keys
    v = torch.randn(5, 6)  # 5 values, d_v = 6
    output, weights = scaled_dot_product_attention(q, k, v)
    return tuple(output.shape)


def variance_of_raw_scores():
    d_k = 64
    q = torch.randn(10_000, d_k)  # components with mean 0 and variance 1
    k = torch.randn(10_000, d_k)
    scores = (q * k).sum(dim=-1)  # 10,000 dot products, not divided by sqrt(d_k)
    return round(scores.var().item())


def which_sums_are_one():
    from course_lib.attention import scaled_dot_product_attention

    q, k, v = torch.randn(3, 8), torch.randn(5, 8), torch.randn(5, 8)  # 3 queries, 5 keys
    _, weights = scaled_dot_product_attention(q, k, v)  # (3, 5): rows = queries
    ones_in_rows = torch.allclose(weights.sum(dim=1), torch.ones(3))
    ones_in_columns = torch.allclose(weights.sum(dim=0), torch.ones(5))
    if ones_in_rows and not ones_in_columns:
        return "each row (one per query)"
    if ones_in_columns and not ones_in_rows:
        return "each column (one per key)"
    return "only the whole grid"


def shuffled_self_attention():
    from course_lib.attention import MultiHeadAttention

    mha = MultiHeadAttention(d_model=16, n_heads=4)
    x = torch.randn(1, 5, 16)  # 5 token vectors, no positional information
    perm = torch.tensor([3, 0, 4, 1, 2])
    y, y_shuffled = mha(x), mha(x[:, perm])
    if torch.allclose(y_shuffled, y, atol=1e-6):
        return "the same outputs, in the original order"
    if torch.allclose(y_shuffled, y[:, perm], atol=1e-6):
        return "the original outputs, shuffled the same way"
    return "new outputs, unrelated to the original ones"


def entropy_of_a_uniform_row():
    weights = torch.full((8,), 1 / 8)  # one query spreading evenly over 8 keys
    entropy = -(weights * weights.log()).sum()  # in nats
    return round(entropy.item(), 3)


def w_o_on_doubled_heads():
    from course_lib.attention import MultiHeadAttention

    mha = MultiHeadAttention(d_model=16, n_heads=4, bias=False)
    heads = torch.randn(1, 3, 16)  # the concatenated heads of 3 tokens
    ratio = mha.w_o(2 * heads).norm() / mha.w_o(heads).norm()
    return round(ratio.item(), 3)


def gpt3_parameters_per_head():
    from course_lib.params import per_head_attention_params

    d_model, n_heads = 12288, 96  # GPT-3 175B (Brown et al., 2020, Table 2.1)
    return per_head_attention_params(d_model, n_heads)


def parameters_of_one_attention_block():
    from course_lib.attention import MultiHeadAttention
    from course_lib.params import count_parameters

    return count_parameters(MultiHeadAttention(d_model=512, n_heads=8))


def length_of_a_position_vector():
    from course_lib.positional import sinusoidal_encoding

    pe = sinusoidal_encoding(max_len=100, d_model=512)  # (100, 512)
    return round(pe[37].norm().item(), 3)


def layer_norm_of_an_outlier():
    from course_lib.layers import LayerNorm

    norm = LayerNorm(4)  # gamma = 1 and beta = 0, as initialised
    x = torch.tensor([[1.0, 2.0, 3.0, 100.0]])  # one token, one huge feature
    return round(norm(x).max().item(), 2)


def who_sees_a_changed_token():
    from course_lib.layers import LayerNorm

    x = torch.randn(1, 6, 8)  # one sentence: 6 tokens, 8 features
    x2 = x.clone()
    x2[0, 5] += 10.0  # change only the last token
    ln = LayerNorm(8)
    gn = torch.nn.GroupNorm(num_groups=2, num_channels=8)  # expects (B, features, positions)
    ln_moves = not torch.allclose(ln(x)[0, 0], ln(x2)[0, 0])  # token 0's output
    gn_moves = not torch.allclose(gn(x.transpose(1, 2))[0, :, 0], gn(x2.transpose(1, 2))[0, :, 0])
    return f"LayerNorm: {'yes' if ln_moves else 'no'}, GroupNorm: {'yes' if gn_moves else 'no'}"


def ffn_share_of_an_encoder_layer():
    from course_lib.params import attention_params, feed_forward_params, layer_norm_params

    d_model, d_ff = 512, 2048  # the base model
    ffn = feed_forward_params(d_model, d_ff)
    layer = attention_params(d_model) + ffn + 2 * layer_norm_params(d_model)
    return round(ffn / layer, 3)


def first_query_under_a_causal_mask():
    from course_lib.attention import scaled_dot_product_attention
    from course_lib.masks import causal_mask

    q, k, v = torch.randn(4, 8), torch.randn(4, 8), torch.randn(4, 8)
    _, weights = scaled_dot_product_attention(q, k, v, mask=causal_mask(4))  # (4, 4)
    return round(weights[0, 0].item(), 3)  # query 0's weight on key 0


def keys_of_two_decoder_layers():
    from course_lib.layers import DecoderLayer

    layers = [DecoderLayer(d_model=16, n_heads=4, d_ff=32, dropout=0.0) for _ in range(2)]
    memory = torch.randn(1, 6, 16)  # the encoder's output for 6 source tokens
    k1 = layers[0].cross_attn.w_k(memory)  # the keys cross-attention uses in layer 1
    k2 = layers[1].cross_attn.w_k(memory)  # ... and in layer 2
    if torch.allclose(k1, memory) and torch.allclose(k2, memory):
        return "both equal the memory itself"
    if torch.allclose(k1, k2):
        return "equal to each other, not to the memory"
    return "different from each other and from the memory"


def encoder_calls_while_generating():
    from course_lib.decode import greedy_decode
    from course_lib.model import Transformer, TransformerConfig

    cfg = TransformerConfig(12, d_model=16, n_heads=2, n_encoder_layers=1, n_decoder_layers=1, d_ff=32)
    model = Transformer(cfg)
    calls = {"encoder": 0, "decoder": 0}
    model.encoder_layers[0].register_forward_hook(
        lambda *_: calls.__setitem__("encoder", calls["encoder"] + 1)
    )
    model.decoder_layers[0].register_forward_hook(
        lambda *_: calls.__setitem__("decoder", calls["decoder"] + 1)
    )
    src = torch.tensor([[5, 6, 7, 8, 9]])
    greedy_decode(model, src, sos_id=1, eos_id=None, max_len=8)  # 8 new tokens
    return calls["encoder"]


def base_model_parameters():
    from course_lib.model import TransformerConfig
    from course_lib.params import count_from_config

    total = count_from_config(TransformerConfig.base())["total"]  # shared 37,000-token vocabulary
    return round(total / 1e6, 1)  # in millions


def peak_learning_rate():
    from course_lib.schedule import transformer_lr

    lr = transformer_lr(step=4000, d_model=512, warmup=4000)  # equation (3) at the end of warm-up
    return round(lr, 6)


def perplexity_of_ln_4():
    from course_lib.losses import perplexity

    mean_cross_entropy = math.log(4)  # about 1.386 nats per token
    return round(perplexity(mean_cross_entropy), 3)


def best_two_token_sequence():
    # a made-up model: p(first token), then p(second token | first token)
    first = {"a": 0.6, "b": 0.4}
    second = {"a": {"x": 0.4, "y": 0.35, "z": 0.25}, "b": {"x": 0.9, "y": 0.05, "z": 0.05}}
    sequences = {f + s: first[f] * second[f][s] for f in first for s in second[f]}
    return round(max(sequences.values()), 3)  # the probability of the most probable sequence


def length_penalty_of_four_tokens():
    from course_lib.decode import length_penalty

    return round(length_penalty(4, alpha=0.6), 3)  # ((5 + 4) / 6) ** 0.6


def one_third_in_bfloat16():
    x = torch.tensor(1 / 3, dtype=torch.bfloat16)
    return f"{x.item():.4f}"


def tokens_without_merges():
    from course_lib.tokenizer import BPETokenizer

    tokenizer = BPETokenizer()  # an empty merge table: bytes only
    return len(tokenizer.encode("héllo"))


def perplexity_of_a_uniform_guess():
    from course_lib.losses import perplexity

    V = 50
    p = torch.full((V,), 1 / V)  # a model that spreads its bet evenly over 50 tokens
    return round(perplexity(-p[0].log().item()), 3)


def clipped_unigram_matches():
    from course_lib.bleu import modified_precision_counts

    hypothesis = "the the the the".split()
    reference = "the cat is on the mat".split()
    matches, total = modified_precision_counts(hypothesis, reference, n=1)
    return matches


def bleu_of_a_short_perfect_hypothesis():
    from course_lib.bleu import bleu_from_counts

    # a 5-token hypothesis all of whose 1- to 4-grams are in a 10-token reference
    matches, totals = [5, 4, 3, 2], [5, 4, 3, 2]
    return round(bleu_from_counts(matches, totals, hyp_len=5, ref_len=10).score, 1)


def shard_gradients_against_the_batch():
    w = torch.randn(3, requires_grad=True)
    x, y = torch.randn(8, 3), torch.randn(8)

    def grad_of_mean_loss(xs, ys):
        loss = ((xs @ w - ys) ** 2).mean()
        return torch.autograd.grad(loss, w)[0]

    full = grad_of_mean_loss(x, y)  # one device, the whole batch of 8
    halves = (grad_of_mean_loss(x[:4], y[:4]) + grad_of_mean_loss(x[4:], y[4:])) / 2  # 2 workers
    return "equal (to round-off)" if torch.allclose(full, halves, atol=1e-6) else "different"


def online_softmax_against_softmax():
    from course_lib.attention import scaled_dot_product_attention
    from course_lib.flash import online_softmax_attention

    q, k, v = (torch.randn(1, 2, 50, 8, dtype=torch.float64) for _ in range(3))
    exact, _ = scaled_dot_product_attention(q, k, v)
    tiled = online_softmax_attention(q, k, v, block_q=16, block_k=16)  # 4 x 4 tiles
    error = (exact - tiled).abs().max().item()
    return "equal to round-off" if error < 1e-12 else "close, about 1% off" if error < 0.05 else "different"


def kv_cache_saving_of_gqa():
    from course_lib.gqa import kv_cache_bytes_per_token

    mha = kv_cache_bytes_per_token(n_layers=32, n_kv_heads=32, d_k=128)  # every query head has its own K, V
    gqa = kv_cache_bytes_per_token(n_layers=32, n_kv_heads=8, d_k=128)  # 8 K/V heads, 4 query heads each
    return mha // gqa


def linear_attention_state_size():
    from course_lib.linear_attention import linear_attention_recurrent

    sizes = []
    for T in (10, 100):
        q, k, v = (torch.randn(1, 2, T, 8) for _ in range(3))  # (B, h, T, d_k)
        _, state = linear_attention_recurrent(q, k, v)
        sizes.append(state.nbytes())
    return "the same for both" if sizes[0] == sizes[1] else "ten times larger for 100 tokens"


# --- the questions ----------------------------------------------------------------------------------
def _misconception_questions() -> list[Question]:
    return [
        # 02: Q/K/V, softmax over the keys, sqrt(d_k)
        _mc(
            "02",
            "m02-qkv",
            "In the self-attention of an encoder layer, where do $Q$, $K$ and $V$ come from?",
            Option(
                "From the same token vectors $X$, through three learned matrices: $Q = XW^Q$, $K = XW^K$, $V = XW^V$.",
                Y,
                "Every token gets a query, a key and a value. Only the three weight matrices differ, and training sets them.",
            ),
            Option(
                "$Q$ is the prompt, $K$ the surrounding context and $V$ the output the model writes.",
                N,
                "They are not three pieces of text. All three are computed from the same vectors; the model's output "
                "comes from the final linear layer and softmax, not from $V$.",
            ),
            Option(
                "$Q$ and $K$ are learned projections, but $V$ is the input $X$ itself.",
                N,
                "$V = XW^V$ is a projection too (to $d_v = 64$ per head in the paper).",
            ),
            Option(
                "$K$ and $V$ are tables stored in the model, and the query looks them up.",
                N,
                "Nothing is stored: keys and values are recomputed from the current tokens in every layer, so they "
                "change with the text.",
            ),
            misconception="qkv-roles",
        ),
        _mc(
            "02",
            "m02-softmax",
            "A textbook draws the score grid transposed: **keys as rows, queries as columns**. "
            "Over which entries does the softmax of equation (1) run in that drawing?",
            Option(
                "Down each column: the keys of one query.",
                Y,
                "The softmax always normalises over the keys, once per query. Drawn transposed, one query's keys "
                "sit in a column; the computation is unchanged.",
            ),
            Option(
                "Along each row, as in this course.",
                N,
                "A row of that drawing is one key against every query. Normalising it would make each *key* hand out "
                "one unit of attention, which is not equation (1).",
            ),
            Option(
                "Over the whole grid at once.",
                N,
                "Then one query's weights would not sum to 1, and the queries would compete with each other for attention.",
            ),
            misconception="softmax-axis",
        ),
        _ptr(
            "02",
            "m02-softmax-run",
            "Three queries attend over five keys. Which sums of the weight grid equal 1?",
            which_sums_are_one,
            "each row (one per query)",
            "choice",
            "The weights have shape (T_q, T_k) = (3, 5) and the softmax runs over the last axis, the keys: each "
            "query shares out exactly one unit of attention. Column sums say how much attention a key received, "
            "which can be anything.",
            options=("each row (one per query)", "each column (one per key)", "only the whole grid"),
            misconception="softmax-axis",
        ),
        _mc(
            "02",
            "m02-sqrt",
            r"Why does equation (1) divide the scores by $\sqrt{d_k}$?",
            Option(
                r"A dot product of $d_k$ unit-variance components has variance $d_k$; dividing by $\sqrt{d_k}$ brings it "
                "back to about 1, so the softmax does not saturate and its gradient does not vanish.",
                Y,
                "Large scores make the softmax nearly one-hot, and a one-hot softmax barely responds to its inputs. "
                "The scaling keeps the scores in the range where it does.",
            ),
            Option(
                "To stop the gradients from exploding.",
                N,
                r"The danger runs the other way. Its derivative $w_i(\delta_{ij} - w_j)$ is almost 0 when one weight is "
                "near 1: without the scaling the gradient *vanishes*.",
            ),
            Option(
                "To make every row of weights sum to 1.",
                N,
                "The softmax does that by itself, whatever the scale of the scores.",
            ),
            Option(
                "To give every output vector length 1.",
                N,
                "The scaling acts on the scores before the softmax; each output is a weighted average of the values "
                "and keeps their scale.",
            ),
            misconception="sqrt-dk",
        ),
        _ptr(
            "02",
            "m02-sqrt-run",
            r"10,000 random queries and keys with $d_k = 64$ and unit-variance components. "
            r"What is the variance of their dot products, *before* any division by $\sqrt{d_k}$?",
            variance_of_raw_scores,
            64,
            "number",
            "Each dot product is a sum of 64 independent products of variance 1, so its variance is 64 (the paper's "
            "footnote 4) and its typical size is 8. Dividing by sqrt(64) = 8 brings the variance back to 1.",
            rel_tol=0.15,
            misconception="sqrt-dk",
        ),
        # 03: softmax over the keys, permutation equivariance
        _ptr(
            "03",
            "m03-permutation-run",
            "A multi-head self-attention layer with no positional information reads 5 token vectors, "
            "then the same 5 vectors in a shuffled order. What does it return for the shuffled input?",
            shuffled_self_attention,
            "the original outputs, shuffled the same way",
            "choice",
            "Each token's output depends on which vectors are around it, never on where they are. So shuffling "
            "the inputs shuffles the outputs in exactly the same way: f(PX) = P f(X). That is equivariance; "
            "invariance would mean the outputs did not move at all.",
            options=(
                "the same outputs, in the original order",
                "the original outputs, shuffled the same way",
                "new outputs, unrelated to the original ones",
            ),
            misconception="permutation",
        ),
        _mc(
            "03",
            "m03-softmax",
            "In this course's grids, rows are queries and columns are keys. Which statement is true of every grid?",
            Option(
                "Each row sums to 1; a column can sum to anything.",
                Y,
                "Each query shares one unit of attention among the keys. A popular key can collect several units, "
                "an ignored one almost none.",
            ),
            Option(
                "Each column sums to 1; a row can sum to anything.",
                N,
                "That would make every key give out one unit of attention. The softmax runs over the keys of each "
                "query, which in this drawing is a row.",
            ),
            Option(
                "Rows and columns both sum to 1.",
                N,
                "Only a doubly stochastic grid does that (a permutation, for instance); the softmax guarantees the "
                "rows only. With 3 queries and 5 keys the columns cannot all sum to 1.",
            ),
            misconception="softmax-axis",
        ),
        # 04: W^O and GPT-3
        _mc(
            "04",
            "m04-wo",
            "What does the output matrix $W^O$ of multi-head attention do?",
            Option(
                r"It is a learned linear map from the $h \cdot d_v$ concatenated head outputs to $d_\text{model}$, so "
                "that every output feature can combine every head.",
                Y,
                "Each head writes into the whole model width through its own $d_k$ rows of $W^O$; the concatenation "
                "times $W^O$ is a sum of what the heads write.",
            ),
            Option(
                "It normalises the concatenated heads to mean 0 and variance 1.",
                N,
                "It has no statistics and no division: double its input and its output doubles. The normalisation "
                "is the LayerNorm that follows the residual addition.",
            ),
            Option(
                "It averages the $h$ heads into one.",
                N,
                r"An average would be a fixed map with nothing to learn. $W^O$ is a learned $512 \times 512$ matrix in "
                "the base model (262,144 weights) that weighs every head differently for every output feature.",
            ),
            Option(
                r"It is only needed when $h \cdot d_v$ differs from $d_\text{model}$.",
                N,
                r"In the paper $h \cdot d_v = 8 \times 64 = 512 = d_\text{model}$ and $W^O$ is still there. Without it, "
                "output feature $j$ could only ever come from one head.",
            ),
            misconception="w-o",
        ),
        _ptr(
            "04",
            "m04-wo-run",
            "Feed $W^O$ the concatenated heads of 3 tokens, then the same numbers doubled. "
            "By what factor does the size (norm) of its output change?",
            w_o_on_doubled_heads,
            2.0,
            "number",
            "W^O is linear, so twice the input gives twice the output: it passes changes of scale straight "
            "through. A normalisation such as LayerNorm would return the same output for both inputs.",
            rel_tol=0.01,
            misconception="w-o",
        ),
        _mc(
            "04",
            "m04-gpt3",
            "GPT-3 175B has 96 layers and 96 attention heads in each layer. "
            r"How many head-sized query matrices $W^Q_i$ does it hold?",
            Option(
                "96",
                N,
                "That counts one per layer. Every one of the 96 layers has 96 heads, and each head has its own "
                "query matrix.",
            ),
            Option(
                r"$96 \times 96 = 9216$",
                Y,
                "One per head in every layer, and as many key, value and output slices: 36,864 head-sized matrices, "
                "about 58 billion parameters.",
            ),
            Option(
                "$96 + 96 = 192$",
                N,
                "Heads are not shared between layers, so the counts multiply rather than add.",
            ),
            Option(
                "1, shared by every head",
                N,
                "Even multi-query attention (lesson 17) shares only the keys and values; each head keeps its own queries.",
            ),
            misconception="gpt3-count",
        ),
        _ptr(
            "04",
            "m04-gpt3-run",
            r"GPT-3 has $d_\text{model} = 12288$ and 96 heads per layer. How many parameters does one head own "
            "(its slices of $W^Q$, $W^K$, $W^V$ and $W^O$, biases aside)?",
            gpt3_parameters_per_head,
            6291456,
            "number",
            "d_k = 12288 / 96 = 128, and a head owns four 12288 x 128 slices: 4 x 12288 x 128 = 6,291,456, "
            "about 6.3M. Times 96 heads in each of 96 layers, that is about 58 billion parameters.",
            rel_tol=0.03,
            misconception="gpt3-count",
        ),
        # 05: permutation equivariance
        _mc(
            "05",
            "m05-permutation",
            "A self-attention layer has no positional information. Which of these does **not** change at all when "
            "its input tokens are shuffled?",
            Option(
                "The mean of its outputs over the tokens.",
                Y,
                "A shuffle of the inputs shuffles the outputs; an average over the tokens forgets their order, so it "
                "stays the same. Such a pooled summary is invariant; the layer itself is equivariant.",
            ),
            Option(
                "The output at position 0.",
                N,
                "After the shuffle another token sits at position 0, so position 0 now shows that token's output.",
            ),
            Option(
                "The whole output matrix (T, d_model).",
                N,
                "Its rows come out in the shuffled order: it changes, by the same permutation. That is equivariance, "
                "not invariance.",
            ),
            Option(
                "The attention grid (T, T).",
                N,
                "Both its rows (queries) and its columns (keys) are reordered by the permutation.",
            ),
            misconception="permutation",
        ),
        # 06: LayerNorm, not GroupNorm; standardisation, not a range
        _mc(
            "06",
            "m06-groupnorm",
            "Section 3.1 of the paper wraps every sublayer in a normalisation. Which one?",
            Option(
                "Layer Normalization (Ba, Kiros and Hinton, 2016), computed for each token over its own features.",
                Y,
                "The paper cites it by name. Because it looks at one token's $d_\\text{model}$ features at a time, a "
                "token's output never depends on other tokens, other sentences or padding.",
            ),
            Option(
                "Group Normalization (Wu and He, 2018).",
                N,
                "GroupNorm comes from image models trained with small batches. Applied to a sequence as defined, it "
                "pools a group of features over every position of an example, so each token would depend on its "
                "whole sentence.",
            ),
            Option(
                "Batch Normalization (Ioffe and Szegedy, 2015).",
                N,
                "BatchNorm pools each feature over the batch, so a token's output would depend on the other "
                "sentences in its batch and on how much padding they carry.",
            ),
            Option(
                "None: the residual connections keep the scale in check.",
                N,
                "Residuals keep the gradient flowing but fix no scale; the paper computes LayerNorm(x + Sublayer(x)) "
                "after every sublayer.",
            ),
            misconception="groupnorm",
        ),
        _ptr(
            "06",
            "m06-groupnorm-run",
            "Change only the **last** token of a 6-token sentence. Does the output for the **first** token change, "
            "after LayerNorm and after a GroupNorm with 2 groups?",
            who_sees_a_changed_token,
            "LayerNorm: no, GroupNorm: yes",
            "choice",
            "LayerNorm computes its mean and variance from each token's own 8 features, so token 0 cannot see "
            "token 5. GroupNorm pools a group of features over every position of the sentence, so one token's "
            "change moves the statistics, and the outputs, of all of them. A sequence model wants the first.",
            options=(
                "LayerNorm: no, GroupNorm: no",
                "LayerNorm: no, GroupNorm: yes",
                "LayerNorm: yes, GroupNorm: no",
                "LayerNorm: yes, GroupNorm: yes",
            ),
            misconception="groupnorm",
        ),
        _ptr(
            "06",
            "m06-range-run",
            "One token with features (1, 2, 3, 100) goes through a freshly initialised LayerNorm "
            r"($\gamma = 1$, $\beta = 0$). What is the largest value it outputs?",
            layer_norm_of_an_outlier,
            1.73,
            "number",
            "LayerNorm standardises: (x - mean) / std, with mean 26.5 and std 42.4 here, so 100 becomes 1.73. "
            "Standardised values are not clipped to [-1, 1]; with d features one outlier can reach sqrt(d - 1) = "
            "sqrt(3) here, and the learned gamma and beta then rescale and shift the result.",
            rel_tol=0.03,
            misconception="layernorm-range",
        ),
        _mc(
            "06",
            "m06-range",
            r"What does LayerNorm do to one token's vector, before the learned $\gamma$ and $\beta$ are applied?",
            Option(
                "Subtracts the mean of the token's features and divides by their standard deviation: mean 0, variance 1.",
                Y,
                r"That is standardisation, over this one token's $d_\text{model}$ features (with a small $\epsilon$ "
                r"added to the variance). Then $\gamma$ and $\beta$ rescale and shift each feature.",
            ),
            Option(
                "Rescales the features into a fixed range such as [0, 1] or [-1, 1].",
                N,
                "Nothing bounds the standardised values: one outlier among $d$ features can reach "
                r"$\sqrt{d - 1}$, and $\gamma$ and $\beta$ can move the output anywhere.",
            ),
            Option(
                "Divides the vector by its length, giving it length 1.",
                N,
                r"That is L2 normalisation. A standardised vector has length about $\sqrt{d_\text{model}}$, not 1.",
            ),
            Option(
                "Uses the mean and variance of each feature over the batch.",
                N,
                "That is BatchNorm. LayerNorm's statistics come from the token itself, so it behaves the same in "
                "training and at inference, for any batch.",
            ),
            misconception="layernorm-range",
        ),
        # 08: the encoder's output is not K and V; cross-attention's Q, K, V; the encoder runs once
        _mc(
            "08",
            "m08-memory",
            "What does the encoder hand over to the decoder?",
            Option(
                r"Its output, the memory: one $d_\text{model}$ vector per source token. Each decoder layer makes "
                "keys and values from it through that layer's learned projections $W^K$ and $W^V$.",
                Y,
                "So one memory gives six different sets of keys and values in the base model's six decoder layers.",
            ),
            Option(
                "Ready-made keys and values, which every decoder layer uses as they are.",
                N,
                "The memory is one tensor, but keys and values are projections of it, made separately in each "
                "decoder layer with that layer's learned matrices.",
            ),
            Option(
                "One summary vector for the whole sentence.",
                N,
                "That was the bottleneck of RNN encoder-decoders. The Transformer keeps one vector per source "
                "token, so cross-attention can look at any of them.",
            ),
            Option(
                "The queries of the decoder's cross-attention.",
                N,
                "The queries come from the decoder's own states: the decoder asks, the source answers.",
            ),
            misconception="encoder-kv",
        ),
        _ptr(
            "08",
            "m08-memory-run",
            "The same encoder memory goes into the cross-attention of two decoder layers. "
            "How do the keys the two layers compute compare?",
            keys_of_two_decoder_layers,
            "different from each other and from the memory",
            "choice",
            "Each layer multiplies the memory by its own learned W^K, so the keys of layer 1, the keys of layer 2 "
            "and the memory are three different tensors. The encoder hands over the memory; keys and values are "
            "made from it inside every decoder layer.",
            options=(
                "both equal the memory itself",
                "equal to each other, not to the memory",
                "different from each other and from the memory",
            ),
            misconception="encoder-kv",
        ),
        _mc(
            "08",
            "m08-cross-qkv",
            "In the decoder's cross-attention, where do the queries, keys and values come from? "
            "Tick every statement that is true.",
            Option(
                "The queries are projections of the decoder's states.",
                Y,
                "Each target position asks its question with $W^Q$ applied to its own decoder state.",
            ),
            Option(
                "The keys and values are projections of the encoder's output.",
                Y,
                "$K = mW^K$ and $V = mW^V$, with this layer's matrices, for every source position.",
            ),
            Option(
                "The keys are the source text and the values are the target text.",
                N,
                "No raw text enters attention: all three are learned projections of vectors.",
            ),
            Option(
                "Queries, keys and values all come from the encoder.",
                N,
                "Then the decoder could not ask anything about what it has written so far; its queries are its own.",
            ),
            misconception="qkv-roles",
            select_all=True,
        ),
        _ptr(
            "08",
            "m08-once-run",
            "A small untrained encoder-decoder writes 8 tokens greedily for a 5-token source. "
            "How many times does its (first) encoder layer run?",
            encoder_calls_while_generating,
            1,
            "integer",
            "The memory depends only on the source, which does not change while the decoder writes, so the "
            "encoder runs once. The decoder runs once per generated token (8 times here).",
            misconception="encoder-once",
        ),
        # 10: the encoder runs once; greedy is one rule among several
        _mc(
            "10",
            "m10-once",
            "An encoder-decoder model translates a 20-token sentence into 15 tokens. "
            "How many times does a correct implementation run the encoder?",
            Option(
                "Once.",
                Y,
                "Its output depends only on the source sentence, so it is computed once and every decoder step "
                "reuses it (each layer even projects it to keys and values only once, in the cache).",
            ),
            Option(
                "15 times, once per generated token.",
                N,
                "Only the decoder loops. Re-running the encoder on an unchanged sentence gives the same memory "
                "every time: wasted work.",
            ),
            Option(
                "20 times, once per source token.",
                N,
                "The encoder reads all source tokens at once, in one parallel pass.",
            ),
            Option(
                "Never: the encoder is only used in training.",
                N,
                "Cross-attention reads the encoder's output at inference too; without it the decoder would not "
                "know what to translate.",
            ),
            misconception="encoder-once",
        ),
        _mc(
            "10",
            "m10-greedy",
            '"The model outputs the token with the highest probability." When is that sentence accurate?',
            Option(
                "Only under greedy decoding, one of several rules for turning the model's distribution into text.",
                Y,
                r"The model only supplies $p(\cdot \mid y_{<t}, X)$. Taking the argmax is greedy decoding; beam "
                "search and sampling use the same distribution differently.",
            ),
            Option(
                "Always: that is what the output softmax does.",
                N,
                "The softmax produces a distribution over the vocabulary; choosing a token from it is a separate "
                "decision.",
            ),
            Option(
                "With beam search of size 4, as in the paper.",
                N,
                "Beam search keeps the 4 best partial outputs by total log-probability (ranked with a length "
                "penalty, alpha = 0.6); the output it returns can contain tokens that were not the most probable "
                "at their step.",
            ),
            Option(
                "With sampling at temperature 1.",
                N,
                r"Sampling draws at random, so less probable tokens are chosen on purpose now and then; only as "
                r"$\tau \to 0$ does it become greedy.",
            ),
            misconception="greedy",
        ),
        _ptr(
            "10",
            "m10-greedy-run",
            "A made-up model: the first token is a (0.6) or b (0.4); after a the best second token has 0.4, after b "
            "it has 0.9. Greedy decoding takes a, then its best continuation (0.6 x 0.4 = 0.24). "
            "What is the probability of the most probable two-token sequence?",
            best_two_token_sequence,
            0.36,
            "number",
            "b followed by x has 0.4 x 0.9 = 0.36, more than greedy's 0.24. Greedy maximises each step, not the "
            "product over the sequence; beam search with 2 beams would keep b after step 1 and find it.",
            rel_tol=0.01,
            misconception="greedy",
        ),
    ]


def _exit_questions() -> list[Question]:
    return [
        # 00 Welcome
        _mc(
            "00",
            "x00-heads-shape",
            "A batch of 32 sentences of 10 tokens, $d_\\text{model} = 512$, 8 heads. "
            "What shape do the queries have once split into heads?",
            Option(
                "(32, 8, 10, 64)",
                Y,
                "Batch first, then heads, then positions, then $d_k = 512 / 8 = 64$: (B, h, T, d_k).",
            ),
            Option("(32, 10, 512)", N, "That is before the split: (B, T, d_model)."),
            Option(
                "(32, 10, 8, 64)",
                N,
                "That is the intermediate reshape; swapping T and h gives each head its own (T, d_k) matrix.",
            ),
            Option("(8, 32, 10, 64)", N, "The course keeps the batch axis first: (B, h, T, d_k)."),
        ),
        _ptr(
            "00",
            "x00-weights-run",
            "Scaled dot-product attention on queries (2, 8, 5, 64) and keys and values (2, 8, 7, 64). "
            "What is the shape of the attention weights?",
            weights_shape_of_a_batch,
            (2, 8, 5, 7),
            "shape",
            "One weight per (query, key) pair, for every sentence and head: (B, h, T_q, T_k) = (2, 8, 5, 7). "
            "d_k disappears in the dot products.",
        ),
        _mc(
            "00",
            "x00-mask",
            "In `course_lib`, what does `True` in a boolean attention mask mean?",
            Option(
                "This query may attend to this key.",
                Y,
                "The same convention as `torch.nn.functional.scaled_dot_product_attention`, used everywhere in the course.",
            ),
            Option(
                "This key is blocked.",
                N,
                "That is the convention of `nn.MultiheadAttention`'s masks; the course converts at that boundary.",
            ),
            Option(
                "This token is padding.",
                N,
                "A padding mask is built from the pads, but its True entries mark the keys that may be read.",
            ),
        ),
        _mc(
            "00",
            "x00-checker",
            "How does an exercise's checker decide whether your answer is right?",
            Option(
                "It runs your code on fresh random inputs and compares with a reference, then says in one line what differs.",
                Y,
                "Fresh inputs catch an answer that only happens to fit one example.",
            ),
            Option(
                "It compares the text of your code with the solution.",
                N,
                "Any correct code passes, however it is written.",
            ),
            Option(
                "It checks the one example printed in the lesson.",
                N,
                "A single example could be matched by accident (or by hard-coding it); the checker draws new inputs every time.",
            ),
        ),
        # 01 Why not RNNs
        _mc(
            "01",
            "x01-sequential",
            "In an RNN, what can no amount of parallel hardware speed up?",
            Option(
                "The chain of $T$ steps: step $t$ needs the state from step $t - 1$.",
                Y,
                "Each step waits for the one before; a faster kernel shortens each step, but $T$ steps remain.",
            ),
            Option(
                "The input projections $x_t W_{ih}^\\top$.",
                N,
                "They do not depend on the state, so all $T$ of them are one matrix product.",
            ),
            Option(
                "The per-step overhead of launching small operations.",
                N,
                "Compiled loops (`nn.RNN`) and fused GPU kernels cut that overhead; they cannot remove the dependence.",
            ),
        ),
        _mc(
            "01",
            "x01-table1",
            "The paper's Table 1: the maximum path length between two positions, for self-attention and for a recurrent layer?",
            Option(
                "$O(1)$ and $O(n)$",
                Y,
                "Attention links every pair of positions directly; a recurrent layer passes information through up to $n$ steps.",
            ),
            Option("$O(n)$ and $O(1)$", N, "The other way round: the RNN is the one with the long chain."),
            Option(
                "$O(n^2)$ and $O(n)$",
                N,
                "$O(n^2 \\cdot d)$ is self-attention's cost per layer, not its path length.",
            ),
            Option(
                "$O(\\log_k n)$ and $O(n)$", N, "$O(\\log_k n)$ is the path length of dilated convolutions."
            ),
        ),
        _ptr(
            "01",
            "x01-gradient-run",
            "An RNN with small recurrent weights (spectral radius about 0.5) reads 40 tokens. How large is the "
            "gradient of a loss at the last step with respect to the state 30 steps back?",
            gradient_thirty_tokens_back,
            "smaller than 1e-6",
            "choice",
            "The gradient is a product of 30 Jacobians, each shrinking vectors, so it decays exponentially with the "
            "distance: far below 1e-6 (below 1e-12 in the lesson). The RNN never hears that a distant token mattered.",
            options=("larger than 1e-6", "smaller than 1e-6"),
        ),
        _mc(
            "01",
            "x01-autoregressive",
            "A language model writes one token at a time. Does that make it an RNN?",
            Option(
                "No: it is autoregressive. Each new token is fed back as input, but training handles every position in one parallel pass and no fixed-size state is rewritten from step to step.",
                Y,
                "Generation is sequential because the task is; the network itself has no recurrence.",
            ),
            Option(
                "Yes: anything that generates step by step is recurrent.",
                N,
                "What makes an RNN is a state updated by the same rule at every step, which training must also unroll in order; a Transformer has none.",
            ),
            Option(
                "Yes: its KV cache is a hidden state.",
                N,
                "The cache stores keys and values that could be recomputed from the tokens; it grows with the text rather than being a fixed-size summary.",
            ),
        ),
        # 02 Tokens, embeddings, Q/K/V
        _mc(
            "02",
            "x02-embedding",
            "Looking up row $i$ of an embedding matrix $E$ of shape $(V, d_\\text{model})$ is the same as...",
            Option(
                "multiplying the one-hot vector of $i$ by $E$.",
                Y,
                "So an embedding is a linear layer with one-hot input, trained by gradient descent like any other.",
            ),
            Option(
                "a softmax over the rows of $E$.",
                N,
                "No softmax is involved: the lookup selects one row exactly.",
            ),
            Option(
                "the average of all rows of $E$, weighted by token frequency.",
                N,
                "Each token gets its own row; other rows play no part.",
            ),
        ),
        _ptr(
            "02",
            "x02-output-shape-run",
            "Equation (1) with 3 queries ($d_k = 4$), 5 keys, and 5 values of width $d_v = 6$. What is the shape of the output?",
            output_shape_of_attention,
            (3, 6),
            "shape",
            "One output per query, each a weighted average of the values: (T_q, d_v) = (3, 6). The weights in between are (3, 5).",
        ),
        _mc(
            "02",
            "x02-residual",
            "Once a token has its weighted sum of values $\\Delta x_i$, what happens to its vector $x_i$?",
            Option(
                "$\\Delta x_i$ is added to it: $x_i + \\Delta x_i$.",
                Y,
                "Attention writes an update into the token's vector (the residual connection of lesson 06); the original information stays.",
            ),
            Option(
                "It is replaced by $\\Delta x_i$.",
                N,
                "Then a token that attends to nothing useful would lose what it was.",
            ),
            Option(
                "It is multiplied by its attention weight.",
                N,
                "The weights mix the values; the token's own vector is not scaled by them.",
            ),
        ),
        _mc(
            "02",
            "x02-dictionary",
            "Attention as a soft dictionary: when the scores are scaled up so the softmax is very sharp, a query that matches one key best gets...",
            Option(
                "that key's value, as an exact dictionary lookup would.",
                Y,
                "A sharp softmax is nearly one-hot, so the weighted sum picks one value.",
            ),
            Option(
                "the average of all values.",
                N,
                "That is the other limit, very small scores: a uniform softmax.",
            ),
            Option(
                "the key itself.", N, "Keys decide the weights; what comes back is always a mix of values."
            ),
        ),
        # 03 Attention patterns
        _mc(
            "03",
            "x03-first-token",
            'What does a "first token" head look like on the grid?',
            Option(
                "A single bright column: every query puts its weight on key 0.",
                Y,
                "Every query asks the same question and only the first key answers it.",
            ),
            Option("The main diagonal.", N, "That is the current-token head: query $i$ looks at key $i$."),
            Option(
                "The diagonal just below the main one.",
                N,
                "That is the previous-token head: query $i$ looks at key $i - 1$.",
            ),
            Option("An even grey.", N, "That is the uniform head, with every score equal."),
        ),
        _mc(
            "03",
            "x03-temperature",
            "Dividing all scores by a temperature $\\tau < 1$ before the softmax...",
            Option(
                "keeps the ranking of the keys and makes each row sharper (lower entropy).",
                Y,
                "Scaling every score by the same positive factor never reorders them; larger gaps give a more decisive softmax.",
            ),
            Option(
                "changes which key gets the most weight.",
                N,
                "The largest score stays the largest after dividing by a positive number.",
            ),
            Option(
                "makes every row uniform.",
                N,
                "That happens as $\\tau \\to \\infty$; small $\\tau$ pushes towards one-hot.",
            ),
        ),
        _ptr(
            "03",
            "x03-entropy-run",
            "A query spreads its attention evenly over 8 keys. What is the entropy of its row, in nats?",
            entropy_of_a_uniform_row,
            2.079,
            "number",
            "A uniform row over T_k keys has the largest possible entropy, ln T_k = ln 8 = 2.079 nats. A row on a single key has 0.",
            rel_tol=0.02,
        ),
        _mc(
            "03",
            "x03-previous",
            "How does a hand-built previous-token head find key $i - 1$?",
            Option(
                "$W^K$ lets each key announce its own position, and $W^Q$ shifts the position features so that query $i$ asks for position $i - 1$.",
                Y,
                "The dot product is then large only for the key one step back; the words play no part.",
            ),
            Option(
                "Through the causal mask.",
                N,
                "A mask only removes keys; it does not prefer the previous key over the earlier ones.",
            ),
            Option(
                "The softmax gives more weight to nearby keys.",
                N,
                "The softmax sees only scores; it has no notion of distance.",
            ),
        ),
        # 04 Multi-head attention
        _mc(
            "04",
            "x04-cost",
            "Compared with one head of width $d_\\text{model}$, $h$ heads of width $d_\\text{model}/h$ cost...",
            Option(
                "the same parameters and the same matrix-multiply FLOPs; only the stored $T \\times T$ weight grids grow $h$-fold.",
                Y,
                "The projections are the same four matrices, and $h$ heads of width $d_k$ do $h \\cdot d_k = d_\\text{model}$ worth of score and sum arithmetic.",
            ),
            Option(
                "$h$ times the parameters.",
                N,
                "Each head owns a $d_k$-wide slice of the same $d_\\text{model} \\times d_\\text{model}$ matrices.",
            ),
            Option(
                "$1/h$ of the FLOPs.",
                N,
                "Each head is $h$ times narrower but there are $h$ of them: the arithmetic is the same.",
            ),
        ),
        _mc(
            "04",
            "x04-split",
            "How must $Q$ of shape (B, T, d_model) be split into heads?",
            Option(
                "View it as (B, T, h, d_k), then swap T and h: (B, h, T, d_k).",
                Y,
                "Each head gets features $i\\,d_k$ to $(i+1)\\,d_k - 1$ of every token.",
            ),
            Option(
                "View it directly as (B, h, T, d_k).",
                N,
                "The shape is right but the numbers are not: a reshape keeps memory order, so head 1 would get a jumble of several tokens' features.",
            ),
            Option(
                "Cut the T positions into h groups, one per head.",
                N,
                "Every head sees every token; heads divide the features, not the positions.",
            ),
        ),
        _ptr(
            "04",
            "x04-params-run",
            "How many parameters does one multi-head attention block of the base model have ($d_\\text{model} = 512$, $h = 8$, with biases)?",
            parameters_of_one_attention_block,
            1050624,
            "number",
            "Four 512 x 512 matrices (W^Q, W^K, W^V, W^O) and four biases of 512: 4 x 512^2 + 4 x 512 = 1,050,624. The number of heads does not appear.",
            rel_tol=0.01,
        ),
        _mc(
            "04",
            "x04-ov",
            "A head's OV circuit $W^V_i W^O_i$ is a $d_\\text{model} \\times d_\\text{model}$ matrix. What is its rank at most?",
            Option(
                "$d_k$",
                Y,
                'It passes through a $d_k$-dimensional bottleneck: "value down" to $d_k$, then "value up" to $d_\\text{model}$.',
            ),
            Option(
                "$d_\\text{model}$", N, "A product through $d_k$ dimensions cannot have rank above $d_k$."
            ),
            Option("$h$", N, "The number of heads does not limit one head's matrix."),
        ),
        # 05 Positional encoding
        _ptr(
            "05",
            "x05-norm-run",
            "How long is the sinusoidal position vector of position 37 for $d_\\text{model} = 512$?",
            length_of_a_position_vector,
            16.0,
            "number",
            "Each (sin, cos) pair contributes sin^2 + cos^2 = 1, and there are 256 pairs, so every position vector has length sqrt(256) = 16 = sqrt(d_model / 2).",
            rel_tol=0.01,
        ),
        _mc(
            "05",
            "x05-shift",
            "How is $PE_{pos+k}$ related to $PE_{pos}$?",
            Option(
                "By a fixed linear map (a rotation in each sin/cos pair) that depends on $k$ only.",
                Y,
                "The lesson verifies $PE_{pos+k} = M_k PE_{pos}$ for every position, which is what lets attention read offsets.",
            ),
            Option(
                "$PE_{pos+k} = PE_{pos} + PE_k$",
                N,
                "Sines and cosines do not add like that; the angle-sum formulas give a rotation, not a sum.",
            ),
            Option("There is no simple relation.", N, "There is: the angle-sum formulas of sine and cosine."),
        ),
        _mc(
            "05",
            "x05-scale",
            "Why are token embeddings multiplied by $\\sqrt{d_\\text{model}}$ before the position vector is added?",
            Option(
                "So that small-initialised embeddings are not drowned by the position encoding, whose entries are of size about 1.",
                Y,
                "It balances the two terms of the sum.",
            ),
            Option(
                "To keep the variance of the attention scores near 1.",
                N,
                "That is the job of the $\\sqrt{d_k}$ in equation (1).",
            ),
            Option(
                "Because the output layer shares the embedding matrix.",
                N,
                "Weight sharing works without the factor; the factor is about the sum with the positions.",
            ),
        ),
        _mc(
            "05",
            "x05-learned",
            "Which statements about learned position embeddings are true?",
            Option(
                "In the paper's Table 3 (row E) they scored almost the same as sinusoids.",
                Y,
                "Development-set BLEU 25.7 against 25.8, perplexity 4.92 for both.",
            ),
            Option(
                "They have no vector for positions beyond the `max_len` they were trained with.",
                Y,
                "A table has as many rows as it was given; sinusoids can be computed for any position.",
            ),
            Option(
                "They make self-attention permutation invariant.",
                N,
                "Adding any position vectors makes order visible; without them attention is equivariant, never invariant.",
            ),
            select_all=True,
        ),
        # 06 Residuals, LayerNorm, feed-forward
        _mc(
            "06",
            "x06-residual",
            "Why do residual connections keep gradients alive in a deep stack?",
            Option(
                "The Jacobian of $x + F(x)$ is $I + \\partial F / \\partial x$: the identity gives the gradient a path that no layer can shrink.",
                Y,
                "In the lesson's 32-layer stack the gradient vanished without residuals and survived with them.",
            ),
            Option(
                "They normalise the activations.",
                N,
                "That is LayerNorm's job; a residual only adds the input back.",
            ),
            Option(
                "They reduce the number of parameters.",
                N,
                "An addition has no parameters, but it removes none either.",
            ),
        ),
        _mc(
            "06",
            "x06-post-ln",
            "Which arrangement does the paper use around each sublayer?",
            Option(
                "$\\mathrm{LayerNorm}(x + \\mathrm{Sublayer}(x))$ (post-LN)",
                Y,
                "Section 3.1. It is the arrangement that needs the learning-rate warm-up most.",
            ),
            Option(
                "$x + \\mathrm{Sublayer}(\\mathrm{LayerNorm}(x))$ (pre-LN)",
                N,
                "That is the later arrangement of GPT-2 and most models since.",
            ),
            Option(
                "$\\mathrm{Sublayer}(\\mathrm{LayerNorm}(x))$, without a residual",
                N,
                "The paper keeps a residual connection around every sublayer.",
            ),
        ),
        _ptr(
            "06",
            "x06-ffn-run",
            "What fraction of the parameters of one base-model encoder layer is in its feed-forward network ($d_\\text{model} = 512$, $d_{ff} = 2048$)?",
            ffn_share_of_an_encoder_layer,
            0.666,
            "number",
            "The FFN has 2 x 512 x 2048 + 2048 + 512 = 2,099,712 parameters, attention 1,050,624 and two LayerNorms 2,048: the FFN holds about two thirds.",
            rel_tol=0.05,
        ),
        _mc(
            "06",
            "x06-dropout",
            "What does inverted dropout do after `model.eval()`?",
            Option(
                "Nothing: it is the identity.",
                Y,
                "During training it zeroes each entry with probability $p$ and scales the survivors by $1/(1-p)$, so no correction is needed at test time.",
            ),
            Option(
                "It keeps dropping with probability $p$.",
                N,
                "Randomness at test time would make predictions noisy; eval mode switches it off.",
            ),
            Option(
                "It multiplies every entry by $1 - p$.",
                N,
                "That is the original, non-inverted dropout's test-time rule; inverted dropout rescales during training instead.",
            ),
        ),
        # 07 Masking
        _ptr(
            "07",
            "x07-causal-run",
            "Four tokens attend to each other under a causal mask. What weight does query 0 put on key 0?",
            first_query_under_a_causal_mask,
            1.0,
            "number",
            "Query 0 may see only itself: the other three scores are set to -inf, their weights are 0, and the row still sums to 1.",
            rel_tol=0.001,
        ),
        _mc(
            "07",
            "x07-where",
            "Where does a mask act in attention?",
            Option(
                "On the scores, before the softmax: masked entries become $-\\infty$, so their weights are exactly 0 and each row still sums to 1.",
                Y,
                "One step gives both properties.",
            ),
            Option(
                "On the weights after the softmax, setting masked ones to 0.",
                N,
                "Then the remaining weights would no longer sum to 1 unless renormalised.",
            ),
            Option(
                "On the values, zeroing the masked tokens' values.",
                N,
                "The masked keys would still take weight, which would then be wasted on zeros.",
            ),
        ),
        _mc(
            "07",
            "x07-cheat",
            "A model trained without the causal mask reaches a training loss near 0. Why can it not generate?",
            Option(
                "It learned to read the next token from its input, and at generation time that token does not exist yet.",
                Y,
                "Its low loss came from copying the answer, not from predicting it.",
            ),
            Option("Its weights overflow.", N, "Nothing numerical goes wrong; it learned the wrong task."),
            Option(
                "It also needs a padding mask.",
                N,
                "Padding is a separate problem; a batch with no padding shows the same failure.",
            ),
        ),
        _mc(
            "07",
            "x07-padding",
            "Why does a batch of sentences of different lengths need a padding mask?",
            Option(
                "Without it a sentence's outputs depend on how much padding its batch adds.",
                Y,
                "Pad positions would take part of every query's attention.",
            ),
            Option(
                "It does not: pad tokens are zero vectors and take no weight.",
                N,
                "Even a key of zeros scores 0, not $-\\infty$, and so takes a share of the softmax.",
            ),
            Option(
                "To make the sentences the same length.",
                N,
                "The padding does that; the mask stops queries from reading it.",
            ),
        ),
        # 08 Encoder, decoder, cross-attention
        _mc(
            "08",
            "x08-decoder-layer",
            "Which sublayers does a decoder layer of the paper have, in order?",
            Option(
                "Masked self-attention, cross-attention, feed-forward.",
                Y,
                "Each wrapped with a residual connection and LayerNorm.",
            ),
            Option("Self-attention, feed-forward.", N, "That is an encoder layer."),
            Option(
                "Masked self-attention, feed-forward.",
                N,
                "That is a decoder-only (GPT) block: no encoder, so no cross-attention.",
            ),
        ),
        _mc(
            "08",
            "x08-cross-shape",
            "In cross-attention with $T$ target positions and $S$ source positions, what shape does one head's weight grid have?",
            Option(
                "$(T, S)$: one row per target position, each summing to 1 over the source.",
                Y,
                "Queries come from the decoder, keys from the encoder.",
            ),
            Option("$(S, T)$", N, "Rows are queries, and the queries are the target positions."),
            Option("$(T, T)$", N, "That is the decoder's self-attention."),
        ),
        _ptr(
            "08",
            "x08-params-run",
            "The paper's base model with a shared 37,000-token vocabulary: how many parameters, in millions?",
            base_model_parameters,
            63.1,
            "number",
            "The course counts 63.1M; the paper's Table 3 reports 65M and gives neither its exact vocabulary nor a breakdown. One matrix serves as source embedding, target embedding and output layer; without that sharing it would be about 101M.",
            rel_tol=0.04,
        ),
        _mc(
            "08",
            "x08-families",
            "A model that must label whole sentences (classification, retrieval) is usually which kind?",
            Option(
                "Encoder-only (like BERT).",
                Y,
                "It reads the whole input with unmasked attention and needs to generate nothing.",
            ),
            Option(
                "Decoder-only (like GPT).",
                N,
                "Decoder-only models are built to generate text, one token after another.",
            ),
            Option(
                "Encoder-decoder.",
                N,
                "The decoder would be there to generate an output sequence, which a label does not need.",
            ),
        ),
        # 09 Training
        _mc(
            "09",
            "x09-teacher-forcing",
            "The target is `A B C`. During training, what does the decoder read and what must it predict?",
            Option(
                "It reads `<sos> A B C` and predicts `A B C <eos>`.",
                Y,
                "Teacher forcing with a right shift: position $t$ sees the true tokens before $t$ and predicts token $t$.",
            ),
            Option(
                "It reads `A B C` and predicts `A B C`.",
                N,
                "With the causal mask each position would see its own answer in the input: a copy task.",
            ),
            Option(
                "It reads `<sos>` only and generates `A`, `B`, `C` one at a time.",
                N,
                "That is inference. Training feeds the true previous tokens and trains every position in one pass.",
            ),
        ),
        _ptr(
            "09",
            "x09-lr-run",
            "The learning rate of equation (3) at step 4000 ($d_\\text{model} = 512$, warmup = 4000)?",
            peak_learning_rate,
            0.000699,
            "number",
            "Equation (3) rises linearly for 4000 steps and then decays as 1/sqrt(step), so step 4000 is the peak: 512^-0.5 x 4000^-0.5 = 7.0e-4.",
            rel_tol=0.05,
        ),
        _mc(
            "09",
            "x09-label-smoothing",
            "The paper trains with label smoothing $\\epsilon_{ls} = 0.1$. What did it report?",
            Option(
                "It hurts perplexity, since the model learns to be more unsure, but improves accuracy and BLEU.",
                Y,
                "Section 5.4; row D of Table 3 shows it too.",
            ),
            Option(
                "It improves perplexity and BLEU alike.",
                N,
                "Perplexity gets worse: the model is trained not to put all its probability on one token.",
            ),
            Option(
                "It lets the training loss reach 0 faster.",
                N,
                "With a smoothed target the loss cannot reach 0 at all: the smoothed target's own entropy is its floor.",
            ),
        ),
        _mc(
            "09",
            "x09-adam",
            "The paper's optimiser settings?",
            Option(
                "Adam with $\\beta_1 = 0.9$, $\\beta_2 = 0.98$, $\\epsilon = 10^{-9}$, and the warm-up schedule of equation (3).",
                Y,
                "Section 5.3 of the paper: the learning rate rises for 4000 steps, then decays as 1/sqrt(step).",
            ),
            Option(
                "Adam with $\\beta_1 = 0.9$, $\\beta_2 = 0.999$, $\\epsilon = 10^{-8}$, constant learning rate.",
                N,
                "Those are Adam's usual defaults; the paper lowered $\\beta_2$ and $\\epsilon$ and used a schedule.",
            ),
            Option(
                "Plain SGD with momentum 0.9.",
                N,
                "The paper used Adam, with the learning rate of equation (3).",
            ),
        ),
        _ptr(
            "09",
            "x09-perplexity-run",
            "A model's mean cross-entropy on held-out tokens is $\\ln 4 \\approx 1.386$ nats. What is its perplexity?",
            perplexity_of_ln_4,
            4.0,
            "number",
            "Perplexity is exp(mean cross-entropy) = exp(ln 4) = 4: on average the model is as unsure as a fair choice among 4 tokens.",
            rel_tol=0.01,
        ),
        # 10 Inference
        _mc(
            "10",
            "x10-beam-one",
            "Beam search with a beam of size $K = 1$ is...",
            Option(
                "greedy decoding.",
                Y,
                "Keeping only the best partial output at every step is exactly taking the argmax each time.",
            ),
            Option("sampling at temperature 1.", N, "Beam search never draws at random."),
            Option(
                "exhaustive search.",
                N,
                "Exhaustive search would keep every partial output, $V^t$ of them at step $t$.",
            ),
        ),
        _ptr(
            "10",
            "x10-length-penalty-run",
            "The paper ranks finished beams by $\\log P / lp(Y)$ with $lp(Y) = ((5 + |Y|)/6)^{\\alpha}$ and $\\alpha = 0.6$. What is $lp$ for a 4-token output?",
            length_penalty_of_four_tokens,
            1.275,
            "number",
            "((5 + 4) / 6)^0.6 = 1.5^0.6 = 1.275. Longer outputs get a larger divisor, which offsets the extra negative log-probabilities they add.",
            rel_tol=0.01,
        ),
        _mc(
            "10",
            "x10-top-p",
            "Top-p (nucleus) sampling with $p = 0.9$ samples from...",
            Option(
                "the smallest set of most probable tokens whose probabilities add up to at least 0.9, renormalised.",
                Y,
                "The set grows when the model is unsure and shrinks when it is confident.",
            ),
            Option(
                "the 90% most probable tokens of the vocabulary.",
                N,
                "That would be a fixed count; top-p fixes the probability mass instead.",
            ),
            Option(
                "only tokens with probability at least 0.9.",
                N,
                "Often there is no such token; the nucleus is a set whose total is at least 0.9.",
            ),
        ),
        _mc(
            "10",
            "x10-kv-cache",
            "What does the KV cache change during generation?",
            Option(
                "Each layer keeps its past keys and values, so each step feeds only the newest token: the same outputs, less work.",
                Y,
                "The lesson measures a speed-up that grows with the output's length.",
            ),
            Option(
                "It approximates attention to make it faster.",
                N,
                "Nothing is approximated: the outputs are identical to recomputing everything.",
            ),
            Option(
                "It stores the attention weights of past steps.",
                N,
                "Weights depend on each new query; what can be reused are the keys and values.",
            ),
        ),
        # 11 The complete model
        _mc(
            "11",
            "x11-bf16",
            "What is bfloat16, as used by autocast on CUDA?",
            Option(
                "A 16-bit format with float32's exponent range and about 2 to 3 significant decimal digits; autocast runs matrix products in it and keeps sensitive operations in float32.",
                Y,
                "Its range means no loss scaling is needed; its precision is low.",
            ),
            Option(
                "A 16-bit format more precise than float32.",
                N,
                "It keeps 8 bits of mantissa (with the implicit bit) against float32's 24.",
            ),
            Option(
                "float16 with a larger mantissa.",
                N,
                "The opposite: bfloat16 trades mantissa bits for exponent bits compared with float16.",
            ),
        ),
        _ptr(
            "11",
            "x11-bf16-run",
            "1/3 stored in bfloat16 and read back: what does it print to 4 decimals?",
            one_third_in_bfloat16,
            "0.3340",
            "choice",
            "bfloat16 keeps 8 significant bits, so 1/3 becomes 0.333984375: correct to about 2 to 3 decimal digits.",
            options=("0.3333", "0.3340", "0.3125"),
        ),
        _mc(
            "11",
            "x11-resume",
            "For a resumed run to end bit for bit where an uninterrupted one would, what must the checkpoint hold? Tick every one.",
            Option("The model's weights.", Y, "Without them there is nothing to resume."),
            Option(
                "The optimiser's state (Adam's moment estimates).",
                Y,
                "Without them the first steps after resuming would differ.",
            ),
            Option(
                "The step count and the random generators' states.",
                Y,
                "The schedule's position, dropout's masks and the data order depend on them.",
            ),
            Option(
                "The training text itself.",
                N,
                "The data can be read or generated again; what matters is where in it training was, which the step and the RNG give.",
            ),
            select_all=True,
        ),
        _mc(
            "11",
            "x11-compute",
            "$C \\approx 6ND$ estimates the training compute of a model with $N$ parameters on $D$ tokens. Where does the 6 come from?",
            Option(
                "About 2 FLOPs per parameter per token for the forward pass and 4 for the backward pass.",
                Y,
                "A multiply-add is 2 FLOPs; the backward pass computes gradients for both activations and weights.",
            ),
            Option(
                "The 6 layers of the base model.",
                N,
                "The rule holds for any depth; $N$ already counts every layer.",
            ),
            Option(
                "Adam's 6 numbers per parameter.",
                N,
                "The optimiser's memory is a separate matter; its arithmetic per step is small.",
            ),
        ),
        # 12 Byte-pair encoding
        _ptr(
            "12",
            "x12-bytes-run",
            'A byte-level BPE tokenizer with no merges yet encodes "héllo". How many tokens?',
            tokens_without_merges,
            6,
            "integer",
            "With no merges every UTF-8 byte is one token, and é takes two bytes: 6 tokens for 5 characters.",
        ),
        _mc(
            "12",
            "x12-merge",
            "How does BPE training choose its next merge?",
            Option(
                "The most frequent pair of neighbouring tokens in the corpus becomes a new token.",
                Y,
                "Gage (1994) for compression, Sennrich, Haddow and Birch (2016) for translation; ties need a fixed rule.",
            ),
            Option(
                "The longest word of the corpus becomes a token.",
                N,
                "BPE grows tokens two at a time, from the pairs that occur most often.",
            ),
            Option(
                "The rarest pair, to cover unknown words.",
                N,
                "Merging rare pairs would shorten almost nothing; unknown text is covered by the bytes.",
            ),
        ),
        _mc(
            "12",
            "x12-unknown",
            "Why does a byte-level tokenizer never meet an unknown token?",
            Option(
                "Any text is a sequence of UTF-8 bytes, and all 256 bytes are in the base vocabulary.",
                Y,
                "Merges only shorten the sequence; they never remove a byte.",
            ),
            Option(
                "Its vocabulary contains every word of every language.",
                N,
                "It holds a few thousand pieces; rare words are spelt out in smaller pieces.",
            ),
            Option(
                "Unknown characters are dropped.",
                N,
                "Nothing is dropped: decoding gives back exactly the text that was encoded.",
            ),
        ),
        _mc(
            "12",
            "x12-vocab",
            "What does a larger BPE vocabulary trade?",
            Option(
                "Shorter sequences against more embedding parameters ($V \\times d_\\text{model}$).",
                Y,
                "The paper's shared vocabulary of about 37,000 tokens lets one matrix serve both embeddings and the output layer.",
            ),
            Option(
                "Longer sequences against fewer parameters.",
                N,
                "More merges make tokens longer, so sequences get shorter.",
            ),
            Option(
                "Nothing: it only makes training slower.",
                N,
                "Sequence length drives attention's cost, and the vocabulary drives the embedding's size.",
            ),
        ),
        # 13 Decoder-only GPT
        _mc(
            "13",
            "x13-block",
            "What is a decoder-only (GPT) block?",
            Option(
                "Masked self-attention and a feed-forward network, each with a residual and LayerNorm; no cross-attention.",
                Y,
                "There is no encoder to attend to.",
            ),
            Option(
                "An encoder layer with a causal mask and cross-attention.",
                N,
                "Cross-attention needs an encoder's output, which a decoder-only model does not have.",
            ),
            Option(
                "Cross-attention and a feed-forward network.",
                N,
                "Its attention is over its own previous tokens: masked self-attention.",
            ),
        ),
        _mc(
            "13",
            "x13-targets",
            "Next-token training on a window of $T$ tokens gives how many prediction targets?",
            Option(
                "$T$: every position predicts its next token, all in one parallel pass.",
                Y,
                "The causal mask lets every position be a target without seeing its answer.",
            ),
            Option(
                "1: only the last position.",
                N,
                "That would waste $T - 1$ predictions the same forward pass already computes.",
            ),
            Option(
                "$T^2$: one per pair of positions.",
                N,
                "Attention has $T^2$ weights, but each position has one next token.",
            ),
        ),
        _ptr(
            "13",
            "x13-uniform-run",
            "A model that spreads its probability evenly over 50 tokens: what is its perplexity?",
            perplexity_of_a_uniform_guess,
            50.0,
            "number",
            "Its cross-entropy is ln 50 at every token, and exp(ln 50) = 50: perplexity is the effective number of equally likely choices.",
            rel_tol=0.01,
        ),
        _mc(
            "13",
            "x13-bpb",
            "Why compare a byte-level model and a BPE model by bits per byte rather than perplexity per token?",
            Option(
                "A token covers a different amount of text in each; bits per byte measures both on the same text in the same unit.",
                Y,
                "Per-token perplexity rises when tokens are longer, even for an equally good model.",
            ),
            Option(
                "Because perplexity cannot be computed for BPE models.",
                N,
                "It can; it just depends on the tokenizer.",
            ),
            Option(
                "Bits per byte is always smaller, which is nicer to report.",
                N,
                "The choice is about fairness, not size.",
            ),
        ),
        # 14 Translation and the paper's results
        _ptr(
            "14",
            "x14-clipping-run",
            'Hypothesis "the the the the", reference "the cat is on the mat". How many unigram matches does BLEU count?',
            clipped_unigram_matches,
            2,
            "integer",
            '"the" occurs twice in the reference, so the four matches are clipped to 2 (precision 2/4, not 4/4). Clipping stops a system from gaining by repeating a correct word.',
        ),
        _ptr(
            "14",
            "x14-brevity-run",
            "A 5-token hypothesis whose every 1- to 4-gram matches, against a 10-token reference. What is its BLEU?",
            bleu_of_a_short_perfect_hypothesis,
            36.8,
            "number",
            "All four precisions are 100%, but the brevity penalty exp(1 - r/c) = exp(1 - 10/5) = 0.368 applies, so BLEU = 36.8. Without it, saying little would score well.",
            rel_tol=0.01,
        ),
        _mc(
            "14",
            "x14-table2",
            "The paper's Table 2: what BLEU did the big Transformer reach on English-to-German (newstest2014)?",
            Option("28.4", Y, "More than 2 BLEU above the best earlier results, ensembles included."),
            Option("27.3", N, "That is the base model, which already beat every earlier single model."),
            Option(
                "26.4",
                N,
                "About the best earlier ensemble (ConvS2S, 26.36), which the big model beat by more than 2 BLEU.",
            ),
        ),
        _mc(
            "14",
            "x14-table3",
            "What did the paper's Table 3 find? Tick every true statement.",
            Option(
                "One head instead of 8 cost 0.9 BLEU, and too many heads also hurt (row A).",
                Y,
                "Quality peaked at a middling number of heads.",
            ),
            Option(
                "Reducing $d_k$ hurt quality (row B).",
                Y,
                "The paper suggests that deciding compatibility is not easy and that a better function than the dot product might help.",
            ),
            Option(
                "Without dropout, quality dropped (row D).",
                Y,
                "Dropout is very helpful against over-fitting (25.8 with $P_{drop} = 0.1$ against 24.6 without).",
            ),
            Option(
                "Label smoothing improved perplexity (row D).",
                N,
                "It made perplexity worse (4.67 without it, 4.92 with) but improved BLEU.",
            ),
            select_all=True,
        ),
        _mc(
            "14",
            "x14-decoding",
            "How did the paper decode for its translation results?",
            Option(
                "Beam search with beam 4 and $\\alpha = 0.6$, maximum output length input + 50, stopping early when possible; the model's weights averaged over its last checkpoints.",
                Y,
                "The last 5 checkpoints for the base model, the last 20 for the big one, written at 10-minute intervals.",
            ),
            Option(
                "Greedy decoding with an ensemble of independently trained models.",
                N,
                "The results are for single models, with beam search; averaging checkpoints is not an ensemble.",
            ),
            Option(
                "Sampling at temperature 0.6.",
                N,
                "0.6 is the length penalty's $\\alpha$, not a temperature; translation used beam search.",
            ),
        ),
        # 15 Training in parallel
        _ptr(
            "15",
            "x15-shards-run",
            "Two workers each take half of a batch of 8 and compute the gradient of their mean loss. How does the average of their two gradients compare with the gradient of the whole batch on one device?",
            shard_gradients_against_the_batch,
            "equal (to round-off)",
            "choice",
            "The gradient of a mean is the mean of the gradients, and the two halves are the same size, so averaging the shards' gradients gives the large-batch gradient. That is what DDP's all-reduce computes. With shards of different token counts, a plain mean of per-shard means would be biased.",
            options=("equal (to round-off)", "different"),
        ),
        _mc(
            "15",
            "x15-allreduce",
            "What does DistributedDataParallel all-reduce at every step?",
            Option(
                "The gradients, so that every replica takes the same optimiser step.",
                Y,
                "The weights start equal (rank 0's are broadcast) and stay equal because every replica applies the same update.",
            ),
            Option(
                "The weights, after each worker's own step.",
                N,
                "Averaging weights after different steps is another method; DDP reduces gradients before one shared step.",
            ),
            Option(
                "The training data.",
                N,
                "Each worker reads its own shard of every batch; data is never exchanged.",
            ),
        ),
        _mc(
            "15",
            "x15-accumulation",
            "What is gradient accumulation?",
            Option(
                "Summing the gradients of $K$ micro-batches before one optimiser step: a batch $K$ times larger than fits in memory.",
                Y,
                "The same sum as data parallelism, spread over time instead of devices.",
            ),
            Option(
                "Raising the learning rate $K$ times.", N, "The learning rate is unchanged; the batch grows."
            ),
            Option(
                "Keeping old gradients from earlier steps, as momentum does.",
                N,
                "The gradients are cleared after every optimiser step.",
            ),
        ),
        _mc(
            "15",
            "x15-memory",
            "Training with Adam in mixed precision needs about how many bytes per parameter, before activations?",
            Option(
                "16",
                Y,
                "2 (16-bit weights) + 2 (16-bit gradients) + 4 (float32 master weights) + 8 (Adam's two float32 moments). ZeRO and FSDP shard these across workers.",
            ),
            Option("2", N, "That is the 16-bit weights alone."),
            Option("4", N, "That is one float32 copy; training keeps gradients and optimiser state as well."),
        ),
        # 16 Induction heads
        _mc(
            "16",
            "x16-induction",
            "In a sequence `... A B ... A`, where does an induction head at the second `A` attend, and what does it predict?",
            Option(
                "To `B`, the token after the earlier `A`; it predicts `B` comes next.",
                Y,
                "It completes the pattern from last time: find the previous occurrence, look one step after it, copy.",
            ),
            Option(
                "To the earlier `A` itself.",
                N,
                "That is a duplicate-token head. An induction head looks one position further.",
            ),
            Option(
                "To the token just before the second `A`.",
                N,
                "That is a previous-token head; it is a building block of the induction circuit, not the induction head.",
            ),
        ),
        _mc(
            "16",
            "x16-composition",
            "Why does an induction head need a previous-token head in an earlier layer?",
            Option(
                'The key at `B` must carry "the token before me was `A`"; the previous-token head writes that into the residual stream, and the induction head\'s keys read it (K-composition).',
                Y,
                "One attention layer alone cannot both find the earlier `A` and look one step past it.",
            ),
            Option(
                "To receive the positional encoding.",
                N,
                "Every layer gets positions through the residual stream; composition is about information another head wrote.",
            ),
            Option(
                "It does not: one attention layer suffices.",
                N,
                "Attention-only models need at least two layers to form induction heads (Elhage et al., 2021; Olsson et al., 2022).",
            ),
        ),
        _mc(
            "16",
            "x16-loss",
            "On sequences whose second half repeats the first, where does the loss fall once induction heads form?",
            Option(
                "On the repeated half: the model can copy what followed last time.",
                Y,
                "The first half is random, so nothing in it can be predicted from context.",
            ),
            Option(
                "On the first half.",
                N,
                "Random tokens stay unpredictable; only a repeat gives the context something to copy.",
            ),
            Option(
                "Evenly everywhere.",
                N,
                "The gain is in-context: it appears only where the context holds the answer.",
            ),
        ),
        _mc(
            "16",
            "x16-ablation",
            "Zeroing one head's output makes the loss on the repeated half rise sharply. What does this ablation show?",
            Option(
                "That the model actually uses that head for the repeats: a causal test, not just a pattern in the weights.",
                Y,
                "An attention pattern alone is a correlation; removing the head tests whether the prediction depends on it.",
            ),
            Option("That the head was never trained.", N, "An untrained head would not matter to the loss."),
            Option(
                "Nothing, since every head raises the loss when removed.",
                N,
                "Most heads matter little on this task; the score of each ablation tells them apart.",
            ),
        ),
        # 17 Beyond attention
        _ptr(
            "17",
            "x17-online-run",
            "Attention computed tile by tile with the online softmax (blocks of 16 queries and 16 keys), against the standard formula. How do they compare?",
            online_softmax_against_softmax,
            "equal to round-off",
            "choice",
            "The online softmax keeps a running maximum, a running sum and a running output, rescaled by exp(m - m_new) whenever the maximum grows. After the last block it has exactly softmax(QK^T / sqrt(d_k)) V; FlashAttention is this loop as one GPU kernel, and is exact, not an approximation.",
            options=("equal to round-off", "close, about 1% off", "different"),
        ),
        _ptr(
            "17",
            "x17-gqa-run",
            "A 32-layer model with 32 query heads of $d_k = 128$. How many times smaller is the KV cache per token with 8 key/value heads (GQA) than with 32 (multi-head)?",
            kv_cache_saving_of_gqa,
            4,
            "integer",
            "The cache holds 2 x n_layers x n_kv_heads x d_k numbers per token, so it shrinks by n_kv / h = 8 / 32: four times smaller (128 KiB instead of 512 KiB per token in 16 bits).",
        ),
        _ptr(
            "17",
            "x17-linear-run",
            "Linear attention reads 10 tokens, then (fresh) 100 tokens. How does the size of its recurrent state compare?",
            linear_attention_state_size,
            "the same for both",
            "choice",
            "Linear attention moves the brackets, phi(q)^T (sum_j phi(k_j) v_j^T): the sum is a fixed (d_k x d_v) state per head, updated token by token like an RNN's, unlike a KV cache that grows with every token.",
            options=("the same for both", "ten times larger for 100 tokens"),
        ),
        _mc(
            "17",
            "x17-retention",
            "What is retention (RetNet)?",
            Option(
                "Linear-attention-like mixing with a per-head decay $\\gamma$, computable in three equal forms: parallel, recurrent and chunkwise.",
                Y,
                "Parallel for training, recurrent for $O(1)$ work and memory per generated token, chunkwise in between.",
            ),
            Option(
                "Softmax attention with a bigger KV cache.",
                N,
                "Retention has no softmax and no growing cache; its state has a fixed size.",
            ),
            Option(
                "An approximation whose three forms give slightly different results.",
                N,
                "The three forms compute the same function; the lesson checks them equal.",
            ),
        ),
        _mc(
            "17",
            "x17-tradeoff",
            "Where do fixed-state models (linear attention, retention) lose against softmax attention?",
            Option(
                "Recall: a fixed-size state blends its memories, while softmax can pick one key among many in a growing cache.",
                Y,
                "On the lesson's associative-recall task they fell to near chance as the pairs grew; softmax stayed near perfect.",
            ),
            Option("Speed per generated token.", N, "That is where they win: constant work per token."),
            Option(
                "They cannot be trained in parallel.",
                N,
                "Their parallel form trains all positions at once, like attention.",
            ),
        ),
    ]


# --- the bank and the quizzes -----------------------------------------------------------------------
QUESTIONS: list[Question] = _misconception_questions() + _exit_questions()


def _lesson_key(lesson: object) -> str:
    """'06' from '06', '6', 6 or '06_residuals_layernorm_ffn'; a clear error otherwise."""
    if isinstance(lesson, bool):
        raise ValueError(f"lesson must be a lesson number such as '06', got {lesson!r}")
    if isinstance(lesson, int):
        key = f"{lesson:02d}"
    elif isinstance(lesson, str) and lesson.strip()[:2].strip("_").isdigit():
        key = f"{int(lesson.strip()[:2].strip('_')):02d}"
    else:
        raise ValueError(f"lesson must be a lesson number such as '06', got {lesson!r}")
    if key not in LESSONS:
        raise ValueError(f"there is no lesson {lesson!r}: the lessons are {', '.join(LESSONS)}")
    return key


def questions(
    lesson: object | None = None, kind: str = "all", misconception: str | None = None
) -> list[Question]:
    """The bank's questions, filtered by lesson, kind ("exit", "misconceptions", "all") and misconception key."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if misconception is not None and misconception not in MISCONCEPTIONS:
        raise ValueError(f"unknown misconception {misconception!r}; the keys are {', '.join(MISCONCEPTIONS)}")
    key = None if lesson is None else _lesson_key(lesson)
    out = []
    for q in QUESTIONS:
        if key is not None and q.lesson != key:
            continue
        if kind == "exit" and q.misconception is not None:
            continue
        if kind == "misconceptions" and q.misconception is None:
            continue
        if misconception is not None and q.misconception != misconception:
            continue
        out.append(q)
    return out


def quiz_for(lesson: object, kind: str = "exit", misconception: str | None = None) -> Quiz:
    """A fresh `Quiz` for one lesson: its exit quiz, its misconception questions (optionally just those
    on one misconception), or all of them. Display it in a notebook to answer it in a widget."""
    key = _lesson_key(lesson)
    chosen = questions(key, kind, misconception)
    if not chosen:
        have = sorted({q.misconception for q in questions(key, "misconceptions")})
        what = f"on {misconception!r}" if misconception else f"of kind {kind!r}"
        raise ValueError(
            f"lesson {key} has no questions {what}; its misconceptions are: {', '.join(have) or 'none'}"
        )
    if kind == "exit":
        title = f"Lesson {key} · {LESSONS[key]} · exit quiz"
    elif kind == "misconceptions":
        title = f"Lesson {key} · check your understanding"
    else:
        title = f"Lesson {key} · {LESSONS[key]} · all questions"
    return Quiz(title, chosen)
