"""svg (SVG-LP): the per-step KL against its closed form and a Monte Carlo estimate, the learned
prior (its parameters come from the prior LSTM and it is trained), seeded sampling, and best-of-N
evaluation."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from rnnimg import create_model
from rnnimg.errors import RnnImgError
from rnnimg.metrics import sample_statistics
from rnnimg.models.predict.svg import derived_seeds


def _model(**overrides):
    torch.manual_seed(0)
    return create_model("svg", "debug", **overrides)


def _clips(n=3, t=6, seed=0):
    return torch.rand(n, t, 1, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_kl_is_the_closed_form_and_a_monte_carlo_estimate():
    model = _model().train()
    with torch.no_grad():
        out = model.posterior_rollout(_clips(), generator=torch.Generator().manual_seed(1))
    q = Normal(out["mu_q"], (0.5 * out["logvar_q"]).exp())
    p = Normal(out["mu_p"], (0.5 * out["logvar_p"]).exp())
    closed = kl_divergence(q, p).sum(-1)  # (B, T-1): torch's formula, not the model's
    torch.testing.assert_close(out["kl"], closed, rtol=1e-5, atol=1e-6)
    assert (closed > 1e-3).all()  # an untrained prior differs from the posterior: a real test
    z = q.sample((20_000,))  # (S, B, T-1, z)
    monte_carlo = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)
    torch.testing.assert_close(monte_carlo, closed, rtol=0.05, atol=0.02)
    # the loss adds beta * the mean per-step KL
    torch.manual_seed(3)
    loss = model.loss({"frames": _clips()})
    assert loss.metrics["aux"] == pytest.approx(model.config.beta * loss.metrics["kl"].item(), rel=1e-6)


def test_prior_parameters_come_from_the_prior_lstm_over_past_frames_only():
    model = _model().eval()
    frames = _clips(2, 5)
    with torch.no_grad():
        out = model.posterior_rollout(frames, generator=torch.Generator().manual_seed(0))
        # run the prior LSTM by hand over Enc(x_0..x_{t-1})
        h, _ = model.encoder(frames.flatten(0, 1))
        h = h.view(2, 5, -1)
        state = model.prior.init_state(2, h)
        for s in range(1, 5):
            mu_p, logvar_p, state = model.prior(h[:, s - 1], state)
            torch.testing.assert_close(out["mu_p"][:, s - 1], mu_p)
            torch.testing.assert_close(out["logvar_p"][:, s - 1], logvar_p)
        # changing frame 3 changes the posterior at step 3 but not the prior before step 4
        changed = frames.clone()
        changed[:, 3] = 1 - changed[:, 3]
        other = model.posterior_rollout(changed, generator=torch.Generator().manual_seed(0))
    assert torch.equal(other["mu_p"][:, :3], out["mu_p"][:, :3])
    assert not torch.allclose(other["mu_p"][:, 3], out["mu_p"][:, 3])
    assert not torch.allclose(other["mu_q"][:, 2], out["mu_q"][:, 2])
    assert torch.equal(other["mu_q"][:, :2], out["mu_q"][:, :2])
    # and it is not the posterior's output
    assert not torch.allclose(out["mu_p"], out["mu_q"])


def test_the_kl_trains_the_prior():
    model = _model().train()
    torch.manual_seed(0)
    model.loss({"frames": _clips()}).loss.backward()
    grads = [p.grad for p in model.prior.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # only through the KL: with beta 0 the prior gets nothing
    model = _model(beta=0.0).train()
    model.loss({"frames": _clips()}).loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.prior.parameters())
    # a few steps on the KL alone pull the prior towards the posterior
    model = _model(beta=1.0).train()
    opt = torch.optim.Adam(model.prior.parameters(), lr=1e-2)
    frames = _clips()
    kls = []
    for _ in range(30):
        opt.zero_grad()
        torch.manual_seed(0)
        out = model.loss({"frames": frames})
        out.loss.backward()
        opt.step()
        kls.append(out.metrics["kl"].item())
    assert kls[-1] < 0.5 * kls[0]


def _trained_enough_to_use_z():
    """A debug model whose decoder depends on z (random weights give nearly equal samples)."""
    model = _model().eval()
    with torch.no_grad():
        for cell in model.predictor.cells:  # make the latent matter
            cell.weight_ih.mul_(4)
        model.predictor.embed.weight[:, -model.config.z_dim:].mul_(20)
    return model


def test_samples_are_reproducible_differ_across_seeds_and_n_samples_are_n_seeded_calls():
    model = _trained_enough_to_use_z()
    context = _clips(2, 3)

    def draw(seed, **kw):
        return model.predict(context, 4, generator=torch.Generator().manual_seed(seed), **kw)

    a, b = draw(5), draw(5)
    assert a.shape == (2, 4, 1, 16, 16) and torch.equal(a, b)
    assert (draw(6) - a).abs().max() > 1e-3
    many = draw(7, samples=5)
    assert many.shape == (2, 5, 4, 1, 16, 16)
    seeds = derived_seeds(torch.Generator().manual_seed(7), 5)
    assert len(set(seeds)) == 5
    for i, seed in enumerate(seeds):
        torch.testing.assert_close(many[:, i], draw(seed), rtol=0, atol=1e-5)
    assert (many[:, 0] - many[:, 1]).abs().max() > 1e-3  # the futures differ
    torch.testing.assert_close(draw(7, samples=5), many)
    with pytest.raises(RnnImgError, match="samples"):
        draw(0, samples=0)


def test_context_frames_condition_the_prediction():
    model = _trained_enough_to_use_z()
    context = _clips(2, 3)
    other = context.clone()
    other[:, -1] = 0
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a, b = model.predict(context, 2, generator=gen()), model.predict(other, 2, generator=gen())
    assert (a - b).abs().max() > 1e-3


def test_sample_statistics_best_mean_and_diversity():
    target = torch.zeros(2, 3, 1, 12, 12)
    futures = torch.zeros(2, 4, 3, 1, 12, 12)
    futures[:, 1] = 0.5  # sample 0 is exact, sample 1 is off by 0.5 everywhere, 2 and 3 by 0.1
    futures[:, 2:] = 0.1
    futures[1, 0] = 0.3  # clip 1's best sample is one of the 0.1 ones
    stats = sample_statistics(futures, target)
    per_pixel = torch.tensor([[0.0, 0.25, 0.01, 0.01], [0.09, 0.25, 0.01, 0.01]]) * 144  # (B, N)
    expected_mean = per_pixel.mean(1).sum()
    torch.testing.assert_close(stats["mse_per_step"], expected_mean.double().expand(3), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(stats["best_mse_per_step"], torch.tensor(0.01 * 144).double().expand(3),
                               rtol=1e-6, atol=1e-6)
    # diversity: mean over the 6 pairs of the squared distance summed over pixels
    values = torch.tensor([[0.0, 0.5, 0.1, 0.1], [0.3, 0.5, 0.1, 0.1]])
    pairs = [(i, j) for i in range(4) for j in range(i + 1, 4)]
    div = sum(sum((v[i] - v[j]) ** 2 for i, j in pairs) / 6 * 144 for v in values)
    torch.testing.assert_close(stats["diversity_per_step"], torch.tensor(float(div)).double().expand(3),
                               rtol=1e-5, atol=1e-6)
    assert stats["best_ssim_per_step"][0] >= stats["ssim_per_step"][0]
    assert stats["samples"].item() == 8


def test_evaluate_samples_for_svg_and_for_a_deterministic_model():
    model = _model().eval()
    batch = {"frames": _clips(3, 6)}
    torch.manual_seed(0)
    stats = model.evaluation_statistics(batch, samples=4)
    metrics = model.reduce_statistics(stats)
    assert metrics["samples"] == 4 and metrics["best_mse"] <= metrics["mse"] and metrics["diversity"] >= 0
    torch.manual_seed(0)
    again = model.reduce_statistics(model.evaluation_statistics(batch, samples=4))
    assert again == metrics
    convlstm = create_model("convlstm", "debug", context=3, horizon=3).eval()
    single = convlstm.reduce_statistics(convlstm.evaluation_statistics(batch))
    many = convlstm.reduce_statistics(convlstm.evaluation_statistics(batch, samples=5))
    assert many["samples"] == 1 and many["diversity"] == 0
    for key in ("mse", "psnr", "ssim"):
        assert many[key] == pytest.approx(single[key], rel=1e-5)
        assert many[f"best_{key}"] == pytest.approx(single[key], rel=1e-5)


def test_config_refuses_what_svg_cannot_do():
    with pytest.raises(RnnImgError, match="levels"):
        create_model("svg", "debug", frame_size=12)
    with pytest.raises(RnnImgError, match="sampling"):
        create_model("svg", "debug", sampling="scheduled")
    with pytest.raises(RnnImgError, match="no deterministic one-frame step"):
        _model().forward_step(torch.zeros(1, 1, 16, 16), None)


def test_adversarial_option_trains_both_sides():
    model = _model(adv_weight=0.01).train()
    batch = {"frames": _clips()}
    out = model.loss(batch)
    assert "adversarial" in out.metrics
    out.loss.backward()
    assert all(p.grad is not None for p in model.discriminator_parameters())
    model.zero_grad()
    d = model.discriminator_loss(batch)
    d.loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoder.parameters())
    assert any(p.grad.abs().sum() > 0 for p in model.discriminator_parameters())
    assert create_model("svg", "debug").discriminator_parameters() == []


def test_cli_train_predict_futures_and_evaluate_samples(tmp_path, capsys):
    import json

    import numpy as np
    from PIL import Image

    from rnnimg.cli import main

    run = tmp_path / "svg"
    assert main(["train", "svg", "--data", "stochastic-moving-mnist", "--preset", "debug", "--max-steps", "2",
                 "--accelerator", "cpu", "--out", str(run), "--no-progress", "--batch-size", "2",
                 "--data-opt", "val_clips=4", "--data-opt", "frame_size=16"]) == 0
    clip = np.random.default_rng(0).integers(0, 256, (8, 16, 16), dtype=np.uint8)
    np.save(tmp_path / "clip.npy", clip)
    out = tmp_path / "futures.gif"
    assert main(["predict", str(run), str(tmp_path / "clip.npy"), "-n", "4", "-o", str(out)]) == 0
    one = tmp_path / "one.gif"
    assert main(["predict", str(run), str(tmp_path / "clip.npy"), "-o", str(one)]) == 0
    with Image.open(out) as gif, Image.open(one) as single:
        assert gif.n_frames == single.n_frames == 3 + 3  # context, then the horizon
        # truth + four futures side by side: about 2.5x as wide as truth beside one future
        assert 2.3 < gif.width / single.width < 2.7
    with Image.open(out.with_suffix(".png")) as strip, Image.open(one.with_suffix(".png")) as single:
        assert strip.height > 2 * single.height  # a row per future under the truth
    capsys.readouterr()
    assert main(["evaluate", str(run), "--samples", "3", "--max-batches", "1", "--batch-size", "4",
                 "--data-opt", "test_clips=4", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert metrics["samples"] == 3 and metrics["best_mse"] <= metrics["mse"] + 1e-9
    assert {"best_ssim", "best_psnr", "diversity", "ssim_per_step"} <= set(metrics)


def test_a_deterministic_model_refuses_several_futures(tmp_path, capsys):
    import numpy as np

    from rnnimg.cli import main

    run = tmp_path / "convlstm"
    create_model("convlstm", "debug").save_pretrained(run)
    np.save(tmp_path / "clip.npy", np.zeros((8, 16, 16), np.uint8))
    code = main(["predict", str(run), str(tmp_path / "clip.npy"), "-n", "2", "-o", str(tmp_path / "x.gif")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "deterministic" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x.gif").exists()


def test_web_predict_draws_the_futures_count(tmp_path):
    import numpy as np
    from PIL import Image

    from rnnimg.serve import core

    svg = core.ServedModel("svg", _model().eval())
    clip = _clips(1, 6)[0]  # (T, C, H, W)
    one, strip_one = core.predict(svg, clip, tmp_path, horizon=3)
    three, strip_three = core.predict(svg, clip, tmp_path, horizon=3, futures=3)
    with Image.open(one) as a, Image.open(three) as b:
        assert a.n_frames == b.n_frames == 3 + 3 and b.width > 1.5 * a.width
    assert strip_three.shape[0] > strip_one.shape[0] and strip_three.dtype == np.uint8
    convlstm = core.ServedModel("convlstm", create_model("convlstm", "debug").eval())
    with pytest.raises(RnnImgError, match="deterministic"):
        core.predict(convlstm, clip, tmp_path, horizon=3, futures=2)
    with pytest.raises(RnnImgError, match="futures"):
        core.predict(svg, clip, tmp_path, horizon=3, futures=9)
