"""``rnnimg translate``: restore or translate one image with a trained translate-task model."""

from __future__ import annotations

from pathlib import Path

from rnnimg.cli.common import add_device_arg, add_tile_args, check_output, positive_int, resolve_device


def register(sub) -> None:
    p = sub.add_parser(
        "translate", help="translate or restore an image (denoise, inpaint, colorize, A -> B)",
        description="Run the translate-task model in RUN (translator, dncnn) on INPUT and write the "
                    "output image. With --steps, also write a strip: the input, the estimate after "
                    "every refinement step (the last is the output).")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or pretrained:NAME) of a translator "
                   "or dncnn model")
    p.add_argument("input", metavar="INPUT", help="the image to translate (PNG, JPEG, ...)")
    p.add_argument("-o", "--output", default="translated.png", help="output image (default "
                   "translated.png)")
    p.add_argument("--steps", metavar="STRIP.png", help="also write the strip of every step here")
    p.add_argument("--scale", type=positive_int, default=3, help="enlarge the strip's pixels "
                   "(default 3; the output keeps the input's size)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_tile_args(p)
    add_device_arg(p)
    p.set_defaults(run=cmd_translate)


def cmd_translate(args) -> int:
    from rnnimg.data.images import read_image
    from rnnimg.errors import RnnImgError
    from rnnimg.tasks import load_model_for, translation_strip
    from rnnimg.viz import save_image

    out = check_output(args.output, args.overwrite)
    strip_path = check_output(args.steps, args.overwrite) if args.steps else None
    if strip_path is not None and strip_path.resolve() == out.resolve():
        raise RnnImgError("--steps and -o name the same file; choose two names.")
    image = read_image(Path(args.input))  # (C, H, W) uint8, grey or RGB as stored
    model = load_model_for(args.run_dir, "translate", resolve_device(args.device))
    want = model.config.in_channels
    if image.shape[0] != want:
        kind = {1: "grey", 3: "colour"}
        raise RnnImgError(f"{args.input} is a {kind[image.shape[0]]} image, but the model in "
                          f"{args.run_dir} takes {kind[want]} input; convert the image first.")
    # uint8 in and out, tile by tile: a large photo stays at a byte a value (rnnimg.tiling)
    output = model.translate(image.unsqueeze(0), tile=args.tile, overlap=args.overlap,
                             progress=True)[0]
    save_image(output, out)
    written = [str(out)]
    if strip_path is not None:
        source = (image.float() / 255.0).unsqueeze(0).to(model.device)  # (1, C, H, W)
        save_image(translation_strip(model, source), strip_path, scale=args.scale)
        written.append(str(strip_path))
    print(f"translated {args.input} ({image.shape[-1]}x{image.shape[-2]}) with {model.name}: "
          f"{' and '.join(written)}")
    return 0
