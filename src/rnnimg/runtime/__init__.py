"""How inference steps run: static buffers replayed as CUDA graphs (:mod:`rnnimg.runtime.graphs`),
the ``graph`` and ``compile`` options of the inference verbs (:mod:`rnnimg.runtime.options`), and
the one adapter to torch's private modules (:mod:`rnnimg.runtime.torch_compat`).

A ground floor beside ``fileio``: it imports torch and ``rnnimg.errors`` only, so the building
blocks of ``rnnimg.nn`` and the models both use it."""
