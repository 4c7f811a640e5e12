"""DRAW / alignDRAW: the KL term (closed form, Monte Carlo, inside the model), canvases that add up,
seeds, label and text conditioning, a tiny overfit, the importance-weighted estimate against the
bound, and user errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from rnnimg import create_model, load_pretrained
from rnnimg.data import load_dataset
from rnnimg.data.mnist_captions import VOCABULARY
from rnnimg.errors import RnnImgError
from rnnimg.nn.gaussian import gaussian_kl, gaussian_log_density


def tiny(**overrides):
    torch.manual_seed(0)
    values = dict(image_size=12, steps=3, enc_hidden=16, dec_hidden=16, z_size=5, read_n=2,
                  write_n=3)
    values.update(overrides)
    return create_model("draw", "debug", **values)


def captioner(**overrides):
    return tiny(image_size=60, vocabulary=VOCABULARY, learned_prior=True, **overrides)


def test_kl_closed_form_matches_torch_and_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mu, log_sigma = torch.randn(3, 7, generator=gen, dtype=torch.float64), \
        0.3 * torch.randn(3, 7, generator=gen, dtype=torch.float64)
    zeros = torch.zeros_like(mu)
    ours = gaussian_kl(mu, log_sigma, zeros, zeros)
    # the formula of the issue: sum_z (mu^2 + sigma^2 - log sigma^2 - 1) / 2 (constant z_size / 2)
    by_hand = 0.5 * (mu ** 2 + (2 * log_sigma).exp() - 2 * log_sigma).sum(1) - 7 / 2
    torch.testing.assert_close(ours, by_hand)
    torch.testing.assert_close(ours, kl_divergence(Normal(mu, log_sigma.exp()), Normal(0, 1)).sum(1))
    # a learned prior (alignDRAW): KL between two diagonal Gaussians, checked by Monte Carlo
    mu_p, log_sigma_p = 0.5 * torch.randn(3, 7, generator=gen, dtype=torch.float64), \
        0.2 * torch.randn(3, 7, generator=gen, dtype=torch.float64)
    z = mu + log_sigma.exp() * torch.randn(200_000, 3, 7, generator=gen, dtype=torch.float64)
    mc = (gaussian_log_density(z, mu, log_sigma) - gaussian_log_density(z, mu_p, log_sigma_p)).mean(0)
    exact = gaussian_kl(mu, log_sigma, mu_p, log_sigma_p)
    assert torch.allclose(mc, exact, atol=0.03), (mc, exact)
    torch.testing.assert_close(gaussian_log_density(z[:2], mu, log_sigma),
                               Normal(mu, log_sigma.exp()).log_prob(z[:2]).sum(-1))


def test_model_kl_is_the_closed_form_per_step_with_z_size_not_steps():
    """Force the posterior to N(m, s^2) at every step: the model's KL must be T times the formula
    with the constant z_size / 2 (T = 3 != z_size = 5 catches the T/2 bug)."""
    model = tiny()
    m, log_s = 0.7, -0.4
    with torch.no_grad():
        model.posterior.weight.zero_()
        model.posterior.bias[:5] = m
        model.posterior.bias[5:] = log_s
    batch = model.example_batch(2, torch.Generator().manual_seed(0))
    out = model.run(batch["image"])
    per_step = 5 * 0.5 * (m ** 2 + math.exp(2 * log_s) - 2 * log_s - 1)
    torch.testing.assert_close(out["kl"], torch.full((2, 3), per_step))
    metrics = model.loss(batch).metrics
    torch.testing.assert_close(metrics["kl_nats"], torch.tensor(3 * per_step))
    torch.testing.assert_close(metrics["nll_bound_nats"], metrics["recon_nats"] + metrics["kl_nats"])


@pytest.mark.parametrize("attention", [True, False])
def test_step_canvases_add_up_to_the_final_canvas(attention):
    model = tiny(attention=attention).eval()
    images, steps = model.sample(4, generator=torch.Generator().manual_seed(0), return_steps=True)
    torch.testing.assert_close(steps["writes"].cumsum(0), steps["canvas_logits"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(steps["canvases"][-1], images)
    torch.testing.assert_close(torch.sigmoid(steps["canvas_logits"][-1]), images)
    assert steps["canvases"].shape == (3, 4, 1, 12, 12)
    assert ("write_boxes" in steps) == attention
    plain = model.sample(4, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(plain, images)  # return_steps does not change the draw


def test_reconstruction_matches_an_independent_computation_of_the_canvas():
    """The canvas of run() equals a re-implementation that calls the parts by hand."""
    model = tiny().eval()
    image = model.example_batch(2, torch.Generator().manual_seed(3))["image"]
    out = model.run(image, generator=torch.Generator().manual_seed(1))
    gen = torch.Generator().manual_seed(1)
    h_e = c_e = h_d = c_d = None
    canvas = torch.zeros(2, 1, 12, 12)
    h_e, c_e, h_d, c_d = (torch.zeros(2, 16) for _ in range(4))
    with torch.no_grad():
        for _ in range(3):
            r, _ = model.read(image, image - torch.sigmoid(canvas), h_d)
            h_e, c_e = model.encoder(torch.cat([r, h_d], 1), (h_e, c_e))
            mu, log_sigma = model.posterior(h_e).chunk(2, 1)
            z = mu + log_sigma.exp() * torch.randn(mu.shape, generator=gen)
            h_d, c_d = model.decoder(z, (h_d, c_d))
            canvas = canvas + model.write(h_d)[0]
        recon = torch.nn.functional.binary_cross_entropy(torch.sigmoid(canvas), image,
                                                         reduction="none").sum((1, 2, 3))
    torch.testing.assert_close(out["canvas"].detach(), canvas, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["recon"].detach(), recon, rtol=1e-4, atol=1e-3)


def test_samples_are_deterministic_under_a_seed_and_labels_change_them():
    model = tiny(num_classes=10).eval()
    a = model.sample(3, label=4, generator=torch.Generator().manual_seed(7))
    b = model.sample(3, label=4, generator=torch.Generator().manual_seed(7))
    c = model.sample(3, label=5, generator=torch.Generator().manual_seed(7))
    d = model.sample(3, label=4, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-4 and (a - d).abs().max() > 1e-4
    assert a.min() >= 0 and a.max() <= 1


def test_captions_change_the_samples_and_save_load_keeps_the_vocabulary(tmp_path):
    model = captioner().eval()
    with torch.no_grad():  # large random weights, so no dependency hides behind a small number
        for p in model.parameters():
            p.normal_(0, 0.3)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    a = model.sample(2, text="the digit 7 is at the top left", generator=gen())
    b = model.sample(2, text="The digit 3 is at the bottom right.", generator=gen())
    assert a.shape == (2, 1, 60, 60) and (a - b).abs().max() > 1e-4
    images, steps = model.sample(2, text=["a 3 is above a 5", "the digit 1 is in the centre"],
                                 generator=gen(), return_steps=True)
    align = steps["alignments"]  # (T, n, L): weights over real words only, summing to 1
    torch.testing.assert_close(align.sum(-1), torch.ones(3, 2))
    assert (align[:, 0, 6:] == 0).all() and (align[:, 1, 7:] == 0).all()
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path)
    assert loaded.config.vocabulary == VOCABULARY
    assert torch.equal(loaded.sample(2, text="the digit 7 is at the top left", generator=gen()), a)


def test_caption_model_trains_on_mnist_captions_batches():
    model = captioner().train()
    data = load_dataset("mnist-captions", "train", train_size=4, **model.dataset_options())
    model.check_dataset(data, "mnist-captions")
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    out = model.loss(batch)
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_tiny_overfit_drives_the_bound_down_and_iwae_never_exceeds_the_bound():
    torch.manual_seed(0)
    model = create_model("draw", "debug", image_size=12, steps=4, enc_hidden=32, dec_hidden=32,
                         z_size=4, write_n=4)
    data = load_dataset("mnist-5k", "train", image_size=12, binarize="fixed")
    batch = torch.utils.data.default_collate([data[i] for i in range(16)])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        out = model.loss(batch)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        first = first if first is not None else float(out.metrics["nll_bound_nats"])
    model.eval()
    stats = model.evaluation_statistics(batch, generator=torch.Generator().manual_seed(0))
    bound = float(stats["bound"]) / 16
    assert bound < 0.6 * first, (first, bound)
    for k in (1, 5, 20):
        stats = model.evaluation_statistics(batch, importance_samples=k,
                                            generator=torch.Generator().manual_seed(k))
        metrics = model.reduce_statistics(stats)
        assert metrics["nll_iwae_nats"] <= metrics["nll_bound_same_draws_nats"] + 1e-9
        if k == 1:  # one draw: the estimate is that draw's bound
            assert math.isclose(metrics["nll_iwae_nats"], metrics["nll_bound_same_draws_nats"],
                                rel_tol=1e-9)
        else:  # the estimate sits below the analytic-KL bound of the same draws too
            assert metrics["nll_iwae_nats"] < metrics["nll_bound_nats"]
        assert len(metrics["kl_nats_per_step"]) == 4
        torch.testing.assert_close(sum(metrics["kl_nats_per_step"]), metrics["kl_nats"])


class LatentTrace:
    """Records, at every step of the model's passes, the posterior's (mu, log sigma), the learned
    prior's raw output (alignDRAW) and z, the first z_size inputs of the decoder."""

    def __init__(self, model):
        self.posterior, self.prior, self.z = [], [], []
        z_size = model.config.z_size
        self.handles = [
            model.posterior.register_forward_hook(lambda m, i, out: self.posterior.append(out.detach())),
            model.decoder.register_forward_hook(lambda m, i, out: self.z.append(i[0][:, :z_size].detach()))]
        if model.prior is not None:
            self.handles.append(model.prior.register_forward_hook(
                lambda m, i, out: self.prior.append(out.detach())))

    def log_ratios(self, steps: int) -> list[torch.Tensor]:
        """Per pass, (B,) sum_t log p(z_t) - log q(z_t | x), by torch.distributions."""
        out = []
        for start in range(0, len(self.z), steps):
            total = 0
            for t in range(start, start + steps):
                mu, log_sigma = self.posterior[t].chunk(2, 1)
                if self.prior:  # alignDRAW's prior: tanh of a linear map of h_dec
                    mu_p, log_sigma_p = torch.tanh(self.prior[t]).chunk(2, 1)
                    prior = Normal(mu_p, log_sigma_p.exp())
                else:
                    prior = Normal(0.0, 1.0)
                z = self.z[t]
                total = total + prior.log_prob(z).sum(1) - Normal(mu, log_sigma.exp()).log_prob(z).sum(1)
            out.append(total)
        return out

    def remove(self):
        for h in self.handles:
            h.remove()


