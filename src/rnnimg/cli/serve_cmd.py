"""``rnnimg serve``: a web page to try the models (``pip install 'rnnimg[web]'``)."""

from __future__ import annotations

from rnnimg.cli.common import add_device_arg, resolve_device


def register(sub) -> None:
    p = sub.add_parser(
        "serve", help="a web page to try models (needs rnnimg[web])",
        description="Serve a web page with one tab per task of the given models: sample (label, "
                    "seed, temperature), complete (a test digit, an upload or a drawing, with a "
                    "hidden region), predict (a Moving MNIST test clip or an uploaded clip -> GIF), "
                    "and the pictures of any other task. Without RUN, every shipped pretrained "
                    "model is served. Files the page makes stay in a temporary folder.")
    p.add_argument("runs", nargs="*", metavar="RUN",
                   help="run folders or pretrained:NAME (default: all shipped, see `rnnimg list`)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: Gradio's, 7860 or the next free one)")
    add_device_arg(p)
    p.set_defaults(run=cmd_serve)


def cmd_serve(args) -> int:
    from rnnimg.serve import require_gradio, serve

    require_gradio()  # the install hint before any model is loaded
    serve(args.runs or None, host=args.host, port=args.port, device=resolve_device(args.device))
    return 0
