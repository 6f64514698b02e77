import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    """For modules of tiny models: one torch thread is fastest, and robust on a busy shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def gen():
    """A fresh, OS-seeded generator: every run tests on new random inputs."""
    g = torch.Generator()
    g.seed()
    return g


def copy_mha_to_torch(ours, theirs):
    """Copy course_lib MultiHeadAttention weights into an nn.MultiheadAttention."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([ours.w_q.weight, ours.w_k.weight, ours.w_v.weight]))
        theirs.in_proj_bias.copy_(torch.cat([ours.w_q.bias, ours.w_k.bias, ours.w_v.bias]))
        theirs.out_proj.weight.copy_(ours.w_o.weight)
        theirs.out_proj.bias.copy_(ours.w_o.bias)