@pytest.mark.parametrize("learned_prior", [False, True])
def test_log_ratio_is_log_prior_minus_log_posterior_at_the_drawn_z(learned_prior):
    """run()'s log_ratio against log p(z) - log q(z | x) from torch.distributions, at the z the
    pass drew (mu + sigma * the generator's normals); a flipped sign or a swapped density fails."""
    model = tiny(learned_prior=learned_prior).eval()
    image = model.example_batch(3, torch.Generator().manual_seed(3))["image"]
    trace = LatentTrace(model)
    with torch.no_grad():
        out = model.run(image, generator=torch.Generator().manual_seed(1))
    trace.remove()
    gen = torch.Generator().manual_seed(1)
    for t in range(3):  # z is the reparametrized draw from q
        mu, log_sigma = trace.posterior[t].chunk(2, 1)
        torch.testing.assert_close(trace.z[t], mu + log_sigma.exp() * torch.randn(mu.shape, generator=gen))
    (expected,) = trace.log_ratios(3)
    assert expected.abs().min() > 0.1  # a sign flip would show
    torch.testing.assert_close(out["log_ratio"], expected, rtol=1e-5, atol=1e-4)


def test_importance_weighted_estimate_matches_an_independent_computation():
    """evaluation_statistics' iwae and same-draws bound from log w_k = log p(x | z_k) + log p(z_k)
    - log q(z_k | x), every density from torch.distributions, on the draws the model made."""
    from torch.distributions import Bernoulli

    model, k = tiny().eval(), 4
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    stats = model.evaluation_statistics(batch, importance_samples=k,
                                        generator=torch.Generator().manual_seed(2))
    trace = LatentTrace(model)
    gen = torch.Generator().manual_seed(2)
    with torch.no_grad():
        canvases = [model.run(batch["image"], generator=gen)["canvas"] for _ in range(k)]
    trace.remove()
    log_w = torch.stack([Bernoulli(logits=c).log_prob(batch["image"]).sum((1, 2, 3)) + ratio
                         for c, ratio in zip(canvases, trace.log_ratios(3))]).double()  # (K, B)
    iwae = -(torch.logsumexp(log_w, 0) - math.log(k))
    assert float(stats["iwae"]) == pytest.approx(float(iwae.sum()), rel=1e-5)
    assert float(stats["bound_sampled"]) == pytest.approx(float(-log_w.mean(0).sum()), rel=1e-5)


