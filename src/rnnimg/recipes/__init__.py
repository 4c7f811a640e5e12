"""How rnnimg trains its models: typed recipes (``demo``, ``pretrained``) and each preset's training
defaults, one module per task, kept out of the model classes (see :mod:`rnnimg.recipes.registry`).

    from rnnimg.recipes import get_recipe, list_recipes
    recipe = get_recipe("pixelrnn-mnist", kind="pretrained")
    TrainSettings(**recipe.settings(), out="runs/x")
"""

from rnnimg.recipes.registry import (
    KINDS,
    Recipe,
    TrainingDefaults,
    get_recipe,
    list_recipes,
    register_recipe,
    register_training_defaults,
    training_defaults,
)

# Importing a task's module registers its entries.
from rnnimg.recipes import generate, predict, reconstruct, segment, translate  # noqa: E402, F401  isort: skip

__all__ = ["KINDS", "Recipe", "TrainingDefaults", "get_recipe", "list_recipes", "register_recipe",
           "register_training_defaults", "training_defaults"]
