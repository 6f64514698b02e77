import pytest
import torch

from course_lib.rnn import TanhRNN, gradient_norm_vs_distance, jacobian_through_time, step_jacobian

D = torch.float64


def _pair(gen, d_in, d_h, bias=True):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    ours = TanhRNN(d_in, d_h, bias=bias).double()
    theirs = torch.nn.RNN(d_in, d_h, nonlinearity="tanh", batch_first=True, bias=bias).double()
    with torch.no_grad():
        theirs.weight_ih_l0.copy_(ours.weight_ih)
        theirs.weight_hh_l0.copy_(ours.weight_hh)
        if bias:
            theirs.bias_ih_l0.copy_(ours.bias_ih)
            theirs.bias_hh_l0.copy_(ours.bias_hh)
    return ours, theirs


@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch_rnn(gen, bias):
    ours, theirs = _pair(gen, 5, 7, bias)
    x = torch.randn(3, 11, 5, generator=gen, dtype=D)
    h0 = torch.randn(3, 7, generator=gen, dtype=D)
    states, h_last = ours(x, h0)
    ref_states, ref_h = theirs(x, h0[None])
    assert states.shape == (3, 11, 7) and h_last.shape == (3, 7)
    assert (states - ref_states).abs().max() < 1e-12
    assert (h_last - ref_h[0]).abs().max() < 1e-12


def test_gradients_match_torch_rnn(gen):
    ours, theirs = _pair(gen, 4, 6)
    x = torch.randn(2, 9, 4, generator=gen, dtype=D)
    ours(x)[0].pow(2).sum().backward()
    theirs(x)[0].pow(2).sum().backward()
    assert torch.allclose(ours.weight_hh.grad, theirs.weight_hh_l0.grad, atol=1e-12)
    assert torch.allclose(ours.weight_ih.grad, theirs.weight_ih_l0.grad, atol=1e-12)


def test_jacobian_through_time_matches_autograd(gen):
    rnn, _ = _pair(gen, 3, 5)
    x = torch.randn(1, 8, 3, generator=gen, dtype=D)
    states = rnn(x)[0][0].detach()  # (T, H)
    T = states.size(0)
    k = int(torch.randint(1, T, (1,), generator=gen))

    def last_from(h_start):  # run the remaining k steps from h_{T-1-k}
        h = h_start[None]
        for t in range(T - k, T):
            h = rnn.step(x[:, t], h)
        return h[0]

    ref = torch.autograd.functional.jacobian(last_from, states[T - 1 - k])
    assert torch.allclose(jacobian_through_time(states, rnn.weight_hh.detach(), k), ref, atol=1e-12)
    assert torch.equal(jacobian_through_time(states, rnn.weight_hh, 0), torch.eye(5, dtype=D))
    one = step_jacobian(states[-1], rnn.weight_hh.detach())
    assert torch.allclose(one, jacobian_through_time(states, rnn.weight_hh.detach(), 1))


def test_gradient_norm_vs_distance(gen):
    rnn, _ = _pair(gen, 4, 6)
    x = torch.randn(2, 10, 4, generator=gen, dtype=D)
    norms = gradient_norm_vs_distance(rnn, x)
    assert norms.shape == (2, 10)
    assert torch.allclose(norms[:, 0], torch.ones(2, dtype=D))
    # entry k equals || u^T J || with the explicit Jacobian product
    states = rnn(x)[0].detach()
    u = torch.ones(6, dtype=D) / 6**0.5
    for b in range(2):
        for k in (1, 4, 9):
            J = jacobian_through_time(states[b], rnn.weight_hh.detach(), k)
            assert abs(norms[b, k] - (u @ J).norm()) < 1e-12
    assert rnn.weight_hh.grad is None  # the measurement leaves the parameters' gradients alone


def test_small_weights_vanish_large_weights_explode(gen):
    torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
    x = torch.randn(4, 40, 16, generator=gen, dtype=D)
    ends = {}
    for gain in (0.5, 4.0):
        rnn = TanhRNN(16, 32).double()
        with torch.no_grad():
            rnn.weight_hh.copy_(torch.randn(32, 32, generator=gen, dtype=D) * gain / 32**0.5)
        ends[gain] = gradient_norm_vs_distance(rnn, x)[:, -1].log().mean().exp()
    assert ends[0.5] < 1e-6
    # large weights: the gradient grows with distance, until tanh's saturation caps it (by how much
    # depends on the draw: 18x to more than 1000x was seen at distance 39)
    assert ends[4.0] > 1.0 and ends[4.0] / ends[0.5] > 1e6


def test_bad_input_gives_clear_errors():
    rnn = TanhRNN(3, 4)
    with pytest.raises(ValueError, match="input_size=3"):
        rnn(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="3 dimensions"):
        rnn(torch.randn(5, 3))
    with pytest.raises(ValueError, match="empty sequence"):
        rnn(torch.randn(2, 0, 3))
    with pytest.raises(ValueError, match="h0 must have shape"):
        rnn(torch.randn(2, 5, 3), torch.zeros(3, 4))
    with pytest.raises(ValueError, match="positive"):
        TanhRNN(0, 4)
