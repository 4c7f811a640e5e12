"""Y-channel PSNR and SSIM with shaved borders (the super-resolution protocol) against
scikit-image's own computation on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rnnimg.data import load_dataset
from rnnimg.metrics import luma_y, psnr_y_per_image, ssim_y_per_image


def _skimage_scores(pred: torch.Tensor, target: torch.Tensor, shave: int) -> tuple[list, list]:
    psnrs, ssims = [], []
    for p, t in zip(pred, target):
        p, t = p.permute(1, 2, 0).double().numpy(), t.permute(1, 2, 0).double().numpy()
        if p.shape[-1] == 3:
            yp, yt = rgb2ycbcr(p)[..., 0], rgb2ycbcr(t)[..., 0]  # 16..235
        else:
            yp, yt = p[..., 0] * 255, t[..., 0] * 255
        if shave:
            yp, yt = yp[shave:-shave, shave:-shave], yt[shave:-shave, shave:-shave]
        psnrs.append(peak_signal_noise_ratio(yt, yp, data_range=255))
        ssims.append(structural_similarity(yt, yp, data_range=255, gaussian_weights=True, sigma=1.5,
                                           use_sample_covariance=False))
    return psnrs, ssims


@pytest.mark.parametrize("channels,shave", [(3, 4), (3, 0), (1, 3)])
def test_y_psnr_and_ssim_equal_scikit_image(channels, shave):
    photo = load_dataset("photos", "test", channels=channels)[1]["image"][:, :120, :150]  # coffee
    target = torch.stack([photo, photo.flip(-1)])
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    pred = (target + 0.05 * noise).clamp(0, 1)
    psnrs, ssims = _skimage_scores(pred, target, shave)
    np.testing.assert_allclose(psnr_y_per_image(pred, target, shave).numpy(), psnrs, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ssim_y_per_image(pred, target, shave).numpy(), ssims, rtol=0, atol=1e-5)
    if shave:  # the shave matters: errors only on the border change the score
        bordered = target.clone()
        bordered[..., :shave, :] = 1 - bordered[..., :shave, :]
        assert float(psnr_y_per_image(bordered, target, shave)[0]) == 100.0  # exact inside
        assert float(psnr_y_per_image(bordered, target, 0)[0]) < 40


def test_luma_is_studio_swing_bt601():
    white, black = torch.ones(1, 3, 2, 2), torch.zeros(1, 3, 2, 2)
    assert torch.allclose(luma_y(white) * 255, torch.full((1, 1, 2, 2), 235.0, dtype=torch.float64))
    assert torch.allclose(luma_y(black) * 255, torch.full((1, 1, 2, 2), 16.0, dtype=torch.float64))
    with pytest.raises(ValueError, match="cannot shave"):
        psnr_y_per_image(white, black, shave=1)
