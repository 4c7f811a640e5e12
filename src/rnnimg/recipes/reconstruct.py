"""Recipes of the ``reconstruct`` models: r2n2 and its non-recurrent baseline viewpool."""

from rnnimg.recipes.registry import Recipe, TrainingDefaults, register_recipe, register_training_defaults

for defaults in (
    TrainingDefaults("r2n2", "debug", batch_size=8, lr=2e-3),
    TrainingDefaults("r2n2", "shapes3d", batch_size=16, lr=2e-3),
    TrainingDefaults("viewpool", "debug", batch_size=8, lr=2e-3),
    TrainingDefaults("viewpool", "shapes3d", batch_size=16, lr=2e-3),
):
    register_training_defaults(defaults)

# the debug r2n2 on 200 shapes: 100 steps, so that a scaled-down demo still validates twice
register_recipe(Recipe("r2n2", "demo", model="r2n2", preset="debug", data="shapes3d",
                       data_options=dict(train_size=200, val_size=16), max_steps=100, batch_size=8, lr=2e-3))

# 3D-R2N2 on shapes3d at CPU size (docs/benchmarks.md, "3D reconstruction"): the bench's settings
# (preset shapes3d: pos_weight 3, prior output bias, normalised input grids; batch 16, Adam 2e-3);
# a small validation split, since the trainer validates every epoch
register_recipe(Recipe("r2n2-shapes3d", "pretrained", model="r2n2", preset="shapes3d", data="shapes3d",
                       data_options=dict(train_size=1000, val_size=32), max_steps=800, batch_size=16,
                       lr=2e-3,
                       note="the settings of docs/benchmarks.md's r2n2 vs viewpool pair (plus the trainer's "
                            "gradient clipping at 1) for 800 steps, about twice that pair's 372; "
                            "shapes3d's procedural objects are not ShapeNet, so the IoU does not compare "
                            "with the paper's"))
