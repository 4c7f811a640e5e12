"""The translate task's models: ConvGRU cell parity, the translator's refinement loop, its
adversarial option, the dncnn baseline, and PSNR/SSIM against independent computations."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnimg import create_model
from rnnimg.data import load_dataset
from rnnimg.errors import RnnImgError
from rnnimg.metrics import psnr_per_image, ssim_per_image
from rnnimg.nn import ConvGRUCell, depth_to_space, space_to_depth


def _conv(x, w, b=None):
    return F.conv2d(x, w, b, padding=w.shape[-1] // 2)


def test_convgru_cell_matches_the_textbook_equations_over_several_steps():
    """Ballas et al. eq. 5 with eight separate convolutions (weights sliced from the fused ones),
    rolled over 4 steps from a zero state, kernel 5: the fused cell gives the same states."""
    torch.manual_seed(0)
    ci, hid = 3, 4
    cell = ConvGRUCell(ci, hid, kernel_size=5).double()
    wg, bg = cell.gates.weight, cell.gates.bias  # (2*hid, ci+hid, 5, 5): z rows, then r rows
    wc, bc = cell.candidate.weight, cell.candidate.bias
    w_xz, w_hz, b_z = wg[:hid, :ci], wg[:hid, ci:], bg[:hid]
    w_xr, w_hr, b_r = wg[hid:, :ci], wg[hid:, ci:], bg[hid:]
    w_xn, w_hn, b_n = wc[:, :ci], wc[:, ci:], bc
    xs = torch.randn(4, 2, ci, 6, 7, dtype=torch.float64)
    h_ref = torch.zeros(2, hid, 6, 7, dtype=torch.float64)
    h = None
    with torch.no_grad():
        for x in xs:
            z = torch.sigmoid(_conv(x, w_xz) + _conv(h_ref, w_hz) + b_z.view(1, -1, 1, 1))
            r = torch.sigmoid(_conv(x, w_xr) + _conv(h_ref, w_hr) + b_r.view(1, -1, 1, 1))
            n = torch.tanh(_conv(x, w_xn) + _conv(r * h_ref, w_hn) + b_n.view(1, -1, 1, 1))
            h_ref = (1 - z) * n + z * h_ref
            h = cell(x, h)
            torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)


def test_convgru_1x1_is_the_matrix_gru_at_every_pixel():
    """Kernel 1: each pixel is an ordinary GRU (Cho et al. 2014) of its channel vector, written
    out with matrices; pixels do not mix."""
    torch.manual_seed(1)
    cell = ConvGRUCell(2, 3, kernel_size=1).double()
    wg = cell.gates.weight[..., 0, 0]  # (6, 5)
    wc = cell.candidate.weight[..., 0, 0]  # (3, 5)
    x = torch.randn(1, 2, 3, 3, dtype=torch.float64)
    h = torch.randn(1, 3, 3, 3, dtype=torch.float64)
    with torch.no_grad():
        out = cell(x, h)
        for i in range(3):
            for j in range(3):
                xv, hv = x[0, :, i, j], h[0, :, i, j]
                zr = torch.sigmoid(wg @ torch.cat([xv, hv]) + cell.gates.bias)
                z, r = zr[:3], zr[3:]
                n = torch.tanh(wc @ torch.cat([xv, r * hv]) + cell.candidate.bias)
                torch.testing.assert_close(out[0, :, i, j], (1 - z) * n + z * hv, rtol=0, atol=1e-12)


def test_translator_uses_one_shared_cell_and_steps_cost_no_parameters():
    model = create_model("translator", "debug")
    cells = [m for m in model.modules() if isinstance(m, ConvGRUCell)]
    assert len(cells) == 1
    longer = create_model("translator", "debug", steps=7)
    assert sum(p.numel() for p in longer.parameters()) == sum(p.numel() for p in model.parameters())


def test_scan_context_lets_one_step_see_the_whole_image():
    """One refinement step of the debug translator at 32x32 reaches about 11 blocks of 2x2 pixels,
    so the output at one corner ignores the opposite corner; with ``context="scan"`` it reads it."""
    reach = {}
    for context in ("none", "scan"):
        torch.manual_seed(0)
        model = create_model("translator", "debug", image_size=32, steps=1, context=context).double()
        source = torch.rand(1, 1, 32, 32, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(model(source)[0, 0, 0, 0], source)
        reach[context] = grad[0, 0, 31, 31].abs().item()
    assert reach["none"] == 0 and reach["scan"] > 0
    with pytest.raises(RnnImgError, match="context"):
        create_model("translator", "debug", context="attention")


@pytest.mark.parametrize("preset", ["debug", "colorize"])
def test_per_step_outputs_are_the_ones_the_output_is_built_from(preset):
    """A hand-written loop over the public pieces (encoder, the cell's one-step API, decoder)
    reading [source, previous estimate] gives every step of translate(return_steps=True), and the
    last step is translate's output."""
    torch.manual_seed(0)
    model = create_model("translator", preset, image_size=16).eval()
    c = model.config
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    source = batch["source"]
    steps = model.translate(source, return_steps=True)
    assert steps.shape == (3, c.steps, c.out_channels, 16, 16)
    assert torch.equal(model.translate(source), steps[:, -1])
    with torch.no_grad():
        y = source.expand(-1, c.out_channels, -1, -1)  # y_0: the input (grey repeated to colour)
        h = None
        for k in range(c.steps):
            e = model.encoder(space_to_depth(torch.cat([source, y], 1), c.patch))
            h = model.cell(e, h)
            y = (y + depth_to_space(model.decoder(h), c.patch, 16, 16)).clamp(0, 1)
            torch.testing.assert_close(steps[:, k], y, rtol=0, atol=1e-6)
    assert not torch.equal(steps[:, 0], steps[:, -1])  # the steps really differ


def test_tiny_overfit_drives_psnr_well_above_the_noisy_inputs():
    """16 noisy digits (sigma 50, fixed noise): 150 Adam steps take the translator's PSNR at
    least 5 dB above the noisy input's."""
    torch.manual_seed(0)
    data = load_dataset("mnist-5k", "test", corrupt="denoise", sigma=50, image_size=16)
    batch = torch.utils.data.default_collate([data[i] for i in range(16)])
    model = create_model("translator", "debug", features=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        model.loss(batch).loss.backward()
        opt.step()
    model.eval()
    stats = model.reduce_statistics(model.evaluation_statistics(batch))
    assert stats["psnr"] > stats["input_psnr"] + 5, stats
    assert stats["psnr_per_step"][-1] == pytest.approx(stats["psnr"])


def test_psnr_and_ssim_match_scikit_image():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    gen = torch.Generator().manual_seed(0)
    target = torch.rand(4, 3, 20, 24, generator=gen)
    pred = (target + 0.1 * torch.randn(4, 3, 20, 24, generator=gen)).clamp(0, 1)
    psnr, ssim = psnr_per_image(pred, target), ssim_per_image(pred, target)
    for i in range(4):
        p, t = pred[i].double().numpy(), target[i].double().numpy()
        assert psnr[i].item() == pytest.approx(peak_signal_noise_ratio(t, p, data_range=1), abs=1e-9)
        ref = structural_similarity(t, p, data_range=1, channel_axis=0, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False)
        assert ssim[i].item() == pytest.approx(ref, abs=1e-5)
    assert psnr_per_image(target, target)[0].item() == 100.0  # an exact copy is capped, not inf


def test_evaluation_statistics_add_up_to_the_split_metrics():
    """Stats summed over two batches reduce to the per-image means of the whole set computed
    independently (scikit-image), for the output and for the untouched input."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    torch.manual_seed(0)
    model = create_model("translator", "debug").eval()
    a = model.example_batch(3, torch.Generator().manual_seed(1))
    b = model.example_batch(2, torch.Generator().manual_seed(2))
    sa, sb = model.evaluation_statistics(a), model.evaluation_statistics(b)
    total = model.reduce_statistics({k: sa[k] + sb[k] for k in sa})
    source = torch.cat([a["source"], b["source"]])
    target = torch.cat([a["target"], b["target"]])
    output = model.translate(source)

    def mean(f, x):
        return np.mean([f(target[i, 0].double().numpy(), x[i, 0].double().numpy()) for i in range(5)])

    def ssim(t, p):
        return structural_similarity(t, p, data_range=1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)

    def psnr(t, p):
        return peak_signal_noise_ratio(t, p, data_range=1)

    assert total["psnr"] == pytest.approx(mean(psnr, output), abs=1e-6)
    assert total["input_psnr"] == pytest.approx(mean(psnr, source), abs=1e-6)
    assert total["ssim"] == pytest.approx(mean(ssim, output), abs=1e-5)
    assert total["input_ssim"] == pytest.approx(mean(ssim, source), abs=1e-5)
    assert total["psnr_gain"] == pytest.approx(total["psnr"] - total["input_psnr"])
    assert len(total["psnr_per_step"]) == model.config.steps


# --- the adversarial option -------------------------------------------------------------------


def _gan(adv_weight=0.5, **overrides):
    torch.manual_seed(0)
    return create_model("translator", "debug", adv_weight=adv_weight, **overrides)


def test_no_discriminator_without_the_adversarial_loss():
    model = create_model("translator", "debug")
    assert model.discriminator_parameters() == []
    assert not any("discriminator" in n for n, _ in model.named_parameters())
    with pytest.raises(RuntimeError):
        model.discriminator_loss(model.example_batch(2))


def test_generator_loss_includes_the_discriminators_term():
    model = _gan()
    batch = model.example_batch(3, torch.Generator().manual_seed(0))
    out = model.loss(batch)
    with torch.no_grad():
        steps = model.refine(batch["source"])
        k = steps.shape[1]
        weights = [0.8 ** (k - 1 - i) for i in range(k)]
        pixel = sum(w * F.l1_loss(steps[:, i], batch["target"]) for i, w in enumerate(weights)) / sum(weights)
        logits = model.discriminator(batch["source"], steps[:, -1])
        adversarial = -F.logsigmoid(logits).mean()  # -log D(x, G(x)) per patch
    torch.testing.assert_close(out.loss, pixel + 0.5 * adversarial)
    assert out.metrics["adversarial"] == pytest.approx(adversarial.item(), rel=1e-5)
    # the term is live: the generator's parameters get gradients through the discriminator
    model.zero_grad()
    (0.5 * F.binary_cross_entropy_with_logits(model.discriminator(batch["source"], model(batch["source"])),
                                              torch.ones_like(logits))).backward()
    assert model.decoder[-1].weight.grad.abs().sum() > 0


def test_discriminator_loss_reaches_only_the_discriminator_and_trains_it():
    model = _gan()
    batch = model.example_batch(4, torch.Generator().manual_seed(0))
    d_params = model.discriminator_parameters()
    d_ids = {id(p) for p in d_params}
    g_params = [p for p in model.parameters() if id(p) not in d_ids]
    assert d_params and g_params
    out = model.discriminator_loss(batch)
    out.loss.backward()
    assert all(p.grad is None for p in g_params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d_params)
    # 80 steps on its own loss: the discriminator learns to tell the real pair from the translated
    opt = torch.optim.Adam(d_params, lr=1e-3, betas=(0.5, 0.999))
    first = out.loss.item()
    for _ in range(80):
        opt.zero_grad()
        out = model.discriminator_loss(batch)
        out.loss.backward()
        opt.step()
    assert out.loss.item() < first - 0.1
    assert out.metrics["d_real"] > out.metrics["d_fake"] + 0.1


class PairProbe(torch.nn.Module):
    """A stand-in discriminator with known per-pixel logits that tell source, real and fake apart."""

    def forward(self, source, image):
        return 3 * image[:, :1] - 2 * source[:, :1] + 0.5  # (B, 1, H, W)


def test_discriminator_loss_is_halved_bce_of_real_pairs_to_1_and_translated_pairs_to_0():
    model = _gan().eval()
    model.discriminator = PairProbe()
    batch = model.example_batch(4, torch.Generator().manual_seed(0))
    batch["target"] = 1 - batch["target"]  # far from the untrained translation (about the source)
    out = model.discriminator_loss(batch)
    source, target = batch["source"], batch["target"]
    with torch.no_grad():
        fake = model(source)
    p_real = torch.sigmoid(PairProbe()(source, target))
    p_fake = torch.sigmoid(PairProbe()(source, fake))
    expected = -0.5 * (torch.log(p_real).mean() + torch.log(1 - p_fake).mean())
    swapped = -0.5 * (torch.log(1 - p_real).mean() + torch.log(p_fake).mean())
    assert abs(float(expected - swapped)) > 0.05  # the probe tells real from translated
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.metrics["d_real"], p_real.mean())
    torch.testing.assert_close(out.metrics["d_fake"], p_fake.mean())


def _receptive_interval(layers, first, last):
    """The input rows [a, b] that output rows [first, last] of pix2pix-style convolutions read:
    ``layers`` (kernel 4, stride 2, padding 1) blocks, then two (kernel 3, stride 1, padding 1)."""
    a, b = first, last
    for k, s, p in reversed([(4, 2, 1)] * layers + [(3, 1, 1)] * 2):
        a, b = a * s - p, b * s - p + k - 1
    return a, b


@pytest.mark.parametrize("layers", [1, 2])
def test_patch_discriminator_shape_receptive_field_and_that_it_reads_the_source(layers):
    """One logit per 2^layers pixels; the logit of an inner patch depends on exactly the square of
    source AND image pixels that the convolutions reach (26 x 26 for two blocks, as the docstring
    says); and the discriminator is conditional: another source with the same image changes it."""
    from rnnimg.nn.patchgan import PatchDiscriminator

    torch.manual_seed(0)
    disc = PatchDiscriminator(1, 3, features=8, layers=layers).double().eval()
    source = torch.randn(2, 1, 48, 40, dtype=torch.float64, requires_grad=True)
    image = torch.randn(2, 3, 48, 40, dtype=torch.float64, requires_grad=True)
    logits = disc(source, image)
    assert logits.shape == (2, 1, 48 // 2 ** layers, 40 // 2 ** layers)
    i, j = logits.shape[2] // 2, logits.shape[3] // 2
    logits[:, :, i, j].sum().backward()
    (top, bottom), (left, right) = _receptive_interval(layers, i, i), _receptive_interval(layers, j, j)
    assert bottom - top + 1 == 7 * 2 ** layers - 2 and (layers != 2 or bottom - top + 1 == 26)
    expected = torch.zeros(48, 40, dtype=torch.bool)
    expected[top:bottom + 1, left:right + 1] = True
    for what, x in (("source", source), ("image", image)):
        assert torch.equal(x.grad.abs().sum(dim=(0, 1)) > 0, expected), what
    with torch.no_grad():
        other = disc(source + torch.randn_like(source), image)
    assert (other - logits).abs().max() > 1e-3


def test_two_optimizer_training_of_the_debug_gan_is_stable():
    """The trainer's scheme (a discriminator step, then a generator step with the other
    parameters) for 60 steps, at pix2pix's weighting (L1 x 100 + GAN, i.e. adv_weight 0.01):
    every loss stays finite and the output improves on the input."""
    model = _gan(adv_weight=0.01, features=16)
    data = load_dataset("mnist-5k", "test", corrupt="denoise", sigma=50, image_size=16)
    batch = torch.utils.data.default_collate([data[i] for i in range(16)])
    d_ids = {id(p) for p in model.discriminator_parameters()}
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam([p for p in model.parameters() if id(p) not in d_ids], lr=3e-3)
    for _ in range(60):
        opt_d.zero_grad()
        d = model.discriminator_loss(batch)
        d.loss.backward()
        opt_d.step()
        opt_g.zero_grad()
        g = model.loss(batch)
        g.loss.backward()
        opt_g.step()
        assert torch.isfinite(d.loss) and torch.isfinite(g.loss)
    model.eval()
    stats = model.reduce_statistics(model.evaluation_statistics(batch))
    assert stats["psnr"] > stats["input_psnr"] + 2, stats


# --- checks, the baseline ---------------------------------------------------------------------


def test_check_dataset_refuses_grey_for_a_colour_model_and_single_images():
    colour = create_model("translator", "colour")
    grey = load_dataset("mnist-5k", "test", corrupt="denoise")
    with pytest.raises(RnnImgError, match="1-channel source.*in_channels is 3"):
        colour.check_dataset(grey, "mnist-5k")
    with pytest.raises(RnnImgError, match="corrupt=denoise"):
        colour.check_dataset(load_dataset("shapes", "test", test_size=2), "shapes")
    colour.check_dataset(load_dataset("shapes", "test", test_size=2, corrupt="denoise"), "shapes")
    with pytest.raises(RnnImgError, match=r"\(B, 3, H, W\)"):
        colour.translate(torch.rand(1, 1, 16, 16))


@pytest.mark.parametrize("preset", ["debug", "denoise", "colour", "colorize"])
def test_dncnn_matches_the_translators_size(preset):
    def count(name):
        return sum(p.numel() for p in create_model(name, preset).parameters())

    assert 0.9 < count("dncnn") / count("translator") < 1.1


def test_dncnn_is_a_residual_network_of_the_input():
    """With its last convolution zeroed the network adds nothing: the output is the input."""
    model = create_model("dncnn", "debug").eval()
    with torch.no_grad():
        model.net[-1].weight.zero_()
        model.net[-1].bias.zero_()
    source = torch.rand(2, 1, 16, 16)
    assert torch.equal(model.translate(source), source)
    assert model.translate(source, return_steps=True).shape == (2, 1, 1, 16, 16)


def test_the_adversarial_translator_saves_and_loads(tmp_path):
    """The spectrally normalised discriminator (parametrized weights and power-iteration
    buffers) round-trips through config.json + model.safetensors."""
    from rnnimg.models.checkpoint import load_pretrained

    model = _gan()
    batch = model.example_batch(2, torch.Generator().manual_seed(0))
    model.discriminator_loss(batch)  # a training-mode forward moves the power iteration
    model.eval()
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path)
    assert len(loaded.discriminator_parameters()) == len(model.discriminator_parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded.loss(batch).loss, model.loss(batch).loss, rtol=0, atol=0)
        torch.testing.assert_close(loaded.discriminator_loss(batch).loss,
                                   model.discriminator_loss(batch).loss, rtol=0, atol=0)
