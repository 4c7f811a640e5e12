"""``rnnimg serve``: a web page to try every served model, one tab per task (needs ``rnnimg[web]``).

:func:`serve` loads the models, makes a temporary folder for everything the page writes (Gradio's
uploads and caches included, through ``GRADIO_TEMP_DIR``) and starts the page; the folder is
removed when the server stops.
"""

from __future__ import annotations

import os
import shutil

from rnnimg.errors import RnnImgError

INSTALL_HINT = "the web page needs Gradio: pip install 'rnnimg[web]'"


def require_gradio():
    """Import Gradio, or raise RnnImgError with the one-line install hint."""
    try:
        import gradio
    except ImportError:
        raise RnnImgError(INSTALL_HINT) from None
    return gradio


def create_app(specs: list[str] | None = None, device: str = "cpu", workdir=None):
    """(the Gradio Blocks of the page, its temporary folder) for ``specs`` (default: all shipped).

    Raises:
        RnnImgError: without Gradio (the install hint), or for a spec that does not load.
    """
    from rnnimg.serve import core

    require_gradio()
    workdir = workdir or core.make_workdir()
    os.environ["GRADIO_TEMP_DIR"] = str(workdir / "gradio")  # uploads and caches stay in it
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from rnnimg.serve.app import build_app

    models = core.load_served(specs, device)
    return build_app(models, workdir), workdir


def serve(specs: list[str] | None = None, host: str = "127.0.0.1", port: int | None = None,
          device: str = "cpu", block: bool = True):
    """Serve the page until interrupted (``block=False``: return the running app for tests)."""
    app, workdir = create_app(specs, device)
    try:
        app.queue(default_concurrency_limit=1).launch(
            server_name=host, server_port=port, prevent_thread_lock=not block, share=False,
            show_error=True, quiet=not block, allowed_paths=[str(workdir)])
    except OSError as err:  # the port is taken
        shutil.rmtree(workdir, ignore_errors=True)
        raise RnnImgError(f"cannot serve on {host}:{port}: {err}; choose another --port.") from None
    except BaseException:  # Ctrl-C ends a blocking server: leave nothing behind
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    if not block:
        return app, workdir  # the caller closes the app and removes the folder
    shutil.rmtree(workdir, ignore_errors=True)
    return None
