"""Recipes of the ``generate`` models: rowrnn, pixelrnn, pixelscan, multiscale, draw."""

from rnnimg.recipes.registry import Recipe, TrainingDefaults, register_recipe, register_training_defaults

for defaults in (
    TrainingDefaults("rowrnn", "debug", batch_size=32, lr=3e-3),
    TrainingDefaults("rowrnn", "mnist", batch_size=64, lr=1e-3),
    TrainingDefaults("pixelrnn", "debug", batch_size=32, lr=3e-3),
    TrainingDefaults("pixelrnn", "mnist", batch_size=16, lr=1e-3),
    TrainingDefaults("pixelrnn", "cifar10", batch_size=16, lr=1e-3),
    TrainingDefaults("pixelscan", "debug", batch_size=32, lr=3e-3),
    TrainingDefaults("pixelscan", "mnist", batch_size=16, lr=2e-3),
    TrainingDefaults("pixelscan", "cifar10", batch_size=16, lr=1e-3),
    TrainingDefaults("multiscale", "debug", batch_size=32, lr=3e-3),
    TrainingDefaults("multiscale", "shapes", batch_size=16, lr=2e-3),
    TrainingDefaults("multiscale", "shapes64", batch_size=8, lr=2e-3),
    TrainingDefaults("draw", "debug", batch_size=32, lr=3e-3),
    TrainingDefaults("draw", "mnist", batch_size=64, lr=1e-3),
    TrainingDefaults("draw", "colour", batch_size=32, lr=1e-3),
    TrainingDefaults("draw", "captions", batch_size=64, lr=1e-3),
):
    register_training_defaults(defaults)

# --- rowrnn -------------------------------------------------------------------------------------
register_recipe(Recipe("rowrnn", "demo", model="rowrnn", preset="mnist", overrides=dict(num_classes=0),
                       data="mnist-5k", max_steps=400, batch_size=32, lr=2e-3))
# the article's model on mnist-5k, 256 levels
register_recipe(Recipe("rowrnn-mnist", "pretrained", model="rowrnn", preset="mnist", data="mnist-5k",
                       max_steps=800, batch_size=32, lr=2e-3))

# --- pixelrnn -----------------------------------------------------------------------------------
# The demo trains the paper's mnist stack with Row LSTM layers: ~4x faster per step on a CPU.
register_recipe(Recipe("pixelrnn", "demo", model="pixelrnn", preset="mnist",
                       overrides=dict(variant="row", num_classes=0), data="mnist-5k", max_steps=300,
                       batch_size=16, lr=2e-3))
# the paper's mnist stack (7 layers, h = 16) with Row LSTM layers, ~4x cheaper per step than the
# Diagonal BiLSTM on a CPU
register_recipe(Recipe("pixelrnn-mnist", "pretrained", model="pixelrnn", preset="mnist",
                       overrides=dict(variant="row"), data="mnist-5k", max_steps=1200, batch_size=16,
                       lr=1e-3))

# --- pixelscan ----------------------------------------------------------------------------------
register_recipe(Recipe("pixelscan", "demo", model="pixelscan", preset="mnist", overrides=dict(num_classes=0),
                       data="mnist-5k", max_steps=300, batch_size=16, lr=2e-3))
register_recipe(Recipe("pixelscan-mnist", "pretrained", model="pixelscan", preset="mnist", data="mnist-5k",
                       max_steps=600, batch_size=16, lr=2e-3))

# --- draw ---------------------------------------------------------------------------------------
# small, no attention: early on the 2x2 read starves the encoder, the KL collapses (benchmarks.md)
register_recipe(Recipe("draw", "demo", model="draw", preset="mnist",
                       overrides=dict(steps=16, enc_hidden=128, dec_hidden=128, z_size=32, attention=False,
                                      num_classes=0),
                       data="mnist-5k", max_steps=200, batch_size=64, lr=3e-3))
# attention on; scored with the importance-weighted estimate of 10 draws
register_recipe(Recipe("draw-mnist", "pretrained", model="draw", preset="mnist",
                       overrides=dict(steps=16, enc_hidden=128, dec_hidden=128, z_size=32), data="mnist-5k",
                       max_steps=1500, batch_size=64, lr=1e-3,
                       evaluate=dict(options=dict(importance_samples=10))))
# alignDRAW, CPU-sized (T = 16, 128 units; docs/benchmarks.md, "Captions"): ~9 min
register_recipe(Recipe("draw-captions", "pretrained", model="draw", preset="captions",
                       overrides=dict(steps=16, enc_hidden=128, dec_hidden=128, z_size=32),
                       data="mnist-captions", max_steps=2400, batch_size=32, lr=3e-3))

# the voxel generators (shapes3d voxels) and their matched-size baseline train alike
for model in ("voxscan", "voxcnn"):
    for defaults in (TrainingDefaults(model, "debug", batch_size=8, lr=3e-3),
                     TrainingDefaults(model, "shapes16", batch_size=8, lr=3e-3),
                     TrainingDefaults(model, "shapes32", batch_size=4, lr=2e-3)):
        register_training_defaults(defaults)

# the debug voxel generator on 200 shapes of 8^3 (its preset's size): a few seconds, and a preview of
# rendered samples that is quick to draw (the 32^3 preset's takes minutes on a CPU)
register_recipe(Recipe("voxscan", "demo", model="voxscan", preset="debug", data="shapes3d",
                       data_options=dict(train_size=200, val_size=16, voxel_size=8, num_views=1,
                                         view_size=16),
                       max_steps=100, batch_size=8, lr=3e-3))
# the shipped voxel generator: class-conditional voxscan at 16^3 on shapes3d's 2,000 training shapes
# (one 8x8 view each: it reads only the voxels), trained in one timing-lock hold of under 10 min
register_recipe(Recipe("voxscan-shapes3d", "pretrained", model="voxscan", preset="shapes16", data="shapes3d",
                       data_options=dict(voxel_size=16, num_views=1, view_size=8), max_steps=1200,
                       batch_size=8, lr=3e-3))
