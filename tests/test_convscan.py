"""convscan: the scan over time equals the frame-by-frame step (values and gradients, float64),
closed-loop prediction equals a hand-written rollout of ``step`` at any horizon, and the training
mix of teacher forcing and a closed-loop tail reads what it says. The behaviour every frame
predictor shares is in test_video_models.py."""

from __future__ import annotations

import pytest
import torch

from rnnimg import create_model
from rnnimg.errors import RnnImgError
from rnnimg.nn import ConvScanCell


def _model(**overrides):
    torch.manual_seed(0)
    return create_model("convscan", "debug", **overrides)


def _stepped(model, inputs):
    """forward_step over every frame of inputs (B, T, C, H, W) from the zero state."""
    state, out = model.init_state(inputs.shape[0]), []
    for t in range(inputs.shape[1]):
        prediction, state, _ = model.forward_step(inputs[:, t], state)
        out.append(prediction)
    return torch.stack(out, 1), state


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
@pytest.mark.parametrize("scan_method", ["sequential", "doubling"])
def test_cell_scan_equals_steps_from_a_given_state(cell, scan_method):
    torch.manual_seed(0)
    layer = ConvScanCell(3, 5, 3, cell=cell, scan_method=scan_method).double()
    x = torch.randn(2, 9, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    h0 = torch.randn(2, 5, 6, 6, dtype=torch.float64)  # a public minGRU port failed this case
    y, h = layer(x, h0)
    ys, hs, state = [], [], h0
    for t in range(9):
        out, state = layer.step(x[:, t], state)
        ys.append(out)
        hs.append(state)
    torch.testing.assert_close(y, torch.stack(ys, 1), rtol=0, atol=1e-12)
    torch.testing.assert_close(h, torch.stack(hs, 1), rtol=0, atol=1e-12)
    w = torch.randn_like(y)
    grads = torch.autograd.grad((y * w).sum(), [x, *layer.parameters()])
    grads_steps = torch.autograd.grad((torch.stack(ys, 1) * w).sum(), [x, *layer.parameters()])
    for a, b in zip(grads, grads_steps):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)


@pytest.mark.parametrize("overrides", [{}, {"cell": "minlstm", "num_layers": 3}, {"tbptt": 3},
                                       {"output": "linear", "scan_method": "doubling"}])
def test_teacher_forced_scan_equals_step_frame_by_frame(overrides):
    """Done-when of issue 18: the parallel forward equals step applied frame by frame, 1e-5 in
    float64, under teacher forcing; and so do the gradients of every parameter."""
    model = _model(closed_loop=0, **overrides).double().train()
    frames = torch.rand(3, 11, 1, 16, 16, dtype=torch.float64)
    truth = torch.ones(3, 10, dtype=torch.bool)
    assert model.rollout_prefix(frames, truth)[0] == 10  # all ten steps in the scan
    assert model.truth_mask(3, 11, 0).all()  # closed_loop=0: the loss reads the truth throughout
    parallel, _ = model.rollout(frames, truth)
    stepped, _ = _stepped(model, frames[:, :-1])
    torch.testing.assert_close(parallel, stepped, rtol=0, atol=1e-5)
    assert (parallel - stepped).abs().max() < 1e-10  # in fact exact up to rounding
    if not overrides.get("tbptt"):  # tbptt's scan detaches where the loop does not
        w = torch.randn_like(parallel)
        g_par = torch.autograd.grad((parallel * w).sum(), list(model.parameters()))
        g_seq = torch.autograd.grad((stepped * w).sum(), list(model.parameters()))
        for a, b in zip(g_par, g_seq):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("horizon", [1, 4, 23])
@pytest.mark.parametrize("graph", ["auto", False])
def test_closed_loop_predict_equals_a_hand_written_rollout_of_step(horizon, graph):
    """Done-when of issue 18: predict of any horizon (past the trained 4; context 6 here) is the
    context fed to step, then each returned frame fed back."""
    model = _model(context=6).eval()
    context = torch.rand(2, 6, 1, 16, 16)
    predicted = model.predict(context, horizon, graph=graph)
    with torch.no_grad():
        state = model.init_state(2)
        for t in range(6):
            frame, state = model.step(context[:, t], state)
        rolled = [frame]
        for _ in range(horizon - 1):
            frame, state = model.step(frame, state)
            rolled.append(frame)
    torch.testing.assert_close(predicted, torch.stack(rolled, 1), rtol=0, atol=1e-6)
    with torch.no_grad():  # evaluation's path: one scan over the context, then the loop
        frames = torch.cat([context, predicted], 1)
        validated = model.rollout(frames)[0][:, 5:]
    torch.testing.assert_close(validated, predicted, rtol=0, atol=1e-5)


