import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F

from course_lib.norms import NORMS, norm_sets, normalise_within_sets, plot_norm_axes

D = torch.float64


@pytest.fixture
def x(gen):
    return 3 * torch.randn(4, 5, 12, generator=gen, dtype=D) + 1


def test_layer_norm_sets_match_torch(x):
    y = normalise_within_sets(x, norm_sets("LayerNorm", *x.shape))
    assert (y - F.layer_norm(x, (12,))).abs().max() < 1e-12


def test_batch_norm_sets_match_torch(x):
    bn = torch.nn.BatchNorm1d(12, affine=False).double().train()
    ref = bn(x.transpose(1, 2)).transpose(1, 2)  # torch wants (B, d, T)
    y = normalise_within_sets(x, norm_sets("BatchNorm", *x.shape))
    assert (y - ref).abs().max() < 1e-12


@pytest.mark.parametrize("groups", [1, 3, 4])
def test_group_norm_sets_match_torch(x, groups):
    gn = torch.nn.GroupNorm(groups, 12, affine=False).double()
    ref = gn(x.transpose(1, 2)).transpose(1, 2)
    y = normalise_within_sets(x, norm_sets("GroupNorm", *x.shape, groups=groups))
    assert (y - ref).abs().max() < 1e-12


def test_set_counts():
    B, T, d = 3, 4, 8
    assert norm_sets("BatchNorm", B, T, d).unique().numel() == d
    assert norm_sets("LayerNorm", B, T, d).unique().numel() == B * T
    assert norm_sets("GroupNorm", B, T, d, groups=2).unique().numel() == B * 2


def test_bad_input():
    with pytest.raises(ValueError, match="kind must be one of"):
        norm_sets("InstanceNorm", 2, 2, 2)
    with pytest.raises(ValueError, match="divisible"):
        norm_sets("GroupNorm", 2, 3, 5, groups=2)
    with pytest.raises(ValueError, match="shape of x"):
        normalise_within_sets(torch.randn(2, 3), torch.zeros(3, 2, dtype=torch.long))


def test_plot_has_three_labelled_panels():
    fig = plot_norm_axes()
    axes = fig.axes
    assert len(axes) == 3
    for ax, kind in zip(axes, NORMS):
        assert kind in ax.get_title() and ax.get_xlabel()
    matplotlib.pyplot.close(fig)
