"""``rnnimg segment`` and ``rnnimg translate``: one image in, images out (a mask and an overlay;
an output and a strip of the refinement steps)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rnnimg.cli.common import (
    IMAGE_SUFFIXES,
    Outputs,
    add_device_arg,
    add_tile_args,
    out_of_memory_hint,
    positive_int,
    resolve_device,
)


def _image_verb(sub, name: str, help: str, description: str, models: str, input_help: str,
                output: str, output_help: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("run_dir", metavar="RUN", help=f"run folder (or pretrained:NAME) of a {models} model")
    p.add_argument("input", metavar="INPUT", help=input_help)
    p.add_argument("-o", "--output", default=output, help=f"{output_help} (default {output})")
    return p


def _overwrite_tile_and_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_tile_args(p)
    add_device_arg(p)


def register(sub) -> None:
    p = _image_verb(
        sub, "segment", "label every pixel of an image (reseg, scanseg, unet)",
        "Segment INPUT with the model in RUN. Writes the class labels as an index PNG of INPUT's "
        "size (pixel value = class, shown in the PASCAL VOC palette), and with --overlay the image "
        "under its labels with a legend naming the classes. The image is resized to the model's "
        "training size and the labels resized back with nearest neighbour (--no-resize runs at "
        "INPUT's own size).",
        "reseg, scanseg or unet", "an image file (png, jpg, ...)", "mask.png", "mask file, an index PNG")
    p.add_argument("--overlay", help="also write the image under its labels, with a legend")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge the overlay's pixels "
                   "(default 2)")
    p.add_argument("--no-resize", action="store_true", help="segment at INPUT's own size instead "
                   "of the model's training size")
    _overwrite_tile_and_device(p)
    p.set_defaults(run=cmd_segment)

    p = _image_verb(
        sub, "translate", "translate, restore or upscale an image (denoise, inpaint, colorize, A -> B, "
        "super-resolution)",
        "Run the translate-task model in RUN (translator, dncnn; recursr, espcn upscale) on INPUT and "
        "write the output image: the input's size, or the model's scale times it for a "
        "super-resolution model. With --steps, also write a strip: the input, the estimate after "
        "every refinement step (the last is the output).",
        "translator, dncnn, recursr or espcn", "the image to translate (PNG, JPEG, ...)",
        "translated.png", "output image")
    p.add_argument("--steps", metavar="STRIP.png", help="also write the strip of every step here")
    p.add_argument("--scale", type=positive_int, help="enlarge the --steps strip's pixels (default 3); "
                   "not the output's size, which is the model's (a super-resolution model's own scale)")
    _overwrite_tile_and_device(p)
    p.set_defaults(run=cmd_translate)


def _start(args, task: str, out_suffixes: tuple[str, ...], example: str, second_flag: str,
           second: str | None, second_example: str):
    """Check both outputs (before the model loads), load the model, read INPUT: returns
    (outputs, -o path, second path or None, model, image (C, H, W) uint8: a large photo stays at a
    byte a value, rnnimg.tiling)."""
    from rnnimg.data.images import read_image
    from rnnimg.tasks import load_model_for
    from rnnimg.tasks.common import check_image_channels

    outs = Outputs(args.overwrite)
    out = outs.add(args.output, "-o", out_suffixes, example)
    second = outs.add(second, second_flag, IMAGE_SUFFIXES, second_example) if second else None
    model = load_model_for(args.run_dir, task, resolve_device(args.device))
    pixels = read_image(Path(args.input))  # (C, H, W) uint8, grey or RGB as stored
    args.argument_flags = {"image": str(args.input)}  # the task's checks name INPUT's file
    want = model.config.in_channels if task == "translate" else model.config.channels
    check_image_channels(pixels, want)
    return outs, out, second, model, pixels


def _memory_hint(doing: str, image, then: str = "pass a smaller --tile"):
    """Name INPUT's size and the flag that bounds the memory."""
    height, width = image.shape[-2:]
    return out_of_memory_hint(f"{doing} a {width}x{height} image", then)


def write_index_png(labels, path: Path) -> Path:
    """Labels (H, W) in 0..255 as a palette ('P') PNG: the pixel values are the labels, and the
    VOC palette makes them visible; written atomically."""
    import io

    import numpy as np
    from PIL import Image

    from rnnimg.data.segmentation import voc_palette
    from rnnimg.fileio import atomic_write_bytes

    img = Image.fromarray(labels.cpu().numpy().astype(np.uint8), mode="P")
    img.putpalette(voc_palette().reshape(-1).tolist())
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def cmd_segment(args) -> int:
    from rnnimg.tasks import save_picture, segment_image, segmentation_overlay

    # an index PNG holds the labels themselves
    outs, out, overlay, model, image = _start(args, "segment", (".png",), "mask.png", "--overlay",
                                              args.overlay, "overlay.png")
    then = "pass a smaller --tile" if args.no_resize else \
        "pass a smaller image, or --no-resize with --tile (it segments tile by tile)"
    with _memory_hint("segmenting", image, then):
        labels = segment_image(model, image, resize=not args.no_resize, tile=args.tile,
                               overlap=args.overlap, progress=True)  # (H, W)
        picture = segmentation_overlay(model, image.float() / 255.0, labels) \
            if overlay is not None else None
    outs.write(out, lambda tmp: write_index_png(labels, tmp))
    if overlay is not None:
        outs.write(overlay, lambda tmp: save_picture(picture, tmp, scale=args.scale))
    outs.commit()  # the mask and the overlay, or neither
    names = model.class_names
    found = ", ".join(names[k] for k in sorted(int(v) for v in labels.unique()))
    print(f"{out}: {labels.shape[1]}x{labels.shape[0]} labels ({found})")
    if overlay is not None:
        print(f"{overlay}: overlay with legend")
    return 0


def cmd_translate(args) -> int:
    from rnnimg.errors import RnnImgError
    from rnnimg.tasks import translate_image, translation_strip
    from rnnimg.viz import save_image

    outs, out, strip_path, model, image = _start(args, "translate", IMAGE_SUFFIXES, "translated.png",
                                                 "--steps", args.steps, "steps.png")
    if args.scale is not None and strip_path is None:  # not the super-resolution scale: say so
        size = f"{model.scale}x the input's" if model.scale > 1 else "the input's"
        raise RnnImgError(f"--scale only enlarges the pixels of the --steps strip; the output's size is "
                          f"the model's own ({size}); drop --scale, or add --steps STRIP.png.")
    with _memory_hint("translating", image):
        # uint8 in and out, tile by tile (rnnimg.tiling)
        output = translate_image(model, image, tile=args.tile, overlap=args.overlap, progress=True)
        strip = translation_strip(model, (image.float() / 255.0).unsqueeze(0).to(model.device)) \
            if strip_path is not None else None
    outs.write(out, lambda tmp: save_image(output, tmp))
    if strip is not None:
        outs.write(strip_path, lambda tmp: save_image(strip, tmp, scale=args.scale or 3))
    written = outs.commit()  # the output and the strip, or neither
    print(f"translated {args.input} ({image.shape[-1]}x{image.shape[-2]}) with {model.name}: "
          f"{' and '.join(str(p) for p in written)}")
    return 0
