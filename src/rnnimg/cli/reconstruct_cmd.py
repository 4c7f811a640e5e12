"""``rnnimg reconstruct``: views of an object in, its shape out (a mesh, and optionally the voxel
grid and a turntable GIF)."""

from __future__ import annotations

from pathlib import Path

from rnnimg.cli.common import IMAGE_SUFFIXES, Outputs, add_device_arg, resolve_device
from rnnimg.errors import RnnImgError


def register(sub) -> None:
    p = sub.add_parser(
        "reconstruct", help="build a 3D shape from one or more views (r2n2, viewpool)",
        description="Reconstruct the object that the views VIEW... show with the model in RUN (r2n2 "
                    "or viewpool), in the order given. Writes a mesh (-o, .obj or .ply, marching "
                    "cubes at --level), and optionally the voxel grid (--voxels, .npy or .binvox) "
                    "and a turntable GIF (--turntable). Views are resized to the model's view size.")
    p.add_argument("run_dir", metavar="RUN", help="run folder (or pretrained:NAME) of an r2n2 or "
                   "viewpool model")
    p.add_argument("views", metavar="VIEW", nargs="+", help="image files of the object, one per view")
    p.add_argument("-o", "--output", default="shape.obj", help="mesh file, .obj or .ply (default shape.obj)")
    p.add_argument("--voxels", metavar="FILE", help="also write the occupancy grid (.npy, or .binvox "
                   "filled at 0.5)")
    p.add_argument("--turntable", metavar="SPIN.gif", help="also write the shape turning once")
    p.add_argument("--level", type=float, default=0.4, help="occupancy at which the surface lies "
                   "(default 0.4, 3D-R2N2's IoU threshold)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    add_device_arg(p)
    p.set_defaults(run=cmd_reconstruct)


def cmd_reconstruct(args) -> int:
    import numpy as np

    from rnnimg.geometry.mesh import obj_text, ply_text, voxels_to_mesh
    from rnnimg.geometry.voxio import binvox_bytes
    from rnnimg.tasks import load_model_for, reconstruct_views, save_picture, shape_turntable
    from rnnimg.tasks.reconstruct import read_views

    if not 0 < args.level < 1:
        raise RnnImgError(f"--level must lie between 0 and 1, got {args.level}.")
    outs = Outputs(args.overwrite)
    mesh_path = outs.add(args.output, "-o", (".obj", ".ply"), "shape.obj")
    voxel_path = outs.add(args.voxels, "--voxels", (".npy", ".binvox"), "shape.npy") if args.voxels else None
    spin_path = outs.add(args.turntable, "--turntable", (".gif",), "spin.gif") if args.turntable else None
    for path in args.views:
        if Path(path).suffix.lower() not in IMAGE_SUFFIXES:
            raise RnnImgError(f"view {path} is not an image file ({', '.join(IMAGE_SUFFIXES[:4])}, ...).")
    model = load_model_for(args.run_dir, "reconstruct", resolve_device(args.device))
    c = model.config
    views = read_views(args.views, c.channels, c.view_size)  # one size, resized to the model's
    prob = reconstruct_views(model, views)[0].cpu()  # (D, D, D)
    mesh = voxels_to_mesh(prob, level=args.level)
    if not len(mesh.faces):
        raise RnnImgError(f"no voxel reaches --level {args.level} (the highest occupancy is "
                          f"{float(prob.max()):.2f}); pass a lower --level. Nothing was written.")
    text = ply_text(mesh) if mesh_path.suffix.lower() == ".ply" else obj_text(mesh)
    outs.write(mesh_path, lambda tmp: Path(tmp).write_text(text))
    if voxel_path is not None:
        grid = prob.numpy().astype(np.float32)
        if voxel_path.suffix.lower() == ".npy":
            outs.write(voxel_path, lambda tmp: np.save(tmp, grid))  # tmp ends in .npy
        else:
            outs.write(voxel_path, lambda tmp: Path(tmp).write_bytes(binvox_bytes(grid >= 0.5)))
    if spin_path is not None:
        frames = shape_turntable(prob, frames=24, size=128, level=args.level)
        outs.write(spin_path, lambda tmp: save_picture(frames, tmp, scale=1, fps=12))
    outs.commit()
    filled = int((prob >= args.level).sum())
    print(f"{mesh_path}: {len(mesh.vertices)} vertices, {len(mesh.faces)} triangles "
          f"({filled} of {prob.numel()} voxels at >= {args.level}, from {len(args.views)} view(s))")
    for path, what in ((voxel_path, "occupancy grid"), (spin_path, "turntable")):
        if path is not None:
            print(f"{path}: {what}")
    return 0
