"""``rnnimg serve``: a web page to try every served model, one tab per task (needs ``rnnimg[web]``).

:func:`serve` loads the models, makes a temporary folder for everything the page writes (Gradio's
uploads and caches included, through ``GRADIO_TEMP_DIR``) and starts the page; the folder is
removed when the server stops.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading

from rnnimg.errors import RnnImgError

INSTALL_HINT = "the web page needs Gradio: pip install 'rnnimg[web]'"


def require_gradio() -> None:
    """Raise RnnImgError with the one-line install hint unless Gradio is installed.

    Gradio is not imported here: some of its modules read ``GRADIO_TEMP_DIR`` once, on import,
    and :func:`create_app` sets it to the page's own folder first.
    """
    import importlib.util

    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["gradio"] is None
        found = False
    if not found:
        raise RnnImgError(INSTALL_HINT)


def create_app(specs: list[str] | None = None, device: str = "cpu", workdir=None):
    """(the Gradio Blocks of the page, its temporary folder) for ``specs`` (default: all shipped).

    The models load before the folder is made, so a spec that does not load leaves nothing behind.

    Raises:
        RnnImgError: without Gradio (the install hint), or for a spec that does not load.
    """
    from rnnimg.serve import core

    require_gradio()
    models = core.load_served(specs, device)
    workdir = workdir or core.make_workdir()
    try:
        os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")  # uploads and caches stay in it
        os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
        from rnnimg.serve.app import build_app

        return build_app(models, workdir), workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (how systemd, Docker and job schedulers stop a server) raises
    KeyboardInterrupt as Ctrl-C does, so the same clean-up runs; the old handler comes back after.
    Does nothing outside the main thread, where Python cannot set signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(specs: list[str] | None = None, host: str = "127.0.0.1", port: int | None = None,
          device: str = "cpu", block: bool = True):
    """Serve the page until interrupted (Ctrl-C or SIGTERM), then remove its temporary folder
    (``block=False``: return the running app and its folder for tests; the caller cleans up)."""
    with sigterm_as_interrupt() if block else contextlib.nullcontext():
        app, workdir = create_app(specs, device)
        try:
            app.queue(default_concurrency_limit=1).launch(
                server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
                show_error=True, quiet=not block, allowed_paths=[str(workdir)])
        except OSError as err:  # the port is taken
            shutil.rmtree(workdir, ignore_errors=True)
            raise RnnImgError(f"cannot serve on {host}:{port}: {err}; choose another --port.") from None
        except BaseException:  # an interrupt while starting: leave nothing behind
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        if not block:
            return app, workdir  # the caller closes the app and removes the folder
        # Gradio ends a blocking launch on KeyboardInterrupt (Ctrl-C, or SIGTERM above) by
        # closing the server and returning here
        shutil.rmtree(workdir, ignore_errors=True)
    return None
