"""``rnnimg translate``: restore or translate one image with a trained translate-task model."""

from __future__ import annotations

from rnnimg.cli.common import (
    IMAGE_SUFFIXES,
    Outputs,
    add_image_io_args,
    add_overwrite_and_device,
    image_memory_hint,
    positive_int,
    read_input_image,
    resolve_device,
)


def register(sub) -> None:
    p = sub.add_parser(
        "translate", help="translate or restore an image (denoise, inpaint, colorize, A -> B)",
        description="Run the translate-task model in RUN (translator, dncnn) on INPUT and write the "
                    "output image. With --steps, also write a strip: the input, the estimate after "
                    "every refinement step (the last is the output).")
    add_image_io_args(p, "run folder (or pretrained:NAME) of a translator or dncnn model",
                      "the image to translate (PNG, JPEG, ...)", "translated.png", "output image")
    p.add_argument("--steps", metavar="STRIP.png", help="also write the strip of every step here")
    p.add_argument("--scale", type=positive_int, default=3, help="enlarge the strip's pixels "
                   "(default 3; the output keeps the input's size)")
    add_overwrite_and_device(p)
    p.set_defaults(run=cmd_translate)


def cmd_translate(args) -> int:
    from rnnimg.tasks import load_model_for, translation_strip
    from rnnimg.viz import save_image

    outs = Outputs(args.overwrite)  # both outputs checked before the model loads
    out = outs.add(args.output, "-o", IMAGE_SUFFIXES, "translated.png")
    strip_path = outs.add(args.steps, "--steps", IMAGE_SUFFIXES, "steps.png") if args.steps else None
    model = load_model_for(args.run_dir, "translate", resolve_device(args.device))
    image = read_input_image(args.input, model.config.in_channels)  # (C, H, W)
    with image_memory_hint("translating", image):
        source = image.unsqueeze(0).to(model.device)  # (1, C, H, W)
        output = model.translate(source)[0].cpu()
        strip = translation_strip(model, source) if strip_path is not None else None
    outs.write(out, lambda tmp: save_image(output, tmp))
    if strip is not None:
        outs.write(strip_path, lambda tmp: save_image(strip, tmp, scale=args.scale))
    written = outs.commit()  # the output and the strip, or neither
    print(f"translated {args.input} ({image.shape[-1]}x{image.shape[-2]}) with {model.name}: "
          f"{' and '.join(str(p) for p in written)}")
    return 0
