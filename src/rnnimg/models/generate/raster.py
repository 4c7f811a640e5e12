"""The base class of the pixel-by-pixel generators (``pixelrnn``, ``pixelscan``): sampling and
completion in raster order, shared by every model that predicts each pixel from all earlier ones.

A subclass defines its network (``forward`` returns per-pixel logits) and
:meth:`RasterGenerator.pixel_sampler`, its state-carrying sampler. Everything else lives here,
so the fast and the naive sampler of every such model draw the same uniforms the same way:
one uniform per pixel and channel in raster, then channel, order, turned into a value by the
inverse CDF in :meth:`RasterGenerator.draw`. Equal logits and uniforms give equal pixels, which is
what the tests that compare the two samplers rely on.

On a GPU the cached sampler is launch-bound (50 to 100 tiny kernels per pixel), so
:meth:`RasterGenerator.sample` and :meth:`RasterGenerator.complete` run the whole raster loop as
one :class:`rnnimg.runtime.graphs.StaticStep` over static buffers (canvas, known mask, label, the
pre-drawn uniforms): captured once as a CUDA graph per (batch, shapes, dtype, device, label or
not, mask or not, temperature) and replayed on every later call (``graph="auto"``, the default),
run eagerly over the same buffers on any other device. The loop has static Python indices and
draws no random numbers, so nothing in it depends on the data.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rnnimg.errors import InputError, RnnImgError
from rnnimg.models.generate.base import ImageGenerator, uniforms
from rnnimg.runtime import graphs
from rnnimg.runtime.options import check_compile, check_graph, graph_backend


class RasterGenerator(ImageGenerator):
    """A generator that also completes images, one pixel at a time in raster order."""

    extra_tasks = ("complete",)

    # --- what a subclass defines ----------------------------------------------------------------
    def pixel_sampler(self, n: int, label: Tensor | None, **condition: Tensor):
        """The state-carrying sampler of ``n`` images (``condition``: ``low_res`` for a model
        with a ``low_res_scale``): an object with ``start_row(i)``,
        ``pixel(i, j) -> logits (n, C, K)`` of pixel (i, j) given every earlier pixel,
        ``set_pixel(i, j, ch, value)``, ``end_pixel(j)`` and ``end_row(i)``."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    @staticmethod
    def condition(low_res: Tensor | None) -> dict[str, Tensor]:
        """The keyword arguments of ``forward`` and :meth:`pixel_sampler` beyond the label: only
        what is given, so models without a low-resolution condition keep their signatures."""
        return {} if low_res is None else {"low_res": low_res}

    def generate_cached(self, canvas: Tensor, known: Tensor | None, label: Tensor | None,
                        temperature: float, u: Tensor, compile: bool | str = False,
                        logits: Tensor | None = None, low_res: Tensor | None = None) -> Tensor:
        """Fill ``canvas`` (n, C, H, W) in raster order carrying the recurrent state, keeping the
        pixels where ``known`` (n, 1, H, W) is True; ``u`` holds the uniforms (H, W, C, n).
        ``canvas`` is filled in place and returned. ``compile``: run each pixel through
        :func:`rnnimg.runtime.graphs.compiled_step` of :meth:`raster_pixel` (a mode name, True for
        "default", or False for eager). ``logits`` (n, C, K, H, W), if given, receives every
        pixel's logits (before the temperature). ``low_res``: the condition of a model with a
        ``low_res_scale``."""
        n, channels, height, width = canvas.shape
        sampler = self.pixel_sampler(n, label, **self.condition(low_res))
        pixel_step = graphs.compiled_step(self.raster_pixel, compile) if compile else self.raster_pixel
        for i in range(height):
            sampler.start_row(i)
            for j in range(width):
                pixel_step(sampler, canvas, known, u, temperature, i, j, logits)
                sampler.end_pixel(j)
            sampler.end_row(i)
        return canvas

    def raster_pixel(self, sampler, canvas: Tensor, known: Tensor | None, u: Tensor,
                     temperature: float, i: int, j: int, logits_out: Tensor | None = None) -> None:
        """Draw pixel (i, j), every channel, into ``canvas`` and the sampler's state: the per-pixel
        work of :meth:`generate_cached`. Its inputs are tensors, the sampler (whose buffers it
        reads and writes in place) and the position (i, j), indexed with
        :func:`rnnimg.runtime.graphs.at`, so ``torch.compile(dynamic=True)`` traces it once for every
        position. ``logits_out`` (n, C, K, H, W), if given, receives the pixel's logits."""
        bernoulli = self.config.output == "bernoulli"
        for ch in range(canvas.shape[1]):
            logits = sampler.pixel(i, j)[:, ch]  # (n, K)
            if logits_out is not None:
                graphs.at(graphs.at(logits_out[:, ch], 2, i), 2, j).copy_(logits)
            slot = graphs.at(graphs.at(canvas[:, ch], 1, i), 1, j)  # (n,): drawn into the canvas
            value = self.draw(logits[:, 0] if bernoulli else logits,
                              graphs.at(graphs.at(u, 0, i), 0, j)[ch], temperature,
                              out=slot if known is None else None)
            if known is not None:
                graphs.into(torch.where, graphs.at(graphs.at(known[:, 0], 1, i), 1, j), slot,
                            value, out=slot)
            sampler.set_pixel(i, j, ch, slot)

    def generate_buffered(self, canvas: Tensor, known: Tensor | None, label: Tensor | None,
                          temperature: float, u: Tensor, graph: bool | str = "auto",
                          compile: bool | str = False, low_res: Tensor | None = None) -> Tensor:
        """:meth:`generate_cached` over static buffers (see the module docstring); ``graph`` and
        ``compile`` as :meth:`sample`'s. Returns a new tensor; ``canvas`` is left as it was unless
        ``graph`` is False (then it is filled in place, as :meth:`generate_cached` does)."""
        capture = check_graph(graph, canvas.device)
        compile = check_compile(compile)
        if graph is False:
            return self.generate_cached(canvas, known, label, temperature, u, compile, low_res=low_res)
        key = ("raster", tuple(canvas.shape), canvas.dtype, canvas.device, known is not None,
               label is not None, float(temperature), capture, compile, low_res is not None)
        values = {"canvas": canvas, "u": u}
        if known is not None:
            values["known"] = known
        if label is not None:
            values["label"] = label
        if low_res is not None:
            values["low_res"] = low_res

        def build() -> graphs.StaticStep:
            def fn(canvas, u, known=None, label=None, low_res=None):
                return self.generate_cached(canvas, known, label, temperature, u, compile,
                                            low_res=low_res)

            return graphs.StaticStep(fn, values, graph_backend(canvas.device) if capture else None)

        step = graphs.cached_step(self, key, build)
        with step.lock:  # the buffers are shared by every call with this key, threads included
            return step(**values).clone()

    @torch.inference_mode()
    def cached_logits(self, image: Tensor, label: Tensor | None = None,
                      compile: bool | str = False, low_res: Tensor | None = None) -> Tensor:
        """The logits of ``image`` computed by the cached sampler's per-pixel step (with every
        pixel known, so the image is kept), laid out as ``self(image)``; ``compile`` as
        :meth:`sample`'s. For tests: they must equal the full forward pass."""
        n, channels, height, width = image.shape
        logits = image.new_zeros(n, channels, self.k, height, width)
        known = torch.ones(n, 1, height, width, dtype=torch.bool, device=image.device)
        u = image.new_full((height, width, channels, n), 0.5)
        self.generate_cached(image.clone(), known, label, 1.0, u, check_compile(compile), logits,
                             low_res)
        return logits[:, :, 0] if self.config.output == "bernoulli" else logits

    def draw(self, logits: Tensor, u: Tensor, temperature: float, out: Tensor | None = None) -> Tensor:
        """Values in [0, 1] from logits (n,) or (n, K) by inverse CDF on uniforms ``u`` (n,),
        written into ``out`` (n,) float if given.

        Both samplers call this, so equal logits and uniforms give equal pixels. (The cached
        sampler runs it once per pixel: no division at temperature 1, and the comparison writes
        its 0/1 floats straight into ``out``, fewer kernels on a GPU and the same values.)
        """
        if temperature != 1:
            logits = logits / temperature
        if self.config.output == "bernoulli":
            p = torch.sigmoid(logits)
            return (u < p).float() if out is None else graphs.into(torch.lt, u, p, out=out)
        cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # (n, K)
        level = (cdf < u.unsqueeze(-1)).sum(dim=-1).clamp(max=self.config.levels - 1)
        if out is None:
            return level / (self.config.levels - 1)
        return graphs.into(torch.div, level, self.config.levels - 1, out=out)

    def draw_uniforms(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """The uniforms a sampler of ``n`` images draws from: one per pixel and channel, in raster
        then channel order, (H, W, C, n), on the generator's device and then moved to the model's.
        :meth:`sample`, :meth:`complete` and the naive samplers draw exactly these from the same
        generator state, so a test can see which uniform decided a pixel."""
        c = self.config
        return uniforms((c.image_size, c.image_size, c.channels, n), generator, self.device)

    @torch.inference_mode()
    def sample(self, n: int, *, label=None, text=None, temperature: float = 1.0,
               generator: torch.Generator | None = None, graph: bool | str = "auto",
               compile: bool | str = False, low_res: Tensor | None = None) -> Tensor:
        """Draw ``n`` images pixel by pixel, carrying the recurrent state (constant work per pixel).

        Args:
            n: number of images.
            label: class index (int or (n,) tensor) for a conditional model.
            text: unsupported by these models (must be None).
            temperature: logits are divided by it; > 0.
            generator: a ``torch.Generator`` on the model's device or on the CPU, for
                reproducible draws.
            graph: "auto" (default): on a CUDA device the whole raster loop is captured once as a
                CUDA graph (per batch size, label or not, and temperature; the first call pays the
                capture) and replayed on later calls; on any other device the same loop runs
                eagerly over the same static buffers. True: always capture (a CUDA device only).
                False: the plain eager loop without static buffers. All three give the same
                samples.
            compile: False (default), True or a ``torch.compile`` mode ("default",
                "max-autotune-no-cudagraphs"): run each pixel's work (every layer, the head and
                the draw) through one ``torch.compile``-d step, which fuses the per-layer
                elementwise work into a few kernels; with ``graph`` capturing, those kernels are
                what the CUDA graph replays. The first call compiles (tens of seconds; a few
                graphs per batch size, not one per pixel). The logits agree with the eager ones to
                rounding (~1e-6), so a sample can differ from the eager one only where a uniform
                falls that close to a probability.
            low_res: for a model with a ``low_res_scale`` s (and only for one), the image to draw
                high-resolution versions of: (C, H / s, W / s), or (1 or n, C, H / s, W / s).

        Returns:
            (n, C, H, W) in [0, 1]; equal to :meth:`sample_naive` under the same generator state.
        """
        label = self.check_sample_args(n, label, text, temperature)
        low_res = self.check_low_res(low_res, n)
        c = self.config
        canvas = torch.zeros(n, c.channels, c.image_size, c.image_size, device=self.device)
        return self.generate_buffered(canvas, None, label, temperature, self.draw_uniforms(n, generator),
                                      graph, compile, low_res)

    @torch.inference_mode()
    def sample_naive(self, n: int, *, label=None, text=None, temperature: float = 1.0,
                     generator: torch.Generator | None = None, max_pixels: int | None = None,
                     low_res: Tensor | None = None) -> Tensor:
        """The reference sampler: one full forward pass per pixel and channel (slow).

        ``max_pixels`` stops after that many pixels (the rest stay 0); benchmarks use it to time a
        few pixels and extrapolate.
        """
        label = self.check_sample_args(n, label, text, temperature)
        low_res = self.check_low_res(low_res, n)
        c = self.config
        canvas = torch.zeros(n, c.channels, c.image_size, c.image_size, device=self.device)
        return self._generate_naive(canvas, None, label, temperature, self.draw_uniforms(n, generator),
                                    max_pixels, low_res)

    @torch.inference_mode()
    def complete_naive(self, image: Tensor, known: Tensor, *, label=None,
                       generator: torch.Generator | None = None, temperature: float = 1.0) -> Tensor:
        """The reference completion: :meth:`complete` with one full forward pass per pixel and
        channel (slow); the same samples under the same generator state."""
        self.check_completion_inputs(image, known)
        label = self.check_sample_args(image.shape[0], label, None, temperature)
        canvas = image.to(self.device, torch.float32).clone()
        return self._generate_naive(canvas, known.to(self.device), label, temperature,
                                    self.draw_uniforms(image.shape[0], generator))

    def _generate_naive(self, canvas: Tensor, known: Tensor | None, label: Tensor | None,
                        temperature: float, u: Tensor, max_pixels: int | None = None,
                        low_res: Tensor | None = None) -> Tensor:
        c = self.config
        condition = self.condition(low_res)
        for p in range(c.image_size * c.image_size if max_pixels is None else max_pixels):
            i, j = divmod(p, c.image_size)
            for ch in range(c.channels):
                logits = self(canvas, label, **condition)[:, ch, ..., i, j]  # (n,) or (n, K)
                value = self.draw(logits, u[i, j, ch], temperature)
                if known is not None:
                    value = torch.where(known[:, 0, i, j], canvas[:, ch, i, j], value)
                canvas[:, ch, i, j] = value
        return canvas

    def check_completion_inputs(self, image: Tensor, known: Tensor) -> None:
        self.check_image(image)
        if known.dtype != torch.bool:
            raise RnnImgError(f"the known mask must be a bool tensor, got {known.dtype}.")
        want = (image.shape[0], 1, *image.shape[2:])
        if tuple(known.shape) != want:
            raise RnnImgError(f"the known mask has shape {tuple(known.shape)}, but the image needs "
                              f"{want}; make the mask the same size as the image.")
        if bool(known.all()):
            raise InputError("known", "{arg} leaves no pixel unknown, so there is nothing to complete; "
                                      "mark the region to fill.")

    @torch.inference_mode()
    def complete(self, image: Tensor, known: Tensor, *, label=None,
                 generator: torch.Generator | None = None, temperature: float = 1.0,
                 graph: bool | str = "auto", compile: bool | str = False,
                 low_res: Tensor | None = None) -> Tensor:
        """Fill the unknown pixels of ``image`` in raster order, given every known pixel before them.

        Args:
            image: (B, C, H, W) in [0, 1] (binary for a Bernoulli model).
            known: (B, 1, H, W) bool, True where the pixel is kept.
            label: class index (int or (B,) tensor) for a conditional model.
            generator: for reproducible draws (on the model's device or on the CPU).
            temperature: logits are divided by it; > 0.
            graph: "auto" | True | False, as :meth:`sample`'s (one graph per batch size, label or
                not, and temperature; images and masks are inputs of the graph).
            compile: as :meth:`sample`'s.
            low_res: as :meth:`sample`'s, for a model with a ``low_res_scale``.

        Returns:
            (B, C, H, W): known pixels exactly as given, unknown ones sampled.
        """
        self.check_completion_inputs(image, known)
        label = self.check_sample_args(image.shape[0], label, None, temperature)
        low_res = self.check_low_res(low_res, image.shape[0])
        canvas = image.to(self.device, torch.float32).clone()
        known = known.to(self.device)
        u = self.draw_uniforms(image.shape[0], generator)
        out = self.generate_buffered(canvas, known, label, temperature, u, graph, compile, low_res)
        return torch.where(known, image.to(out), out)  # known pixels bit for bit
