import math

import pytest
import torch
import torch.nn as nn
from torch.nn.utils import prune
from torch.utils.data import TensorDataset

from workbench import training
from workbench.training import Callback, lr_at, steps_per_epoch

SGD = dict(batch_size=16, lr=0.05, momentum=0.9, weight_decay=5e-4)


def _images(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


def _vectors(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 1, 40, generator=g), torch.randint(0, 10, (n,), generator=g))


def _conv_bn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, 10),
    )  # fmt: skip


def _mlp_dropout():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(40, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))


def _assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def _assert_same_optimizer_state(a: dict, b: dict):
    assert a["state"].keys() == b["state"].keys()
    for i in a["state"]:
        assert torch.equal(a["state"][i]["momentum_buffer"], b["state"][i]["momentum_buffer"])


class _Recorder(nn.Module):
    """A linear classifier that remembers the labels of every batch it sees (via the inputs' first feature)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(1, 3)
        self.seen: list[list[int]] = []

    def forward(self, x):
        self.seen.append(x[:, 0].long().tolist())
        return self.fc(x)


def _indexed(n):
    return TensorDataset(torch.arange(n, dtype=torch.float32)[:, None], torch.zeros(n, dtype=torch.long))


def test_lr_is_a_cosine_of_the_global_step():
    assert lr_at(0, 10, 0.1) == pytest.approx(0.1)
    assert lr_at(5, 10, 0.1) == pytest.approx(0.05)
    assert lr_at(10, 10, 0.1) == pytest.approx(0.0)
    assert lr_at(3, 10, 0.1) == pytest.approx(0.1 * (1 + math.cos(math.pi * 0.3)) / 2)
    with pytest.raises(ValueError, match="step must be in \\[0, 10\\], got 11"):
        lr_at(11, 10, 0.1)


def test_steps_per_epoch_keeps_the_last_partial_batch():
    assert steps_per_epoch(_indexed(100), 16) == 7
    assert steps_per_epoch(_indexed(96), 16) == 6
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        steps_per_epoch(_indexed(10), 0)


def test_data_order_is_a_seeded_permutation_per_epoch_and_resumes_mid_epoch():
    n, bs = 10, 4  # 3 steps per epoch: batches of 4, 4, 2
    full = _Recorder()
    training.train(full, _indexed(n), **{**SGD, "batch_size": bs}, total_steps=9, seed=3)
    assert [len(b) for b in full.seen] == [4, 4, 2] * 3
    epochs = [sum(full.seen[3 * e : 3 * e + 3], []) for e in range(3)]
    assert all(sorted(e) == list(range(n)) for e in epochs)  # each epoch sees every example once
    assert epochs[0] != epochs[1]  # a new permutation per epoch
    again = _Recorder()
    training.train(again, _indexed(n), **{**SGD, "batch_size": bs}, total_steps=9, seed=3)
    assert again.seen == full.seen
    other = _Recorder()
    training.train(other, _indexed(n), **{**SGD, "batch_size": bs}, total_steps=9, seed=4)
    assert other.seen != full.seen
    tail = _Recorder()
    training.train(tail, _indexed(n), **{**SGD, "batch_size": bs}, total_steps=9, seed=3, start_step=4, end_step=8)
    assert tail.seen == full.seen[4:8]  # starting at step 4 (mid-epoch) skips exactly the batches before it


@pytest.mark.parametrize(("build", "dataset"), [(_conv_bn, _images), (_mlp_dropout, _vectors)], ids=["bn", "dropout"])
def test_resuming_from_a_mid_epoch_checkpoint_is_bit_for_bit(tmp_path, build, dataset):
    data, total, k = dataset(), 20, 10  # 7 steps per epoch: step 10 is inside the second epoch
    assert k % steps_per_epoch(data, SGD["batch_size"]) != 0
    one = build()
    whole = training.train(one, data, **SGD, total_steps=total, seed=1, save_at={"k": k})

    first = build()
    part = training.train(first, data, **SGD, total_steps=total, seed=1, end_step=k, save_at={"k": k, "init": 0})
    assert part.step == k
    _assert_same_state(part.checkpoints["k"].model_state, whole.checkpoints["k"].model_state)
    _assert_same_state(part.checkpoints["init"].model_state, build().state_dict())
    training.save_checkpoint(tmp_path / "ckpt" / "k.pt", part.checkpoints["k"])
    saved = training.load_checkpoint(tmp_path / "ckpt" / "k.pt")
    assert (saved.name, saved.step) == ("k", k)

    resumed = build()
    torch.manual_seed(12345)  # whatever the global generator holds, the run must not depend on it
    resumed.load_state_dict(saved.model_state)
    rest = training.train(
        resumed, data, **SGD, total_steps=total, seed=1, start_step=k, optimizer_state=saved.optimizer_state
    )
    assert rest.step == whole.step == total
    _assert_same_state(resumed.state_dict(), one.state_dict())
    _assert_same_optimizer_state(rest.optimizer_state, whole.optimizer_state)
    assert not torch.equal(one.state_dict()["1.weight"], build().state_dict()["1.weight"])  # it did train


def test_dropout_depends_on_the_seed():
    a, b = _mlp_dropout(), _mlp_dropout()
    training.train(a, _vectors(), **SGD, total_steps=5, seed=0)
    training.train(b, _vectors(), **SGD, total_steps=5, seed=1)
    assert not torch.equal(a[1].weight, b[1].weight)


def test_checkpoints_at_start_and_end_and_bad_steps_are_refused():
    model = _conv_bn()
    state = training.train(
        model, _images(), **SGD, total_steps=20, seed=0, start_step=0, end_step=5, save_at={"a": 0, "b": 5}
    )
    assert state.checkpoints["a"].step == 0 and state.checkpoints["b"].step == 5
    _assert_same_state(state.checkpoints["b"].model_state, model.state_dict())
    assert state.checkpoints["a"].optimizer_state["state"] == {}  # no momentum before the first step
    with pytest.raises(ValueError, match="save_at\\['late'\\] = 6 is outside this call's steps \\[0, 5\\]"):
        training.train(_conv_bn(), _images(), **SGD, total_steps=20, seed=0, end_step=5, save_at={"late": 6})
    with pytest.raises(ValueError, match="need 0 <= start_step <= end_step <= total_steps"):
        training.train(_conv_bn(), _images(), **SGD, total_steps=20, seed=0, start_step=6, end_step=5)
    with pytest.raises(ValueError, match="end_step=21, total_steps=20"):
        training.train(_conv_bn(), _images(), **SGD, total_steps=20, seed=0, end_step=21)


def test_callbacks_run_in_order_and_the_returned_loss_is_minimised():
    events = []

    class Log(Callback):
        def __init__(self, tag):
            self.tag = tag

        def on_loss(self, step, model, loss):
            events.append((step, self.tag, "loss"))
            return loss

        def after_backward(self, step, model):
            assert all(p.grad is not None for p in model.parameters())
            events.append((step, self.tag, "backward"))

        def after_step(self, step, model):
            events.append((step, self.tag, "step"))

    training.train(_conv_bn(), _images(), **SGD, total_steps=10, seed=0, start_step=2, end_step=4,
                   callbacks=[Log("a"), Log("b")])  # fmt: skip
    per_step = [("a", "loss"), ("b", "loss"), ("a", "backward"), ("b", "backward"), ("a", "step"), ("b", "step")]
    assert events == [(s, t, e) for s in (2, 3) for t, e in per_step]

    class Nothing(Callback):
        def on_loss(self, step, model, loss):
            return loss * 0.0

    model = _mlp_dropout()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    training.train(model, _vectors(), **{**SGD, "weight_decay": 0.0}, total_steps=5, seed=0, callbacks=[Nothing()])
    _assert_same_state(model.state_dict(), before)  # a zero loss moves nothing: the callback's loss is used


def test_pruning_masks_stay_applied_and_can_tighten_during_training():
    model = _conv_bn()
    convs = [model[0], model[3]]
    for m in convs:
        prune.l1_unstructured(m, "weight", amount=0.5)
    start = {id(m): m.weight_orig.detach().clone() for m in convs}

    class Check(Callback):
        def after_step(self, step, model):
            if step == 4:  # tighten on a schedule: the mask only shrinks, the parameters stay the same
                for m in convs:
                    prune.l1_unstructured(m, "weight", amount=0.5)
            for m in convs:
                effective = m.weight_orig * m.weight_mask
                assert torch.all(effective[m.weight_mask == 0] == 0)
                assert torch.all(m.weight[m.weight_mask == 0] == 0)  # the weight the last forward used

    training.train(model, _images(), **SGD, total_steps=10, seed=0, callbacks=[Check()])
    model.eval()
    model(_images()[:4][0])  # the pre-hook recomputes the effective weight
    for m in convs:
        assert m.weight_mask.mean().item() == pytest.approx(0.25, abs=0.02)
        assert torch.all(m.weight[m.weight_mask == 0] == 0)
        kept = m.weight_mask.bool()
        assert not torch.equal(m.weight_orig[kept], start[id(m)][kept])  # the kept weights trained


def test_a_mismatched_optimizer_state_is_refused():
    model = _conv_bn()
    state = training.train(model, _images(), **SGD, total_steps=10, seed=0, end_step=2)
    other = _mlp_dropout()
    with pytest.raises(ValueError, match="optimizer_state holds 8 parameters .* the model has 4 trainable"):
        training.train(other, _vectors(), **SGD, total_steps=10, seed=0, start_step=2,
                       optimizer_state=state.optimizer_state)  # fmt: skip
    state = training.train(other, _vectors(), **SGD, total_steps=10, seed=0, end_step=2)
    prune.random_unstructured(other[1], "weight", amount=0.5)  # moves weight after bias: the order changed
    with pytest.raises(ValueError, match="momentum buffer 0 has shape \\(32, 40\\), parameter 0 has \\(32,\\)"):
        training.train(other, _vectors(), **SGD, total_steps=10, seed=0, start_step=2,
                       optimizer_state=state.optimizer_state)  # fmt: skip


def test_save_checkpoint_is_atomic_and_round_trips(tmp_path, monkeypatch):
    model = _conv_bn()
    state = training.train(model, _images(), **SGD, total_steps=4, seed=0, save_at={"end": 4})
    path = tmp_path / "end.pt"
    training.save_checkpoint(path, state.checkpoints["end"])
    assert [p.name for p in tmp_path.iterdir()] == ["end.pt"]  # no temp file left behind
    loaded = training.load_checkpoint(path)
    _assert_same_state(loaded.model_state, model.state_dict())
    _assert_same_optimizer_state(loaded.optimizer_state, state.optimizer_state)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(training.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        training.save_checkpoint(path, training.Checkpoint("x", 0, {}, None))
    assert [p.name for p in tmp_path.iterdir()] == ["end.pt"]  # the old file survives whole, no temp file
    assert training.load_checkpoint(path).name == "end"


def test_progress_can_be_silenced_and_the_mode_is_restored(monkeypatch, capsys):
    monkeypatch.setenv("WORKBENCH_PROGRESS", "0")
    model = _mlp_dropout().eval()
    training.train(model, _vectors(), **SGD, total_steps=3, seed=0)
    assert not model.training
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
