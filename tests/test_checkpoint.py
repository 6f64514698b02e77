import pickle
from pathlib import Path

import pytest
import torch

from course_lib.checkpoint import (
    DATES_CHECKPOINT,
    check_plain,
    checkpoint_info,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from course_lib.data import get_task
from course_lib.train import TrainConfig, Trainer, evaluate, model_for_task

SMALL = {"d_model": 16, "n_heads": 2, "layers": 1, "d_ff": 32}


def _trainer(dropout: float = 0.1) -> Trainer:
    model = model_for_task("reversal", **SMALL, dropout=dropout, seed=0)
    return Trainer(model, TrainConfig(task="reversal", batch_size=8, warmup=5, seed=3), "cpu")


def test_round_trip(tmp_path, gen):
    trainer = _trainer()
    trainer.run(3, progress=False)
    path = tmp_path / "ckpt.pt"
    trainer.save(path)
    model, src_v, tgt_v = load_model(path, "cpu")
    task = get_task("reversal")
    assert src_v == task.src_vocab and tgt_v == task.tgt_vocab
    assert model.cfg == trainer.model.cfg and not model.training
    for (k, a), b in zip(trainer.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k
    assert model.generator.weight is model.tgt_embed.weight  # weight tying survives the round trip
    src = torch.randint(3, len(src_v), (2, 16), generator=gen)
    tgt = torch.randint(3, len(tgt_v), (2, 5), generator=gen)
    trainer.model.eval()
    assert torch.equal(model(src, tgt), trainer.model(src, tgt))
    ckpt = load_checkpoint(path)
    assert ckpt["step"] == 3 and ckpt["extra"]["task"] == "reversal"
    assert set(ckpt) >= {"model", "optimizer", "scheduler", "rng", "model_config", "src_vocab", "tgt_vocab"}
    info = checkpoint_info(path)
    assert info["step"] == 3 and info["has_optimizer"]
    assert info["parameters"] == sum(p.numel() for p in model.parameters())


def test_resume_equals_uninterrupted(tmp_path):
    # dropout on: the RNG state must be restored too, not only weights and Adam's moments
    straight = _trainer()
    straight.run(10, progress=False)

    first = _trainer()
    first.run(4, progress=False)
    first.save(tmp_path / "half.pt")
    torch.manual_seed(12345)  # whatever happens in between must not matter
    torch.rand(100)
    resumed = Trainer.load(tmp_path / "half.pt", "cpu")
    assert resumed.step == 4
    resumed.run(6, progress=False)

    assert resumed.step == straight.step == 10
    assert resumed.history["loss"] == straight.history["loss"]
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), f"{k} differs after resuming"
    assert resumed.scheduler.get_last_lr() == straight.scheduler.get_last_lr()


def test_without_saved_rng_dropout_would_differ(tmp_path):
    # the test above can fail: skipping the RNG restore changes the result
    straight = _trainer()
    straight.run(6, progress=False)
    first = _trainer()
    first.run(3, progress=False)
    first.save(tmp_path / "half.pt")
    resumed = Trainer.load(tmp_path / "half.pt", "cpu")
    torch.manual_seed(999)  # a different dropout stream than the saved one
    resumed.run(3, progress=False)
    assert not torch.equal(straight.model.generator.weight, resumed.model.generator.weight)


class Payload:
    """Unpickling this would create a file: what malicious code could do instead."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_refuses_non_plain_pickles(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "course_lib.checkpoint/1", "model": Payload(marker)}, f, protocol=2)
    with pytest.raises(ValueError, match="refusing to load .*tensors and plain data"):
        load_checkpoint(path)
    assert not marker.exists()  # nothing ran
    with pytest.raises(ValueError, match="refusing to load"):
        load_model(path)
    torch.save({"config": TrainConfig()}, tmp_path / "dataclass.pt")
    with pytest.raises(ValueError, match=r"refusing to load .*TrainConfig"):
        load_checkpoint(tmp_path / "dataclass.pt")


def test_other_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a course_lib checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable|refusing"):
        load_checkpoint(tmp_path / "junk.pt")


def test_save_refuses_non_plain_data(tmp_path):
    model = model_for_task("reversal", **SMALL)
    task = get_task("reversal")
    with pytest.raises(ValueError, match=r"\['extra'\]\['cfg'\] is a .*TrainConfig"):
        save_checkpoint(
            tmp_path / "x.pt", model, task.src_vocab, task.tgt_vocab, extra={"cfg": TrainConfig()}
        )
    check_plain({"a": [1, 2.0, "x", None, (True, torch.zeros(2))]})


def test_shipped_checkpoint_scores_99_percent():
    assert DATES_CHECKPOINT.is_file(), (
        "assets/dates_model.pt is missing: see course_lib/train.py for the command"
    )
    assert DATES_CHECKPOINT.stat().st_size < 10e6
    model, src_v, tgt_v = load_model(device="cpu")
    task = get_task("dates")
    assert src_v == task.src_vocab and tgt_v == task.tgt_vocab
    result = evaluate(model, task, "test", n=400)
    assert result.exact_match >= 0.99, result.errors[:5]
    info = checkpoint_info()
    assert info["task"] == "dates" and info["metrics"]["heldout_exact_match"] >= 0.99


def test_model_only_checkpoint_warns_on_resume(tmp_path):
    trainer = _trainer(dropout=0.0)
    trainer.run(2, progress=False)
    trainer.save(tmp_path / "weights.pt", include_optimizer=False)
    assert not checkpoint_info(tmp_path / "weights.pt")["has_optimizer"]
    with pytest.warns(UserWarning, match="no optimiser state"):
        again = Trainer.load(tmp_path / "weights.pt", "cpu")
    assert again.step == 2
    assert torch.equal(again.model.generator.weight, trainer.model.generator.weight)


@pytest.mark.parametrize("share", [False, True])
def test_info_counts_a_shared_table_once(tmp_path, share):
    from course_lib.model import Transformer, TransformerConfig

    model = Transformer(TransformerConfig(13, 13, d_model=16, n_heads=2, d_ff=32, share_embeddings=share))
    vocab = get_task("reversal").src_vocab  # 13 ids
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, vocab, vocab)
    assert checkpoint_info(path)["parameters"] == sum(p.numel() for p in model.parameters())
