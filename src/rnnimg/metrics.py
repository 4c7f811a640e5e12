"""Metrics, each with its exact definition. Inputs are tensors in [0, 1] (labels for IoU)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def nats_to_bits_per_dim(nats_per_image: Tensor | float, num_dims: int) -> Tensor | float:
    """Bits per dimension from a negative log-likelihood in nats per image.

    bits/dim = nats / (num_dims * ln 2), where ``num_dims`` = C * H * W.
    """
    return nats_per_image / (num_dims * math.log(2.0))


# ---------------------------------------------------------------------------------------------
# video prediction: pred and target are float (B, T, C, H, W) in [0, 1]; each returns (T,)


def _check_clips(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"pred and target must both be (B, T, C, H, W); got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}.")
    # float64: a sum over 64x64 pixels of small squared errors loses digits in float32.
    return pred.detach().double(), target.detach().double()


def mse_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error per time step, OpenSTL's definition.

    mse[t] = mean over clips b of  sum over (c, h, w) of (pred[b,t,c,h,w] - target[b,t,c,h,w])^2,

    i.e. summed (not averaged) over the pixels of a frame, averaged over clips. The headline number
    that papers report for Moving MNIST is ``mse_per_frame(...).mean()`` (the caller averages over
    frames). Returns float32 (T,).
    """
    pred, target = _check_clips(pred, target)
    return (pred - target).pow(2).sum(dim=(2, 3, 4)).mean(0).float()