def test_statistics_add_up_across_batches():
    model = tiny().eval()
    batch = model.example_batch(4, torch.Generator().manual_seed(0))
    halves = [{k: v[i:i + 2] for k, v in batch.items()} for i in (0, 2)]
    s1, s2 = (model.evaluation_statistics(h, importance_samples=2,
                                          generator=torch.Generator().manual_seed(0)) for h in halves)
    total = {k: s1[k] + s2[k] for k in s1}
    assert float(total["count"]) == 4
    reduced = model.reduce_statistics(total)
    assert math.isclose(reduced["nll_bound_nats"], float(s1["bound"] + s2["bound"]) / 4)
    assert reduced["nll_bound_nats"] == pytest.approx(reduced["recon_nats"] + reduced["kl_nats"])


def test_categorical_output_on_grey_and_colour():
    for channels in (1, 3):
        model = tiny(channels=channels, output="categorical", levels=4)
        batch = model.example_batch(2, torch.Generator().manual_seed(0))
        out = model.loss(batch)
        out.loss.backward()
        images = model.eval().sample(2, generator=torch.Generator().manual_seed(0))
        assert images.shape == (2, channels, 12, 12) and images.min() >= 0 and images.max() <= 1
        # an untrained uniform canvas has reconstruction NLL = dims * log(levels) at step 0
        with torch.no_grad():
            flat = model.reconstruction_nll(torch.zeros(2, channels * 4, 12, 12), batch["image"])
        torch.testing.assert_close(flat, torch.full((2,), channels * 144 * math.log(4)))


