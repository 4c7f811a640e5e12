"""``rnnimg sample`` for voxel generators (voxscan, voxcnn): a grid of rendered shapes, and with
``--mesh-dir`` one ``.obj`` per sample. Called by :mod:`rnnimg.cli.generate_cmds`; kept apart so
that the image path of ``sample`` stays as it was."""

from __future__ import annotations

from pathlib import Path


def sample_volumes_cmd(args, model, outs, out: Path, device) -> int:
    """Draw ``args.n`` shapes (``--label``: index or class name), write the grid of renders to
    ``out`` and, with ``--mesh-dir``, DIR/sample_NNN.obj; every file or none."""
    import torch

    from rnnimg.cli.common import out_of_memory_hint
    from rnnimg.errors import RnnImgError
    from rnnimg.geometry.mesh import obj_text, voxels_to_mesh
    from rnnimg.tasks import save_picture
    from rnnimg.tasks.volumes import sample_volumes, volume_grid

    if args.animate or args.text or args.low_res:
        raise RnnImgError(f"a {model.name!r} model draws shapes voxel by voxel; drop --animate, --text "
                          "and --low-res.")
    label = model.label_index(args.label) if args.label is not None else None  # names checked early
    meshes = []
    if args.mesh_dir is not None:
        folder = Path(args.mesh_dir)
        if folder.exists() and not folder.is_dir():
            raise RnnImgError(f"--mesh-dir {folder} is a file; name a folder for the .obj files.")
        meshes = [outs.add(folder / f"sample_{k:03d}.obj", "--mesh-dir", (".obj",)) for k in range(args.n)]
    d = model.config.voxel_size
    with out_of_memory_hint(f"drawing {args.n} shapes of {d}^3", "pass a smaller -n"):
        gen = torch.Generator(device=device).manual_seed(args.seed)
        volumes = sample_volumes(model, args.n, label=label, temperature=args.temperature,
                                 generator=gen).cpu()
    grid = volume_grid(volumes, size=max(64, 2 * d), nrow=args.nrow)
    outs.write(out, lambda tmp: save_picture(grid, tmp, scale=1))
    for path, volume in zip(meshes, volumes):
        text = obj_text(voxels_to_mesh(volume))
        outs.write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    outs.commit()
    print(f"wrote {args.n} rendered shapes to {out}")
    if meshes:
        print(f"wrote {len(meshes)} meshes to {args.mesh_dir}/sample_000.obj ...")
    return 0
