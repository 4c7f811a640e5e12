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


def _check_clips(pred: Tensor, target: Tensor, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """Both (B, T, C, H, W) floats in [0, 1], detached and cast to ``dtype``. Integer frames are
    refused rather than rescaled: their range is unknown, and subtracting uint8 wraps around."""
    if pred.shape != target.shape or pred.dim() != 5:
        raise ValueError(f"pred and target must both be (B, T, C, H, W); got {tuple(pred.shape)} "
                         f"and {tuple(target.shape)}.")
    if not (pred.is_floating_point() and target.is_floating_point()):
        raise ValueError(f"pred and target must be float frames in [0, 1]; got {pred.dtype} and "
                         f"{target.dtype} (divide uint8 frames by 255 first).")
    # float64 by default: a sum over 64x64 pixels of small squared errors loses digits in float32.
    return pred.detach().to(dtype), target.detach().to(dtype)


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

    ssim[t] = mean over clips b of SSIM(pred[b,t], target[b,t]); see :func:`ssim_per_clip` for the
    definition of SSIM of two frames. Frames must be at least 11x11. Returns float32 (T,).
    """
    return ssim_per_clip(pred, target).mean(0).float()


def ssim_per_clip(pred: Tensor, target: Tensor) -> Tensor:
    """Structural similarity of every frame of every clip: float64 (B, T), additive over clips.

    SSIM of two (C, H, W) frames x, y is the mean of the SSIM map (Wang et al. 2004)

        S = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2)),

    C1 = (0.01 R)^2, C2 = (0.03 R)^2, data range R = 1, where mu, s^2 and s_xy are local means,
    population variances and covariance under an 11x11 gaussian window (sigma 1.5, normalised, 5
    taps each side), over the channels and over the pixels at least 5 from the border (where the
    window lies inside the frame). This is scikit-image's ``structural_similarity(...,
    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` averaged over
    channels (tested to 1e-5). The data range must be given: for floats scikit-image otherwise
    assumes 2, which inflates SSIM.

    The window is separable, so each local mean is one banded matrix product along the width and
    one along the height, in float32 over whole chunks of frames: the torchmetrics map this
    replaces convolved in float64 and was ~100x slower than scikit-image's per-frame loop.
    """
    pred, target = _check_clips(pred, target, torch.float32)
    b, t, c, h, w = pred.shape
    if min(h, w) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {_SSIM_WINDOW}x{_SSIM_WINDOW}, got {(h, w)}.")
    frames_pred, frames_target = pred.flatten(0, 1), target.flatten(0, 1)  # (N, C, H, W), N = B*T
    band_w = _gaussian_band(w, frames_pred.device)  # (W, W-10)
    band_h = _gaussian_band(h, frames_pred.device).T  # (H-10, H)
    c1, c2 = 0.01**2, 0.03**2
    # In chunks of frames: on a CPU small enough for the 5 maps to stay in cache (measured ~1.5x
    # faster than 256 frames at once), on a GPU large enough to keep the launches few.
    pixels = 2**16 if frames_pred.device.type == "cpu" else 2**24
    chunk = _SSIM_CHUNK or max(1, pixels // (c * h * w))
    per_frame = []
    for start in range(0, len(frames_pred), chunk):
        x, y = frames_pred[start:start + chunk], frames_target[start:start + chunk]
        maps = torch.stack([x, y, x * x, y * y, x * y], dim=1)  # (n, 5, C, H, W)
        mu_x, mu_y, mu_xx, mu_yy, mu_xy = (band_h @ (maps @ band_w)).unbind(1)  # (n, C, H-10, W-10)
        var_x, var_y, cov = mu_xx - mu_x * mu_x, mu_yy - mu_y * mu_y, mu_xy - mu_x * mu_y
        ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)
                    / ((mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)))
        per_frame.append(ssim_map.double().mean(dim=(1, 2, 3)))
    return torch.cat(per_frame).view(b, t)


_SSIM_WINDOW = 11  # gaussian window side: sigma 1.5, 5 taps each side (scikit-image's truncate 3.5)
_SSIM_CHUNK: int | None = None  # frames per banded product (None: chosen from the frame size)


def _gaussian_band(size: int, device: torch.device) -> Tensor:
    """(size, size - 10) float32 matrix whose column j holds the normalised gaussian window
    (sigma 1.5) at rows j..j+10: ``frame @ band`` filters along the last axis, keeping only the
    positions where the window lies inside the frame."""
    offsets = torch.arange(-5, 6, dtype=torch.float64)
    window = torch.exp(-0.5 * (offsets / 1.5) ** 2)
    window = window / window.sum()
    out = size - _SSIM_WINDOW + 1
    band = torch.zeros(size, out, dtype=torch.float64)
    rows = torch.arange(out).unsqueeze(0) + torch.arange(_SSIM_WINDOW).unsqueeze(1)  # (11, out)
    band[rows, torch.arange(out).expand_as(rows)] = window.unsqueeze(1).expand_as(rows)
    return band.float().to(device)


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
    """Structural similarity of each image, data range 1: exactly :func:`ssim_per_clip`'s
    definition (gaussian window sigma 1.5, 11x11, mean over channels and over the pixels at least
    5 from the border) applied to every image of (B, C, H, W). Returns float64 (B,)."""
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}.")
    return ssim_per_clip(pred.unsqueeze(1), target.unsqueeze(1))[:, 0]  # B clips of one frame


# The super-resolution protocol: luma Y of ITU-R BT.601 in "studio swing", as MATLAB's rgb2ycbcr
# and scikit-image's rgb2ycbcr compute it from RGB in [0, 1]: Y = 16 + 65.481 R + 128.553 G +
# 24.966 B, in [16, 235] on the 0-255 scale.
_Y_FROM_RGB = (65.481, 128.553, 24.966)


def luma_y(image: Tensor) -> Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) float64 Y / 255, in [16/255, 235/255]; a grey
    (B, 1, H, W) image is its own Y (returned as float64)."""
    image = image.detach().double()
    if image.shape[1] == 1:
        return image
    if image.shape[1] != 3:
        raise ValueError(f"luma_y takes 1 or 3 channels, got {image.shape[1]}.")
    weights = torch.tensor(_Y_FROM_RGB, dtype=torch.float64, device=image.device).view(1, 3, 1, 1)
    return (16.0 + (image * weights).sum(1, keepdim=True)) / 255.0


def _shave(pred: Tensor, target: Tensor, shave: int) -> tuple[Tensor, Tensor]:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"pred and target must both be (B, C, H, W); got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}.")
    if shave < 0 or min(pred.shape[-2:]) <= 2 * shave:
        raise ValueError(f"cannot shave {shave} pixels from each border of {tuple(pred.shape[-2:])}.")
    if shave:
        pred, target = pred[..., shave:-shave, shave:-shave], target[..., shave:-shave, shave:-shave]
    return pred, target


def psnr_y_per_image(pred: Tensor, target: Tensor, shave: int = 0) -> Tensor:
    """PSNR (dB) of each image on the Y channel (:func:`luma_y`) with ``shave`` pixels cut from
    every border, the super-resolution protocol (shave = the scale): 10 log10(255^2 / MSE) of Y
    on the 0-255 scale, unrounded, over the remaining pixels. Equals scikit-image's
    ``peak_signal_noise_ratio(Yt, Yp, data_range=255)`` on ``rgb2ycbcr(...)[..., 0]`` of the same
    arrays cropped the same way (tested). float64 (B,)."""
    pred, target = _shave(luma_y(pred), luma_y(target), shave)
    return psnr_per_image(pred, target)


def ssim_y_per_image(pred: Tensor, target: Tensor, shave: int = 0) -> Tensor:
    """SSIM of each image on the Y channel with ``shave`` pixels cut from every border: scikit-
    image's ``structural_similarity(Yt, Yp, data_range=255, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)`` on the 0-255 Y of the same arrays (:func:`ssim_per_image` on
    Y / 255, which is the same number: SSIM does not change when data and range scale together).
    float64 (B,)."""
    pred, target = _shave(luma_y(pred), luma_y(target), shave)
    return ssim_per_image(pred.float(), target.float())


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


def iou_per_class(confusion: Tensor) -> Tensor:
    """IoU_k = C[k, k] / (sum_j C[k, j] + sum_i C[i, k] - C[k, k]) for every class k of a
    confusion matrix (rows = target, columns = prediction); NaN for a class absent from both
    target and prediction (an empty union). Returns float64 (K,)."""
    confusion = confusion.double()
    inter = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, float("nan")))


def mean_iou_from_confusion(confusion: Tensor) -> Tensor:
    """Mean intersection over union from a confusion matrix; see :func:`mean_iou`."""
    ious = iou_per_class(confusion)
    present = ~ious.isnan()
    if not present.any():
        return torch.tensor(float("nan"))
    return ious[present].mean().float()


def segmentation_scores(confusion: Tensor) -> dict[str, Tensor]:
    """The reported segmentation metrics of a (summed) confusion matrix.

    Returns:
        ``miou``: :func:`mean_iou_from_confusion` (absent classes left out), float32 scalar;
        ``iou_per_class``: :func:`iou_per_class`, float64 (K,), NaN where a class is absent;
        ``pixel_accuracy``: trace / total, the share of counted (non-ignored) pixels labelled
        right, float32 scalar (NaN if no pixel was counted).
    """
    confusion = confusion.double()
    total = confusion.sum()
    accuracy = confusion.trace() / total if total > 0 else torch.tensor(float("nan"))
    return {"miou": mean_iou_from_confusion(confusion), "iou_per_class": iou_per_class(confusion),
            "pixel_accuracy": accuracy.float()}


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


# ---------------------------------------------------------------------------------------------
# 3D reconstruction: occupancy grids (B, D, H, W)

VOXEL_IOU_THRESHOLD = 0.4  # 3D-R2N2's protocol (Choy et al. 2016)


def voxel_iou_sums(prob: Tensor, target: Tensor, label: Tensor | None = None, num_classes: int = 1,
                   threshold: float = VOXEL_IOU_THRESHOLD) -> tuple[Tensor, Tensor]:
    """Intersections and unions of predicted and true occupancy, summed per class: additive
    statistics, so that the IoU of a split is pooled from its totals (:func:`voxel_iou_pooled`).

    A voxel is predicted filled where ``prob > threshold`` and truly filled where ``target >=
    0.5``. Shape b contributes |pred_b AND true_b| to ``intersection[label[b]]`` and
    |pred_b OR true_b| to ``union[label[b]]``.

    Args:
        prob: predicted occupancy probabilities (B, D, H, W).
        target: true occupancy (B, D, H, W), 0/1.
        label: (B,) long class of each shape, or None (every shape is class 0).
        num_classes: K.

    Returns:
        (intersection, union), float64 (K,) each.
    """
    if prob.shape != target.shape:
        raise ValueError(f"prob and target differ in shape: {tuple(prob.shape)} vs {tuple(target.shape)}")
    pred = (prob.detach() > threshold).flatten(1)
    true = (target.detach() >= 0.5).flatten(1)
    inter = (pred & true).sum(1).double()  # (B,)
    union = (pred | true).sum(1).double()
    if label is None:
        label = torch.zeros(len(pred), dtype=torch.long, device=pred.device)
    k = torch.zeros(num_classes, dtype=torch.float64, device=pred.device)
    return k.index_add(0, label.long(), inter), k.clone().index_add(0, label.long(), union)


def voxel_iou_pooled(intersection: Tensor, union: Tensor) -> Tensor:
    """Pooled IoU = sum of intersections / sum of unions (over whatever the sums cover); NaN for
    an empty union. Works elementwise on per-class sums too. Note: 3D-R2N2's tables average
    per-shape IoUs; pooling weighs large shapes more, and is what rnnimg reports."""
    intersection, union = intersection.double(), union.double()
    return torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, float("nan")))


def voxel_nll_sums(nats: Tensor, label: Tensor | None = None, num_classes: int = 1
                   ) -> tuple[Tensor, Tensor]:
    """A generator's negative log-likelihoods summed per class: additive statistics, so that the
    bits per voxel of a split are pooled from its totals (:func:`bits_per_voxel_pooled`).

    Args:
        nats: NLL in nats of each volume (B,), summed over its voxels.
        label: (B,) long class of each volume, or None (every volume is class 0).
        num_classes: K.

    Returns:
        (nats summed per class, volumes per class), float64 (K,) each.
    """
    nats = nats.detach().double().flatten()
    if label is None:
        label = torch.zeros(len(nats), dtype=torch.long, device=nats.device)
    k = torch.zeros(num_classes, dtype=torch.float64, device=nats.device)
    return k.index_add(0, label.long(), nats), k.clone().index_add(0, label.long(), torch.ones_like(nats))


def bits_per_voxel_pooled(nats_sum: Tensor, count: Tensor, voxels_per_volume: int) -> Tensor:
    """bits/voxel = summed nats / (volumes * voxels per volume * ln 2), elementwise (per-class sums
    too); NaN where no volume was counted. Every volume of a split has the same number of voxels,
    so this equals the mean of the per-volume bits/voxel, and it is what a split's total gives."""
    nats_sum, count = nats_sum.double(), count.double()
    bits = nats_sum / (count.clamp(min=1) * voxels_per_volume * math.log(2.0))
    return torch.where(count > 0, bits, torch.full_like(bits, float("nan")))


def voxel_iou_per_shape(prob: Tensor, target: Tensor, threshold: float = VOXEL_IOU_THRESHOLD) -> Tensor:
    """IoU of each shape (B,) float64 (1 where both prediction and truth are empty)."""
    pred = (prob.detach() > threshold).flatten(1)
    true = (target.detach() >= 0.5).flatten(1)
    inter = (pred & true).sum(1).double()
    union = (pred | true).sum(1).double()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


def sample_statistics(futures: Tensor, target: Tensor, with_ssim: bool = True) -> dict[str, Tensor]:
    """Sums over clips of the per-step scores of N sampled futures: mean of N (``mse_per_step``,
    ...), best of N (``best_mse_per_step``, ...; per clip the sample with the best mean over the
    frames), ``diversity_per_step`` and ``samples`` (N per clip); all float64 on the CPU.

    Args:
        futures: (B, N, T, C, H, W) in [0, 1].
        target: (B, T, C, H, W) in [0, 1].
    """
    b, n = futures.shape[:2]
    pred = futures.double()
    truth = target.double().unsqueeze(1)  # (B, 1, T, C, H, W)
    sq = (pred - truth).pow(2)
    scores = {"mse": sq.sum(dim=(3, 4, 5)), "mae": (pred - truth).abs().sum(dim=(3, 4, 5)),
              "psnr": 10.0 * torch.log10(1.0 / sq.mean(dim=(3, 4, 5)))}  # each (B, N, T)
    if with_ssim:
        scores["ssim"] = ssim_per_clip(futures.flatten(0, 1), target.repeat_interleave(n, dim=0)
                                       ).view(b, n, -1).double()
    stats = {}
    for key, value in scores.items():
        stats[f"{key}_per_step"] = value.mean(1).sum(0).cpu()
        overall = value.mean(2)  # (B, N): each sample's mean over the frames
        pick = overall.argmin(1) if key in ("mse", "mae") else overall.argmax(1)  # (B,)
        best = value.gather(1, pick.view(b, 1, 1).expand(b, 1, value.shape[2]))[:, 0]  # (B, T)
        stats[f"best_{key}_per_step"] = best.sum(0).cpu()
    spread = (pred - pred.mean(1, keepdim=True)).pow(2).sum(dim=(1, 3, 4, 5))  # (B, T)
    # mean over pairs i < j of |a_i - a_j|^2 = 2 / (N - 1) * sum_i |a_i - mean|^2
    stats["diversity_per_step"] = (spread * (2.0 / (n - 1)) if n > 1 else spread * 0).sum(0).cpu()
    stats["samples"] = torch.tensor(float(n * b), dtype=torch.float64)
    return stats