def mae_per_frame(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error per time step, OpenSTL's definition.

    mae[t] = mean over clips b of  sum over (c, h, w) of |pred[b,t,c,h,w] - target[b,t,c,h,w]|;
    the caller averages over frames for the headline number. Returns float32 (T,).
    """
    pred, target = _check_clips(pred, target)
    return (pred - target).abs().sum(dim=(2, 3, 4)).mean(0).float()


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per time step, data range 1.

    psnr[t] = mean over clips b of  10 * log10(1 / m[b,t]),  where
    m[b,t] = mean over (c, h, w) of (pred - target)^2.

    Computed in float (float64) from [0, 1] values: subtracting uint8 images wraps around
    (3 - 5 = 254), which is where OpenSTL's legacy ~38 dB Moving MNIST values come from. A frame
    predicted exactly has m = 0 and PSNR +inf, which then makes that time step's mean +inf.
    Returns float32 (T,).
    """
    pred, target = _check_clips(pred, target)
    mse = (pred - target).pow(2).mean(dim=(2, 3, 4))  # (B, T)
    return (10.0 * torch.log10(1.0 / mse)).mean(0).float()


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity per time step, as scikit-image and OpenSTL compute it.

    ssim[t] = mean over clips b of SSIM(pred[b,t], target[b,t]). SSIM of two (C, H, W) frames is
    the mean of the SSIM map (Wang et al. 2004: gaussian window sigma 1.5, 11x11, K1 = 0.01,
    K2 = 0.03, population covariances, data range 1.0) over channels and over the pixels at least
    5 from the border, i.e. scikit-image's ``structural_similarity(..., gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, data_range=1)``. The map comes from torchmetrics'
    ``structural_similarity_index_measure``; its own reduction (torchmetrics 1.9) averages the
    whole map including the reflect-padded border, which differs from scikit-image by ~1e-3, so
    the border is cropped here. The data range must be given: for floats scikit-image otherwise
    assumes 2, which inflates SSIM. Frames must be at least 11x11. Returns float32 (T,).
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    pred, target = _check_clips(pred, target)
    b, t = pred.shape[:2]
    if min(pred.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11x11, got {tuple(pred.shape[-2:])}.")
    pad = 5  # (11 - 1) // 2: where the window sticks out of the frame
    frames_pred, frames_target = pred.flatten(0, 1), target.flatten(0, 1)  # (B*T, C, H, W)
    per_frame = []
    # In chunks: torchmetrics' convolution over thousands of frames at once asked for ~40 GB.
    for start in range(0, len(frames_pred), _SSIM_CHUNK):
        _, ssim_map = structural_similarity_index_measure(
            frames_pred[start:start + _SSIM_CHUNK].contiguous(),
            frames_target[start:start + _SSIM_CHUNK].contiguous(), gaussian_kernel=True, sigma=1.5,
            kernel_size=11, data_range=1.0, reduction="none", return_full_image=True)
        per_frame.append(ssim_map[..., pad:-pad, pad:-pad].mean(dim=(1, 2, 3)))
    return torch.cat(per_frame).view(b, t).mean(0).float()


_SSIM_CHUNK = 256  # frames per SSIM call


# ---------------------------------------------------------------------------------------------
# images: pred and target are float (B, C, H, W) in [0, 1]; each returns (B,), one value an image

PSNR_MAX_DB = 100.0  # the PSNR of an exact copy, which would be +inf (mse floored at 1e-10)


def psnr_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB of each image, data range 1, over all channels (RGB, not Y).

    psnr[b] = 10 * log10(1 / max(m[b], 1e-10)), where m[b] = mean over (c, h, w) of
    (pred - target)^2, in float64 from [0, 1] values, no border crop. The floor caps an exact copy
    at 100 dB instead of +inf, so that a split's mean stays finite (an inpainting box that falls
    on an empty background leaves the input exactly right). Returns float64 (B,).
    """
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}.")
    mse = (pred.detach().double() - target.detach().double()).pow(2).mean(dim=(1, 2, 3))  # (B,)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(10 ** (-PSNR_MAX_DB / 10)))


def ssim_per_image(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity of each image, data range 1: exactly :func:`ssim`'s definition
    (gaussian window sigma 1.5, 11x11, mean over channels and over the pixels at least 5 from the
    border) applied to every image of (B, C, H, W). Returns float64 (B,)."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}.")
    # one clip whose frames are the images: ssim() returns the value of each frame
    return ssim(pred.unsqueeze(0), target.unsqueeze(0)).double()


# ---------------------------------------------------------------------------------------------
# segmentation


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = 255) -> Tensor:
    """Pixel counts (num_classes, num_classes), rows = target class, columns = predicted class.

    Pixels whose target is ``ignore_index`` are left out. Sum the matrices of several batches to
    score a whole dataset, then call :func:`mean_iou_from_confusion`.
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target labels differ in shape: {tuple(pred.shape)} vs "
                         f"{tuple(target.shape)}.")
    pred, target = pred.detach().long().flatten(), target.detach().long().flatten()
    keep = target != ignore_index
    pred, target = pred[keep], target[keep]
    for name, labels in (("target", target), ("pred", pred)):
        if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(f"{name} labels must be in 0..{num_classes - 1} (or {ignore_index} in "
                             f"target to ignore); found {labels.min()}..{labels.max()}.")
    return (target * num_classes + pred).bincount(minlength=num_classes**2).view(num_classes, num_classes)


def mean_iou_from_confusion(confusion: Tensor) -> Tensor:
    """Mean intersection over union from a confusion matrix; see :func:`mean_iou`."""
    confusion = confusion.double()
    inter = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - inter
    present = union > 0
    if not present.any():
        return torch.tensor(float("nan"))
    return (inter[present] / union[present]).mean().float()


def mean_iou(pred_labels: Tensor, target_labels: Tensor, num_classes: int,
             ignore_index: int = 255) -> Tensor:
    """Mean intersection over union over classes, pooled over all pixels of the batch.

    With the pixels whose target is ``ignore_index`` removed, for each class k:
    IoU_k = |pred == k AND target == k| / |pred == k OR target == k|, counted over all pixels of
    all images together (not per image). mIoU is the mean of IoU_k over the classes with a
    non-empty union; classes absent from both prediction and target are excluded, not counted as
    0 or 1. Returns a float32 scalar (NaN if no class occurs at all).

    Args:
        pred_labels, target_labels: long tensors of one shape, e.g. (B, H, W).
        num_classes: K; labels must lie in 0..K-1 (target may also hold ``ignore_index``).
    """
    return mean_iou_from_confusion(confusion_matrix(pred_labels, target_labels, num_classes, ignore_index))
