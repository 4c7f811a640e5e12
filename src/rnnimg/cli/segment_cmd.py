"""``rnnimg segment``: label every pixel of an image with a trained segmentation model."""

from __future__ import annotations

from pathlib import Path

from rnnimg.cli.common import add_device_arg, add_tile_args, check_output, positive_int, resolve_device


def register(sub) -> None:
    p = sub.add_parser(
        "segment", help="label every pixel of an image (reseg, unet)",
        description="Segment INPUT with the model in RUN. Writes the class labels as an index PNG "
                    "of INPUT's size (pixel value = class, shown in the PASCAL VOC palette), and "
                    "with --overlay the image under its labels with a legend naming the classes. "
                    "The image is resized to the model's training size and the labels resized "
                    "back with nearest neighbour (--no-resize runs at INPUT's own size).")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or pretrained:NAME) of a reseg or "
                   "unet model")
    p.add_argument("input", metavar="INPUT", help="an image file (png, jpg, ...)")
    p.add_argument("-o", "--output", default="mask.png", help="mask file, an index PNG "
                   "(default mask.png)")
    p.add_argument("--overlay", help="also write the image under its labels, with a legend")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge the overlay's pixels "
                   "(default 2)")
    p.add_argument("--no-resize", action="store_true", help="segment at INPUT's own size instead "
                   "of the model's training size")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_tile_args(p)
    add_device_arg(p)
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
    from rnnimg.data.images import read_image
    from rnnimg.errors import RnnImgError
    from rnnimg.tasks import load_model_for, save_picture, segment_image, segmentation_overlay

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        raise RnnImgError(f"-o {out}: the mask is an index PNG; use a .png file name.")
    check_output(out, args.overwrite)
    if args.overlay:
        if Path(args.overlay).resolve() == out.resolve():
            raise RnnImgError("--overlay and -o name the same file; choose two names.")
        check_output(args.overlay, args.overwrite)
    model = load_model_for(args.run_dir, "segment", resolve_device(args.device))
    pixels = read_image(Path(args.input))  # (C, H, W) uint8, its own channel count
    want = model.config.channels
    if pixels.shape[0] != want:
        kind = {1: "grey", 3: "colour"}
        raise RnnImgError(f"{args.input} is a {kind[pixels.shape[0]]} image, but the model takes "
                          f"{kind[want]} images; convert it to {kind[want]} first.")
    labels = segment_image(model, pixels, resize=not args.no_resize, tile=args.tile,
                           overlap=args.overlap, progress=True)  # (H, W)
    write_index_png(labels, out)
    names = model.class_names
    found = ", ".join(names[k] for k in sorted(int(v) for v in labels.unique()))
    print(f"{out}: {labels.shape[1]}x{labels.shape[0]} labels ({found})")
    if args.overlay:
        image = pixels.float() / 255.0
        path = save_picture(segmentation_overlay(model, image, labels), args.overlay,
                            scale=args.scale)
        print(f"{path}: overlay with legend")
    return 0
