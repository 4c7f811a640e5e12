"""``rnnimg sample``: draw images from a trained generator."""

from __future__ import annotations

from rnnimg.cli.common import add_device_arg, check_output, positive_int, resolve_device


def register(sub) -> None:
    p = sub.add_parser("sample", help="draw new images from a trained generator",
                       description="Sample N images from the generator in RUN and write them as one "
                                   "grid picture.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or any folder with config.json + "
                   "model.safetensors)")
    p.add_argument("-n", type=positive_int, default=64, help="number of images (default 64)")
    p.add_argument("-o", "--output", default="samples.png", help="grid file (default samples.png)")
    p.add_argument("--seed", type=int, default=0, help="seed for the draw (default 0)")
    p.add_argument("--temperature", type=float, default=1.0,
                   help="divide the logits by T: < 1 is more conservative, > 1 more varied")
    p.add_argument("--label", type=int, help="class to draw, for a class-conditional model")
    p.add_argument("--nrow", type=positive_int, default=8, help="images per grid row (default 8)")
    p.add_argument("--scale", type=positive_int, default=2, help="enlarge pixels (default 2)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_device_arg(p)
    p.set_defaults(run=cmd_sample)


def cmd_sample(args) -> int:
    import torch

    from rnnimg.models.base import ImageGenerator, load_pretrained
    from rnnimg.viz import make_grid, save_image

    out = check_output(args.output, args.overwrite)
    device = resolve_device(args.device)
    model = load_pretrained(args.run_dir, map_location=device)
    if not isinstance(model, ImageGenerator):
        from rnnimg.errors import RnnImgError

        raise RnnImgError(f"{args.run_dir} holds a {model.name!r} model ({model.task}), which does "
                          "not sample images; use the command of its task.")
    gen = torch.Generator(device=device).manual_seed(args.seed)
    images = model.sample(args.n, label=args.label, temperature=args.temperature, generator=gen)
    save_image(make_grid(images, nrow=args.nrow), out, scale=args.scale)
    print(f"wrote {args.n} samples to {out}")
    return 0
