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
