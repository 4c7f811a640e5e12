"""``rnnimg predict``: continue a clip with a trained frame predictor."""

from __future__ import annotations

from rnnimg.cli.common import (
    Outputs,
    add_device_arg,
    check_scale,
    out_of_memory_hint,
    positive_int,
    resolve_device,
)


def register(sub) -> None:
    p = sub.add_parser(
        "predict", help="predict the next frames of a clip",
        description="Feed the first --context frames of INPUT to the model in RUN and predict "
                    "--horizon more. Writes an animation (GIF, or MP4 by extension) with the ground "
                    "truth beside the prediction where INPUT has those frames (green border: given "
                    "frames, red: predicted; grey where the clip has no more frames), and a PNG "
                    "strip beside it. A stochastic model (svg) draws -n futures, shown side by side.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or pretrained:NAME) of a frame "
                   "predictor: convlstm, predrnn, convscan, svg")
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
    from rnnimg.data.video_io import read_clip
    from rnnimg.errors import RnnImgError
    from rnnimg.tasks import load_model_for, pad_truth, predict_futures, prediction_media, save_picture
    from rnnimg.viz import write_video

    if not args.fps > 0:  # before the model runs
        raise RnnImgError(f"--fps must be > 0, got {args.fps}.")
    check_scale(args.scale)
    outs = Outputs(args.overwrite)
    out = outs.add(args.output, "-o", (".gif", ".mp4"), "prediction.gif")
    if out.suffix.lower() == ".mp4":
        import importlib.util

        if importlib.util.find_spec("av") is None:
            raise RnnImgError(f"-o {out}: writing MP4 needs PyAV; run pip install rnnimg[video], or "
                              "write a .gif instead.")
    strip_path = outs.add(out.with_suffix(".png"), "-o (its .png strip)")
    device = resolve_device(args.device)
    model = load_model_for(args.run_dir, "predict", device)
    context = args.context or model.config.context
    horizon = args.horizon if args.horizon is not None else model.config.horizon
    clip = read_clip(args.input, min_frames=context, key=args.key)  # (T, C, H, W)
    given = clip[:context]
    args.argument_flags = {"context": str(args.input)}  # the clip's frames are INPUT's
    height, width = clip.shape[-2:]
    with out_of_memory_hint(f"predicting {horizon} frames of {width}x{height}",
                            "pass a smaller --horizon or -n, or a clip of smaller frames"):
        futures = predict_futures(model, given, horizon, args.samples, args.seed)  # (N, horizon, C, H, W)
    prediction = futures[0]
    known = len(clip[context:context + horizon])  # the true frames INPUT has; grey ones pad them
    truth = pad_truth(clip[context:], horizon, prediction[0])
    frames, strip = prediction_media(given, truth, futures if args.samples > 1 else prediction)
    outs.write(out, lambda tmp: write_video(frames, tmp, fps=args.fps, scale=args.scale))
    outs.write(strip_path, lambda tmp: save_picture(strip, tmp, scale=args.scale))
    outs.commit()  # the animation and its strip, or neither
    shown = f"beside {known} true frame{'s' * (known != 1)}" if known else "(no ground truth in INPUT)"
    drawn = f" ({args.samples} sampled futures, seed {args.seed})" if args.samples > 1 else ""
    print(f"predicted {horizon} frames from {context}{drawn} {shown}: {out} and {strip_path}")
    return 0
