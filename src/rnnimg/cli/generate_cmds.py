"""``rnnimg sample`` and ``rnnimg complete``: draw images, or fill in hidden parts of one."""

from __future__ import annotations

from rnnimg.cli.common import (
    IMAGE_SUFFIXES,
    Outputs,
    add_device_arg,
    check_scale,
    out_of_memory_hint,
    positive_int,
    resolve_device,
)


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images (or shapes) from a trained generator",
                       description="Sample N images from the generator in RUN and write them as one "
                                   "grid picture; a voxel generator's N shapes are rendered into the "
                                   "grid (and written as meshes with --mesh-dir).")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or any folder with config.json + "
                   "model.safetensors)")
    p.add_argument("-n", type=positive_int, default=64, help="number of images or shapes (default 64)")
    p.add_argument("-o", "--output", default="samples.png", help="grid file (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="seed for the draw (default 0)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T (0 < T <= 10): < 1 is more conservative, > 1 "
                        "more varied")
    p.add_argument("--label", help="class to draw, for a class-conditional model: its index, or "
                   "its name for a voxel generator (e.g. chair)")
    p.add_argument("--mesh-dir", metavar="DIR", help="voxel generators: also write each sample as "
                   "DIR/sample_000.obj ... (marching cubes)")
    p.add_argument("--text", help="caption to draw, for a caption model (draw --preset captions), "
                   "e.g. \"the digit 7 is at the top left\"")
    p.add_argument("--low-res", metavar="IMAGE", help="draw N high-resolution versions of this small "
                   "image, for a model trained with --set low_res_scale=S (the image is the model's "
                   "size / S); the grid starts with its bicubic upscale")
    p.add_argument("--animate", metavar="GIF", help="also write the drawing as an animation, with "
                   "the write window on each frame (models that draw in steps: draw)")
    p.add_argument("--nrow", type=positive_int, default=8, help="images per grid row (default 8)")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge pixels (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_device_arg(p)
    p.set_defaults(run=cmd_sample)
    register_complete(sub)


def cmd_sample(args) -> int:
    import torch

    from rnnimg.limits import check_seed
    from rnnimg.tasks import drawing_animation, draws_in_steps, load_model_for, sample_grid, save_picture

    check_seed(args.seed)
    check_scale(args.scale)
    outs = Outputs(args.overwrite)  # every output checked before the model loads
    out = outs.add(args.output, "-o", IMAGE_SUFFIXES, "grid.png")
    gif = outs.add(args.animate, "--animate", (".gif",), "drawing.gif") if args.animate else None
    device = resolve_device(args.device)
    model = load_model_for(args.run_dir, "sample", device)
    if hasattr(model.config, "voxel_size"):  # a voxel generator: rendered shapes and meshes
        from rnnimg.cli.volume_cmds import sample_volumes_cmd

        return sample_volumes_cmd(args, model, outs, out, device)
    if args.mesh_dir is not None:
        from rnnimg.errors import RnnImgError

        raise RnnImgError(f"a {model.name!r} model draws images, not shapes; drop --mesh-dir "
                          "(voxel generators such as voxscan write meshes).")
    args.label = image_label(args.label)
    if gif is not None and not draws_in_steps(model):
        from rnnimg.errors import RnnImgError

        raise RnnImgError(f"a {model.name!r} model does not draw in steps, so --animate has nothing "
                          "to show; drop it (draw models can).")
    low_res = None
    if args.low_res is not None:
        from rnnimg.data.images import read_image

        low_res = read_image(args.low_res).float().div(255)  # (C, h, w), checked by sample_grid
    side = model.config.image_size
    with out_of_memory_hint(f"drawing {args.n} images of {side}x{side}", "pass a smaller -n"):
        gen = torch.Generator(device=device).manual_seed(args.seed)
        grid = sample_grid(model, args.n, label=args.label, text=args.text,
                           temperature=args.temperature, generator=gen, nrow=args.nrow,
                           low_res=low_res)
        frames = None
        if gif is not None:  # the same draws again, step by step
            gen = torch.Generator(device=device).manual_seed(args.seed)
            frames = drawing_animation(model, args.n, label=args.label, text=args.text,
                                       temperature=args.temperature, generator=gen, nrow=args.nrow)
    outs.write(out, lambda tmp: save_picture(grid, tmp, scale=args.scale))
    if frames is not None:
        outs.write(gif, lambda tmp: save_picture(frames, tmp, scale=args.scale))
    outs.commit()  # both files, or neither
    print(f"wrote {args.n} samples to {out}" + (" (after the bicubic upscale of the input)"
                                                if low_res is not None else ""))
    if frames is not None:
        print(f"wrote the drawing ({len(frames)} frames) to {gif}")
    return 0


def image_label(label: str | None) -> int | None:
    """--label of an image generator: a class index."""
    if label is None:
        return None
    try:
        return int(label)
    except ValueError:
        from rnnimg.errors import RnnImgError

        raise RnnImgError(f"--label {label!r} is not a class index; image generators take a number "
                          "(e.g. --label 3).") from None


def register_complete(sub) -> None:
    p = sub.add_parser(
        "complete", help="fill in the hidden part of an image or a voxel grid",
        description="Hide part of INPUT with --mask and let the model in RUN draw the hidden part N "
                    "times; the known part comes back unchanged. An image (pixelrnn, pixelscan): "
                    "writes one grid, the occluded input (hidden part grey) then the N completions; "
                    "for a model trained on binarized data the input is thresholded at 0.5, "
                    "otherwise quantized to the model's levels. A voxel file (.npy, .npz, .binvox; "
                    "voxscan, voxcnn): writes the N completed grids (-o), and optionally a picture "
                    "of the known voxels then the completions from two cameras (--picture) and "
                    "meshes (--mesh); the grid is thresholded at 0.5.")
    p.add_argument("run_dir", metavar="RUN", help="run folder of a model that can complete (pixelrnn, "
                   "pixelscan; voxscan, voxcnn for voxel files)")
    p.add_argument("input", metavar="INPUT", help="image file of the model's size and channels, or a "
                   "voxel file (.npy, .npz, .binvox) of a voxel generator's size")
    p.add_argument("--mask", help="the hidden part. Images: bottom-half (default), right-half, "
                   "box:x,y,w,h, or a mask PNG of the image's size (white = hidden). Voxel grids: "
                   "upper-half (default; the generators draw from the floor up), lower-half, "
                   "front-half, back-half, left-half, right-half, box:x,y,z,w,h,d, or a mask grid "
                   "(.npy/.npz/.binvox) of the grid's size (nonzero = hidden)")
    p.add_argument("-n", type=positive_int, default=8, help="number of completions (default 8)")
    p.add_argument("-o", "--output", help="images: the grid picture (default completions.png); voxel "
                   "files: the completed grids, .npy or .npz holding (N, D, D, D), or (D, D, D) "
                   "with -n 1, or .binvox with -n 1 (default completed.npy)")
    p.add_argument("--picture", metavar="GRID.png", help="voxel files: also write the known voxels "
                   "and the completions, rendered from two cameras")
    p.add_argument("--mesh", metavar="OUT.obj", help="voxel files: also write each completion as a "
                   "mesh (.obj or .ply; with -n > 1, OUT_000.obj, OUT_001.obj, ...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=1.0, help="divide the logits by T (0 < T <= 10)")
    p.add_argument("--label", help="class, for a class-conditional model: its index, or its name for "
                   "a voxel generator (e.g. chair)")
    p.add_argument("--low-res", metavar="IMAGE", help="the small image every completion is drawn "
                   "given, for a model trained with --set low_res_scale=S (INPUT's size / S; "
                   "e.g. INPUT's own downscale)")
    p.add_argument("--scale", type=positive_int, help="enlarge the picture's pixels (default 3 for "
                   "images, 1 for the voxel picture)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_device_arg(p)
    p.set_defaults(run=cmd_complete)


def cmd_complete(args) -> int:
    from pathlib import Path

    import torch

    from rnnimg.data.images import read_image
    from rnnimg.data.masks import parse_mask
    from rnnimg.errors import RnnImgError
    from rnnimg.geometry.voxio import VOXEL_SUFFIXES
    from rnnimg.limits import check_seed
    from rnnimg.tasks import completion_grid, load_model_for, quantize_for_model, save_picture
    from rnnimg.tasks.volumes import is_volume_model

    args.argument_flags = {"known": "--mask", "image": str(args.input)}
    check_seed(args.seed)
    if args.scale is not None:
        check_scale(args.scale)
    if Path(args.input).suffix.lower() in VOXEL_SUFFIXES:  # a voxel grid, for a voxel generator
        from rnnimg.cli.volume_cmds import complete_volumes_cmd

        if args.low_res is not None:
            raise RnnImgError("--low-res is for images drawn from a small image; a voxel grid is "
                              "completed from its known voxels alone, so drop --low-res.")
        return complete_volumes_cmd(args)
    for flag, value in (("--picture", args.picture), ("--mesh", args.mesh)):
        if value is not None:
            raise RnnImgError(f"{flag} is for voxel files (.npy, .npz, .binvox); an image's completions "
                              f"are the -o picture, so drop {flag}.")
    outs = Outputs(args.overwrite)
    out = outs.add(args.output or "completions.png", "-o", IMAGE_SUFFIXES, "completions.png")
    device = resolve_device(args.device)
    model = load_model_for(args.run_dir, "complete", device)
    if is_volume_model(model):
        raise RnnImgError(f"{args.run_dir} holds a {model.name!r} voxel generator, which completes voxel "
                          f"grids, not the image {args.input}; give it a {', '.join(VOXEL_SUFFIXES)} file.")
    label = image_label(args.label)
    image = read_image(args.input).float().div(255).unsqueeze(0).to(device)  # (1, C, H, W)
    model.check_image(image, what=str(args.input))
    height, width = image.shape[-2:]
    low_res = None if args.low_res is None else read_image(args.low_res).float().div(255).to(device)
    with out_of_memory_hint(f"completing a {width}x{height} image {args.n} times", "pass a smaller -n"):
        image = quantize_for_model(model, image)
        known = parse_mask(args.mask or "bottom-half", height, width).to(device)
        gen = torch.Generator(device=device).manual_seed(args.seed)
        grid = completion_grid(model, image, known.unsqueeze(0), args.n, gen,
                               temperature=args.temperature, label=label, low_res=low_res)
    outs.write(out, lambda tmp: save_picture(grid, tmp, scale=args.scale or 3))
    outs.commit()
    print(f"wrote the occluded input and {args.n} completions to {out}")
    return 0