@pytest.mark.parametrize("closed_loop", [0, 2, 5])
def test_closed_loop_tail_reads_own_predictions_in_the_last_steps(closed_loop):
    """Training clips of 10 frames, context 4: the last ``closed_loop`` steps (never inside the
    context) read the model's previous prediction, the others the truth; the same numbers as a
    hand-written loop of forward_step."""
    model = _model(closed_loop=closed_loop).double().train()
    frames = torch.rand(2, 10, 1, 16, 16, dtype=torch.float64)
    mask = model.truth_mask(2, 10, 0)
    first_own = max(4, 9 - closed_loop)
    if first_own <= 4:
        assert mask is None  # as predict(): own predictions from the end of the context on
    else:
        assert mask[:, :first_own].all() and not mask[:, first_own:].any()
    got = model(frames)
    state, prev, want = model.init_state(2), None, []
    for s in range(9):
        x = frames[:, s] if s < first_own else prev
        prev, state, _ = model.forward_step(x, state)
        want.append(prev)
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=0, atol=1e-10)
    # the tail's predictions depend on the model's own earlier outputs, not on the true frames
    # they replace: changing frame first_own+1.. leaves every prediction unchanged
    changed = frames.clone()
    changed[:, first_own:] = torch.rand_like(changed[:, first_own:])
    torch.testing.assert_close(model(changed), got, rtol=0, atol=0)


def test_scheduled_sampling_scans_up_to_the_first_own_prediction():
    model = _model(sampling="scheduled").double().train()
    frames = torch.rand(2, 8, 1, 16, 16, dtype=torch.float64)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 5] = False  # clip 1 reads its own prediction at step 5
    assert model.rollout_prefix(frames, mask)[0] == 5
    got, _ = model.rollout(frames, mask)
    state, prev, want = model.init_state(2), None, []
    for s in range(7):
        x = torch.where(mask[:, s].view(2, 1, 1, 1), frames[:, s], prev) if s else frames[:, 0]
        prev, state, _ = model.forward_step(x, state)
        want.append(prev)
    torch.testing.assert_close(got, torch.stack(want, 1), rtol=0, atol=1e-10)


def test_state_is_constant_size_and_float32_under_bf16():
    model = _model()
    state = model.init_state(3)
    assert [tuple(h.shape) for h in state] == [(3, 16, 8, 8)] * 2
    frames = torch.rand(2, 8, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.loss({"frames": frames})
        _, state = model.step(frames[:, 0], model.init_state(2))
    assert torch.isfinite(out.loss) and all(h.dtype == torch.float32 for h in state)
    reference = model.loss({"frames": frames}).loss
    assert abs(out.loss.item() - reference.item()) < 0.02 * reference.item()


def test_config_errors_name_the_field():
    for field, bad in [("cell", "lstm"), ("scan_method", "log"), ("closed_loop", -1), ("hidden_size", 0)]:
        with pytest.raises(RnnImgError, match=field if field != "scan_method" else "log"):
            create_model("convscan", "debug", **{field: bad})


def test_evaluate_scores_any_horizon_and_prints_the_curve(tmp_path, capsys):
    """Issue 18 item 2: `--eval-opt horizon=N` scores N predicted frames (the clips are loaded
    long enough without a --data-opt), the first frames' scores equal those of the trained
    horizon, and the CLI prints the per-horizon curve as a table (ranges past 20 frames)."""
    from rnnimg.cli import main
    from rnnimg.tasks.predict import horizon_bins
    from rnnimg.train import evaluate

    model = _model()
    model.save_pretrained(tmp_path, extra={"data": {"name": "moving-mnist",
                                                    "options": {"test_clips": 3, "frames": 8}}})
    short = evaluate(tmp_path, batch_size=3, progress=False)["metrics"]
    long = evaluate(tmp_path, batch_size=3, progress=False, options={"horizon": 30})
    assert long["data_options"]["frames"] == 34
    assert len(long["metrics"]["mse_per_step"]) == 30 and len(long["metrics"]["ssim_per_step"]) == 30
    assert long["metrics"]["mse_per_step"][:4] == pytest.approx(short["mse_per_step"], rel=1e-5)
    assert main(["evaluate", str(tmp_path), "--eval-opt", "horizon=30", "--batch-size", "3"]) == 0
    out = capsys.readouterr().out
    assert "per predicted frame (means over ranges)" in out and "mse_per_step" not in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert rows[0][0].startswith("1-") and rows[-1][0].endswith("-30") and len(rows) == 20
    first_range = int(rows[0][0].split("-")[1])
    assert float(rows[0][1]) == pytest.approx(
        sum(long["metrics"]["mse_per_step"][:first_range]) / first_range, rel=1e-3)
    bins = horizon_bins(90)
    assert bins[0][0] == 1 and bins[-1][1] == 90 and all(b[0] == a[1] + 1 for a, b in zip(bins, bins[1:]))
    assert horizon_bins(7) == [(i, i) for i in range(1, 8)]
    with pytest.raises(RnnImgError, match="horizon"):
        evaluate(tmp_path, batch_size=3, progress=False, options={"horizon": 0})


def test_moving_mnist_long_clips_continue_the_short_ones():
    """Issue 18 item 2: 10 -> 90 and 100 -> 400 need 100- and 500-frame clips; the fixed test
    clips of any length start with the frames of the standard 20-frame clips (same digits, same
    trajectories), so scores at different horizons are about the same clips."""
    from rnnimg.data import load_dataset

    short = load_dataset("moving-mnist", "test", frames=20, test_clips=3)
    for frames in (100, 500):
        long = load_dataset("moving-mnist", "test", frames=frames, test_clips=3)
        clip = long[2]["frames"]
        assert clip.shape == (frames, 1, 64, 64)
        torch.testing.assert_close(clip[:20], short[2]["frames"], rtol=0, atol=0)
        assert (clip.flatten(1).amax(1) > 0.5).all()  # the digits stay on the canvas, bouncing
