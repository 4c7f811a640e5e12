"""Recipes of the ``predict`` models: convlstm, predrnn, convscan, svg."""

from rnnimg.recipes.registry import Recipe, TrainingDefaults, register_recipe, register_training_defaults

for defaults in (
    TrainingDefaults("convlstm", "debug", batch_size=8, lr=3e-3),
    # OpenSTL trains the mmnist models with Adam, lr 5e-4, batch 16.
    TrainingDefaults("convlstm", "mmnist", batch_size=16, lr=5e-4),
    TrainingDefaults("predrnn", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("predrnn", "mmnist", batch_size=16, lr=5e-4),
    TrainingDefaults("predrnn", "mmnist-v2", batch_size=16, lr=5e-4),
    TrainingDefaults("convscan", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("convscan", "mmnist", batch_size=16, lr=5e-4),
    TrainingDefaults("convscan", "mmnist-90", batch_size=8, lr=5e-4),
    TrainingDefaults("convscan", "mmnist-400", batch_size=4, lr=5e-4),
    TrainingDefaults("svg", "debug", batch_size=8, lr=3e-3),
    TrainingDefaults("svg", "smmnist", batch_size=16, lr=2e-3),
):
    register_training_defaults(defaults)

# --- convlstm -----------------------------------------------------------------------------------
# the debug stack on 32x32 Moving MNIST, 5 -> 5 frames, short epochs so that validation (fixed
# clips of training digits) runs a few times
register_recipe(Recipe("convlstm", "demo", model="convlstm", preset="debug", data="moving-mnist",
                       overrides=dict(frame_size=32, patch=4, context=5, horizon=5),
                       data_options=dict(train_clips=800, val_clips=64), max_steps=800, batch_size=8))
# standard 64x64 Moving MNIST, 10 -> 10, with a stack small enough for a CPU (2 x 32, kernel 3,
# patch 8); scored on 1,000 fixed test clips
register_recipe(Recipe("convlstm-mmnist", "pretrained", model="convlstm", preset="debug", data="moving-mnist",
                       overrides=dict(frame_size=64, patch=8, context=10, horizon=10, hidden_size=32,
                                      num_layers=2, kernel_size=3),
                       data_options=dict(train_clips=4000, val_clips=64, test_clips=1000),
                       max_steps=600, batch_size=16, lr=2e-3, evaluate=dict(batch_size=50)))

# --- predrnn ------------------------------------------------------------------------------------
# as convlstm's demo; eta reaches 0 by step 400 (the paper's 2e-5 per step would keep the demo
# teacher-forced throughout)
register_recipe(Recipe("predrnn", "demo", model="predrnn", preset="debug", data="moving-mnist",
                       overrides=dict(frame_size=32, patch=4, context=5, horizon=5, sampling_decay=2.5e-3),
                       data_options=dict(train_clips=800, val_clips=64), max_steps=500, batch_size=8))
# the same small stack and data as convlstm-mmnist, half the steps (a PredRNN step costs about
# twice a ConvLSTM step on the CPU); eta reaches 0 at step 200 of 300
register_recipe(Recipe("predrnn-mmnist", "pretrained", model="predrnn", preset="debug", data="moving-mnist",
                       overrides=dict(frame_size=64, patch=8, context=10, horizon=10, hidden_size=32,
                                      num_layers=2, kernel_size=3, sampling_decay=5e-3),
                       data_options=dict(train_clips=4000, val_clips=64, test_clips=1000),
                       max_steps=300, batch_size=16, lr=2e-3, evaluate=dict(batch_size=50)))

# --- convscan -----------------------------------------------------------------------------------
# as convlstm's demo (debug stack, 32x32 Moving MNIST, 5 -> 5 frames)
register_recipe(Recipe("convscan", "demo", model="convscan", preset="debug", data="moving-mnist",
                       overrides=dict(frame_size=32, patch=4, context=5, horizon=5, closed_loop=4),
                       data_options=dict(train_clips=800, val_clips=64), max_steps=800, batch_size=8))

# --- svg ----------------------------------------------------------------------------------------
# the debug model on 32x32 Stochastic Moving MNIST, 3 -> 5 frames
register_recipe(Recipe("svg", "demo", model="svg", preset="debug", data="stochastic-moving-mnist",
                       overrides=dict(frame_size=32, patch=4, levels=2, context=3, horizon=5),
                       data_options=dict(num_digits=1, train_clips=800, val_clips=64), max_steps=600,
                       batch_size=8))
# the benchmark's CPU-sized model (patch 4, 16-32-64 channels, LSTMs of 128) on 64x64 Stochastic
# Moving MNIST, 5 -> 10; scored with 20 futures per clip on 256 fixed test clips
register_recipe(Recipe("svg-smmnist", "pretrained", model="svg", preset="smmnist",
                       data="stochastic-moving-mnist",
                       overrides=dict(patch=4, levels=2, features=16, rnn_size=128),
                       data_options=dict(train_clips=16000, val_clips=64, test_clips=256),
                       max_steps=1000, batch_size=16, lr=2e-3,
                       evaluate=dict(batch_size=32, options={"samples": 20})))
