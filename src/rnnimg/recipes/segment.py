"""Recipes of the ``segment`` models: reseg, scanseg, unet."""

from rnnimg.recipes.registry import Recipe, TrainingDefaults, register_recipe, register_training_defaults

for defaults in (
    TrainingDefaults("reseg", "debug", batch_size=16, lr=3e-3),
    TrainingDefaults("reseg", "scenes", batch_size=16, lr=3e-3),
    TrainingDefaults("scanseg", "debug", batch_size=16, lr=3e-3),
    TrainingDefaults("scanseg", "scenes", batch_size=16, lr=3e-3),
    TrainingDefaults("unet", "debug", batch_size=16, lr=3e-3),
    TrainingDefaults("unet", "scenes", batch_size=16, lr=3e-3),
):
    register_training_defaults(defaults)

# the scenes network on scenes downscaled to 32x32: ~4x cheaper per step than 64x64
register_recipe(Recipe("reseg", "demo", model="reseg", preset="scenes", overrides=dict(image_size=32),
                       data="mnist-scenes", max_steps=300, batch_size=16, lr=3e-3))
register_recipe(Recipe("reseg-scenes", "pretrained", model="reseg", preset="scenes",
                       overrides=dict(image_size=32), data="mnist-scenes", max_steps=1500, batch_size=16,
                       lr=3e-3))
# as reseg's demo
register_recipe(Recipe("scanseg", "demo", model="scanseg", preset="scenes", overrides=dict(image_size=32),
                       data="mnist-scenes", max_steps=300, batch_size=16, lr=3e-3))
