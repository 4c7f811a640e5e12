"""``rnnimg predict``: continue a clip with a trained frame predictor."""

from __future__ import annotations

from pathlib import Path

from rnnimg.cli.common import add_device_arg, check_output, check_scale, positive_int, resolve_device


def register(sub) -> None:
    p = sub.add_parser(
        "predict", help="predict the next frames of a clip",
        description="Feed the first --context frames of INPUT to the model in RUN and predict "
                    "--horizon more. Writes an animation (GIF, or MP4 by extension) with the ground "
                    "truth beside the prediction where INPUT has those frames (green border: given "
                    "frames, red: predicted; grey where the clip has no more frames), and a PNG "
                    "strip beside it. A stochastic model (svg) draws -n futures, shown side by side.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or pretrained:NAME) of a frame "
                   "predictor: convlstm, predrnn, svg")
    p.add_argument("input", metavar="INPUT",
                   help="a clip: .npy/.npz array (T, H, W[, C]), a folder of numbered frames, or a "
                        "video file (gif, mp4)")
    p.add_argument("--context", type=positive_int, help="frames given to the model (default: the "
                   "model's context length)")
    p.add_argument("--horizon", type=int, help="frames to predict (default: the model's training "
                   "horizon; longer horizons roll out autoregressively)")
    p.add_argument("-n", "--samples", type=positive_int, default=1,
                   help="sampled futures to draw (stochastic models such as svg; default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled futures (default 0)")
    p.add_argument("--key", help="the array to read from an .npz file that holds several")
    p.add_argument("-o", "--output", default="prediction.gif", help="animation file (.gif or .mp4)")
    p.add_argument("--fps", type=float, default=4, help="frames per second (default 4)")
    p.add_argument("--scale", type=positive_int, default=3, help="enlarge pixels (default 3)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_device_arg(p)
    p.set_defaults(run=cmd_predict)


def cmd_predict(args) -> int:
    import torch

    from rnnimg.data.video_io import read_clip
    from rnnimg.errors import RnnImgError
    from rnnimg.tasks import load_model_for, predict_futures, prediction_media, save_picture
    from rnnimg.viz import write_video

    out = Path(args.output)
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise RnnImgError(f"-o {out}: use a .gif or .mp4 file name.")
    if not args.fps > 0:  # before the model runs
        raise RnnImgError(f"--fps must be > 0, got {args.fps}.")
    check_scale(args.scale)
    strip_path = out.with_suffix(".png")
    check_output(out, args.overwrite)
    check_output(strip_path, args.overwrite)
    device = resolve_device(args.device)
    model = load_model_for(args.run_dir, "predict", device)
    context = args.context or model.config.context
    horizon = args.horizon if args.horizon is not None else model.config.horizon
    if horizon <= 0:
        raise RnnImgError(f"--horizon must be >= 1, got {horizon}.")
    clip = read_clip(args.input, min_frames=context, key=args.key)  # (T, C, H, W)
    if clip.shape[1] != model.config.channels:
        raise RnnImgError(f"{args.input} has {clip.shape[1]} channel(s), but the model takes "
                          f"{model.config.channels}; convert the clip or train on such clips.")
    given = clip[:context]
    futures = predict_futures(model, given, horizon, args.samples, args.seed)  # (N, horizon, C, H, W)
    prediction = futures[0]
    truth = clip[context:context + horizon]
    known = len(truth)  # the true frames INPUT has; grey ones may pad them below
    if len(truth) < horizon:  # the clip ends before the horizon: grey frames stand in for truth,
        # so that each predicted frame still sits under (and beside) the frame it predicts
        truth = torch.cat([truth, torch.full_like(prediction[len(truth):], 0.5)])
    frames, strip = prediction_media(given, truth, futures if args.samples > 1 else prediction)
    write_video(frames, out, fps=args.fps, scale=args.scale)
    save_picture(strip, strip_path, scale=args.scale)
    shown = f"beside {known} true frame{'s' * (known != 1)}" if known else "(no ground truth in INPUT)"
    drawn = f" ({args.samples} sampled futures, seed {args.seed})" if args.samples > 1 else ""
    print(f"predicted {horizon} frames from {context}{drawn} {shown}: {out} and {strip_path}")
    return 0
