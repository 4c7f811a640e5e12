"""``rnnimg segment``: label every pixel of an image with a trained segmentation model."""

from __future__ import annotations

from pathlib import Path

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
        "segment", help="label every pixel of an image (reseg, unet)",
        description="Segment INPUT with the model in RUN. Writes the class labels as an index PNG "
                    "of INPUT's size (pixel value = class, shown in the PASCAL VOC palette), and "
                    "with --overlay the image under its labels with a legend naming the classes. "
                    "The image is resized to the model's training size and the labels resized "
                    "back with nearest neighbour (--no-resize runs at INPUT's own size).")
    add_image_io_args(p, "run folder (or pretrained:NAME) of a reseg or unet model",
                      "an image file (png, jpg, ...)", "mask.png", "mask file, an index PNG")
    p.add_argument("--overlay", help="also write the image under its labels, with a legend")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge the overlay's pixels "
                   "(default 2)")
    p.add_argument("--no-resize", action="store_true", help="segment at INPUT's own size instead "
                   "of the model's training size")
    add_overwrite_and_device(p)
    p.set_defaults(run=cmd_segment)


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
    from rnnimg.tasks import load_model_for, save_picture, segment_image, segmentation_overlay

    outs = Outputs(args.overwrite)  # both outputs checked before the model loads
    out = outs.add(args.output, "-o", (".png",), "mask.png")  # an index PNG holds the labels
    overlay = outs.add(args.overlay, "--overlay", IMAGE_SUFFIXES, "overlay.png") if args.overlay else None
    model = load_model_for(args.run_dir, "segment", resolve_device(args.device))
    image = read_input_image(args.input, model.config.channels)  # (C, H, W)
    then = "drop --no-resize (it segments at the model's training size), or pass a smaller " \
           "image" if args.no_resize else "pass a smaller image"
    with image_memory_hint("segmenting", image, then):
        labels = segment_image(model, image, resize=not args.no_resize)  # (H, W)
        picture = segmentation_overlay(model, image, labels) if overlay is not None else None
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
