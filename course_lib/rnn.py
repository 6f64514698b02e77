"""A minimal recurrent network: the baseline the Transformer replaces (paper, sections 1 and 4).

An Elman-style tanh RNN (Elman, 1990) reads a sequence one position at a time and
carries everything it has seen in one fixed-size hidden state:

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

Parameter names and initialisation follow `torch.nn.RNN(nonlinearity="tanh")`, so weights
copy across one to one. Lesson 01 uses it to measure the two costs of recurrence: T
sequential steps, and gradients that vanish or explode with the distance between positions.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .validate import check_last_dim, check_nonempty, check_tensor


class TanhRNN(nn.Module):
    """One-layer tanh RNN, batch_first: x (B, T, input_size) -> states (B, T, hidden_size)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        if input_size <= 0 or hidden_size <= 0:
            raise ValueError(
                f"input_size and hidden_size must be positive, got {input_size} and {hidden_size}"
            )
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))  # W_ih (H, D)
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))  # W_hh (H, H)
        self.bias_ih = nn.Parameter(torch.empty(hidden_size)) if bias else None
        self.bias_hh = nn.Parameter(torch.empty(hidden_size)) if bias else None
        bound = 1.0 / math.sqrt(hidden_size)  # torch.nn.RNN's initialisation
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def step(self, x_t: Tensor, h: Tensor) -> Tensor:
        """One update: x_t (B, D), h_{t-1} (B, H) -> h_t (B, H)."""
        pre = x_t @ self.weight_ih.T + h @ self.weight_hh.T  # (B, H)
        if self.bias_ih is not None:
            pre = pre + self.bias_ih + self.bias_hh
        return torch.tanh(pre)

    def forward(self, x: Tensor, h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, D), h0 (B, H) or None (zeros) -> (states (B, T, H), last state h_T (B, H)).

        The loop over t cannot be parallelised: step t needs h_{t-1}.
        """
        check_tensor(x, "x", ndim=3)
        check_last_dim(x, "x", self.input_size, what="input_size")
        check_nonempty(x, "x", axis=1)
        B, T, _ = x.shape
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0
        check_tensor(h, "h0", ndim=2)
        if tuple(h.shape) != (B, self.hidden_size):
            raise ValueError(
                f"h0 must have shape (B, hidden_size) = {(B, self.hidden_size)}, got {tuple(h.shape)}"
            )
        states = []
        for t in range(T):  # sequential: T steps, each waiting for the one before
            h = self.step(x[:, t], h)
            states.append(h)
        return torch.stack(states, dim=1), h  # (B, T, H), (B, H)


def step_jacobian(h_t: Tensor, weight_hh: Tensor) -> Tensor:
    """d h_t / d h_{t-1} = diag(1 - h_t^2) W_hh for one sequence: h_t (H,) -> (H, H)."""
    return (1 - h_t**2)[:, None] * weight_hh


def jacobian_through_time(states: Tensor, weight_hh: Tensor, k: int) -> Tensor:
    """d h_{T-1} / d h_{T-1-k} for one sequence, the product of k step Jacobians.

    states (T, H): h_0 .. h_{T-1}; 0 <= k <= T (k = 0 gives the identity, k = T reaches
    back to the initial state before h_0).
    Returns (H, H) = J_{T-1} J_{T-2} ... J_{T-k}, with J_t = diag(1 - h_t^2) W_hh.
    """
    check_tensor(states, "states", ndim=2)
    T, H = states.shape
    if not 0 <= k <= T:
        raise ValueError(f"k must be between 0 and T={T}, got {k}")
    out = torch.eye(H, dtype=states.dtype, device=states.device)
    for t in range(T - 1, T - 1 - k, -1):  # latest step on the left
        out = out @ step_jacobian(states[t], weight_hh)
    return out


def gradient_norm_vs_distance(rnn: TanhRNN, x: Tensor, direction: Tensor | None = None) -> Tensor:
    """Backpropagate a loss read at the last step, L = u . h_{T-1}, to every earlier state.

    x (B, T, D); direction u (H,), default a fixed unit vector.
    Returns (B, T): entry [b, k] is || dL / d h_{T-1-k} || for sequence b, i.e. the gradient
    norm at distance k from where the loss is read (k = 0 gives ||u|| = 1).
    """
    check_tensor(x, "x", ndim=3)
    B, T, _ = x.shape
    H = rnn.hidden_size
    u = x.new_ones(H) / math.sqrt(H) if direction is None else direction
    with torch.enable_grad():
        h = x.new_zeros(B, H).requires_grad_()  # so the graph exists even for frozen weights
        states = []
        for t in range(T):
            h = rnn.step(x[:, t], h)
            states.append(h)
        loss = (states[-1] @ u).sum()  # the B sequences are independent: one backward serves all
        grads = torch.autograd.grad(loss, states)  # parameters' .grad stay untouched
    norms = torch.stack([g.norm(dim=-1) for g in grads], dim=1)  # (B, T), index t
    return norms.flip(1)  # index k = T-1-t
