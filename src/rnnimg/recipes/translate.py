"""Recipes of the ``translate`` models: translator, dncnn, recursr, espcn."""

from rnnimg.recipes.registry import Recipe, TrainingDefaults, register_recipe, register_training_defaults

for defaults in (
    TrainingDefaults("translator", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("translator", "denoise", batch_size=32, lr=2e-3),
    TrainingDefaults("translator", "colour", batch_size=32, lr=2e-3),
    TrainingDefaults("translator", "colorize", batch_size=32, lr=2e-3),
    # the matched-size baselines train as the models they are compared with
    TrainingDefaults("dncnn", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("dncnn", "denoise", batch_size=32, lr=2e-3),
    TrainingDefaults("dncnn", "colour", batch_size=32, lr=2e-3),
    TrainingDefaults("dncnn", "colorize", batch_size=32, lr=2e-3),
    TrainingDefaults("recursr", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("recursr", "photos-x4", batch_size=16, lr=1e-3),
    TrainingDefaults("espcn", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("espcn", "photos-x4", batch_size=16, lr=1e-3),
):
    register_training_defaults(defaults)

# denoising mnist-5k at sigma 25, about a minute on two CPU cores
register_recipe(Recipe("translator", "demo", model="translator", preset="denoise", data="mnist-5k",
                       data_options=dict(corrupt="denoise", sigma=25), max_steps=150, batch_size=32, lr=2e-3))
register_recipe(Recipe("translator-denoise", "pretrained", model="translator", preset="denoise",
                       data="mnist-5k",
                       data_options=dict(corrupt="denoise", sigma=25), max_steps=400, batch_size=32, lr=2e-3))

# the debug model upscaling mnist-5k digits x2 (14x14 -> 28x28): the whole-photo test split cannot
# be collated by the demo
register_recipe(Recipe("recursr", "demo", model="recursr", preset="debug", data="mnist-5k",
                       data_options=dict(corrupt="downscale", scale=2), max_steps=300, batch_size=16,
                       lr=3e-3))
# x4 colour photos, 96x96 crops of the 13 training photos; scored on the 5 whole held-out photos
# (they differ in size: evaluate scores them one size at a time)
register_recipe(Recipe("sr-photos-x4", "pretrained", model="recursr", preset="photos-x4", data="photos",
                       data_options=dict(corrupt="downscale", scale=4), max_steps=1500, batch_size=16,
                       lr=1e-3, evaluate=dict(batch_size=1),
                       note="1,500 steps, not the 3,000 first planned: on the shared CPU (load 6-7) 3,000 "
                            "would have taken about an hour"))