def test_bad_input_is_one_line_errors():
    plain, labelled, text = tiny(), tiny(num_classes=3), captioner()
    cases = [
        (lambda: plain.sample(0), "n must be"),
        (lambda: plain.sample(2, text="the digit 1 is in the centre"), "without captions"),
        (lambda: labelled.sample(2, label=3), "outside 0..2"),
        (lambda: plain.sample(2, label=1), "without labels"),
        (lambda: text.sample(2), "pass"),
        (lambda: text.sample(2, text="   "), "empty"),
        (lambda: text.sample(2, text="the digit 7 is at the top leftish"), "knows only: 0 1 2"),
        (lambda: text.sample(2, text=["a 3 is above a 5"] * 3), "expected one caption or 2"),
        (lambda: plain.sample(2, temperature=0), "temperature"),
    ]
    for call, words in cases:
        with pytest.raises(RnnImgError, match=words) as err:
            call()
        assert "\n" not in str(err.value)
    batch = plain.example_batch(2)
    for options in (dict(importance_samples=-1), dict(importance_samples="3"), dict(judge="yes")):
        with pytest.raises(RnnImgError, match="importance_samples must be"):
            plain.evaluation_statistics(batch, **options)
    with pytest.raises(RnnImgError, match="'leftish'"):
        text.sample(1, text="the digit 7 is at the top leftish")


def test_check_dataset_refuses_data_that_cannot_feed_the_model():
    mnist = load_dataset("mnist-5k", "test", image_size=12, binarize="fixed")
    tiny().check_dataset(mnist, "mnist-5k")
    tiny(num_classes=10).check_dataset(mnist, "mnist-5k")
    with pytest.raises(RnnImgError, match="num_classes=10"):
        tiny(num_classes=5).check_dataset(mnist, "mnist-5k")
    with pytest.raises(RnnImgError, match="image_size"):
        tiny(image_size=28).check_dataset(mnist, "mnist-5k")
    with pytest.raises(RnnImgError, match="no captions"):
        captioner().check_dataset(load_dataset("mnist-5k", "test", image_size=60), "mnist-5k")
    with pytest.raises(RnnImgError, match="vocabulary differs"):
        tiny(image_size=60, vocabulary=("a", "b")).check_dataset(
            load_dataset("mnist-captions", "test", test_size=3), "mnist-captions")


def test_kl_warmup_weighs_only_the_training_objective():
    model = tiny(kl_warmup_steps=10).train()
    batch = model.example_batch(2, torch.Generator().manual_seed(0))
    dims = batch["image"][0].numel()
    for step, weight in ((0, 0.0), (5, 0.5), (10, 1.0), (50, 1.0)):
        model.set_training_step(step)
        torch.manual_seed(1)
        out = model.loss(batch)
        m = out.metrics
        assert float(m["kl_weight"]) == weight
        expected = (m["recon_nats"] + weight * m["kl_nats"]) / dims
        torch.testing.assert_close(out.loss.detach(), expected)
        torch.testing.assert_close(m["nll_bound_nats"], m["recon_nats"] + m["kl_nats"])
    model.set_training_step(0)
    model.eval()  # evaluation always scores the full bound
    torch.manual_seed(1)
    out = model.loss(batch)
    torch.testing.assert_close(out.loss, out.metrics["nll_bound_nats"] / dims)


def test_evaluate_of_a_stochastic_bound_is_reproducible_and_leaves_the_callers_rng(tmp_path):
    """DRAW's bound draws latents: evaluate seeds them (the same call gives the same numbers, as a
    card's stated score must) and restores the caller's RNG state."""
    from rnnimg.train import evaluate

    torch.manual_seed(0)
    model = create_model("draw", "debug")
    model.save_pretrained(tmp_path, extra={"data": {"name": "mnist-5k", "options": {}}})
    state = torch.get_rng_state()
    first = evaluate(tmp_path, max_batches=2, batch_size=16, progress=False)
    assert torch.equal(torch.get_rng_state(), state)
    again = evaluate(tmp_path, max_batches=2, batch_size=16, progress=False)
    other = evaluate(tmp_path, max_batches=2, batch_size=16, progress=False, seed=1)
    assert again["metrics"] == first["metrics"]
    assert other["metrics"]["nll_bound_nats"] != first["metrics"]["nll_bound_nats"]
