"""``rnnimg sample`` and ``rnnimg complete`` for voxel generators (voxscan, voxcnn): a grid of
rendered shapes, and with ``--mesh-dir`` one ``.obj`` per sample; completions of a voxel file
(.npy, .npz, .binvox) with their picture and meshes. Called by :mod:`rnnimg.cli.generate_cmds`;
kept apart so that the image paths of ``sample`` and ``complete`` stay as they were."""

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


GRID_SUFFIXES = (".npy", ".npz", ".binvox")
MESH_SUFFIXES = (".obj", ".ply")


def mesh_paths(mesh: str, n: int) -> list[Path]:
    """``--mesh OUT.obj``: OUT.obj for one completion, OUT_000.obj ... for ``n`` of them."""
    path = Path(mesh)
    if n == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{k:03d}{path.suffix}") for k in range(n)]


def complete_volumes_cmd(args) -> int:
    """``rnnimg complete RUN shape.npy``: ``args.n`` completions of a voxel grid by a voxel
    generator, through :func:`rnnimg.tasks.volumes.volume_completion_grid`. Writes the grids
    (-o), the picture (--picture) and the meshes (--mesh): every file or none."""
    import numpy as np
    import torch

    from rnnimg.cli.common import IMAGE_SUFFIXES, Outputs, out_of_memory_hint, resolve_device
    from rnnimg.data.masks import parse_volume_mask
    from rnnimg.errors import RnnImgError
    from rnnimg.geometry.mesh import obj_text, ply_text, voxels_to_mesh
    from rnnimg.geometry.voxio import binvox_bytes, load_voxels
    from rnnimg.tasks import load_model_for, save_picture
    from rnnimg.tasks.volumes import is_volume_model, volume_completion_grid

    outs = Outputs(args.overwrite)  # every output checked before the model loads
    out = outs.add(args.output or "completed.npy", "-o", GRID_SUFFIXES, "completed.npy")
    if out.suffix.lower() == ".binvox" and args.n > 1:
        raise RnnImgError(f"-o {out}: a .binvox file holds one grid, but -n asks for {args.n}; write "
                          ".npy or .npz, or pass -n 1.")
    picture = outs.add(args.picture, "--picture", IMAGE_SUFFIXES, "completions.png") if args.picture else None
    meshes = []
    if args.mesh is not None:
        if Path(args.mesh).suffix.lower() not in MESH_SUFFIXES:  # the name as given, in the message
            Outputs(True).add(args.mesh, "--mesh", MESH_SUFFIXES, "shape.obj")
        meshes = [outs.add(p, "--mesh", MESH_SUFFIXES, "shape.obj") for p in mesh_paths(args.mesh, args.n)]
    device = resolve_device(args.device)
    model = load_model_for(args.run_dir, "complete", device)
    if not is_volume_model(model):
        raise RnnImgError(f"{args.input} is a voxel file, but {args.run_dir} holds a {model.name!r} model, "
                          "which completes images; give it an image file, or give the voxel file to a "
                          "voxel generator's run (voxscan, voxcnn).")
    d = model.config.voxel_size
    voxels = torch.from_numpy(load_voxels(args.input, size=d))  # (D, D, D); one line if not 3-D or not D^3
    spec = args.mask or "upper-half"
    known = parse_volume_mask(spec, d)
    with out_of_memory_hint(f"completing a {d}^3 grid {args.n} times", "pass a smaller -n"):
        gen = torch.Generator(device=device).manual_seed(args.seed)
        done, grid = volume_completion_grid(model, voxels, known, args.n, label=args.label,
                                            temperature=args.temperature, generator=gen,
                                            size=max(64, 2 * d))
    grids = done.numpy().astype(np.float32)  # (n, D, D, D) in {0, 1}
    saved = grids[0] if args.n == 1 else grids
    suffix = out.suffix.lower()
    if suffix == ".npy":
        outs.write(out, lambda tmp: np.save(tmp, saved))  # tmp ends in .npy
    elif suffix == ".npz":
        outs.write(out, lambda tmp: np.savez_compressed(tmp, voxels=saved))
    else:
        outs.write(out, lambda tmp: Path(tmp).write_bytes(binvox_bytes(saved >= 0.5)))
    if picture is not None:
        outs.write(picture, lambda tmp: save_picture(grid, tmp, scale=args.scale or 1))
    for path, volume in zip(meshes, done):
        mesh = voxels_to_mesh(volume)
        text = ply_text(mesh) if path.suffix.lower() == ".ply" else obj_text(mesh)
        outs.write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    outs.commit()
    kept = int(known.sum())
    print(f"{out}: {args.n} completion(s) of {args.input}, shape {tuple(saved.shape)} ({spec} hidden; "
          f"{kept} of {known.numel()} voxels kept as given, thresholded at 0.5)")
    if picture is not None:
        print(f"{picture}: the known voxels, then the completions (two cameras)")
    if meshes:
        print(f"{meshes[0]}{' ...' if len(meshes) > 1 else ''}: {len(meshes)} mesh(es)")
    return 0
