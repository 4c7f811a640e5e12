"""``python -m rnnimg.judge``: test the shipped digit judge (or a trained file) on the mnist-5k test
digits, or train one into a folder of the user's choosing.

    python -m rnnimg.judge                                        # the shipped judge's accuracy
    python -m rnnimg.judge --train --out judge/ --epochs 12 --seed 0
    python -m rnnimg.judge --weights judge/digit_judge.safetensors

The shipped weights were made by the ``--train`` line above (it printed 0.9840) and copied into
``rnnimg/data/assets/`` by hand: training never writes into the installed package.
"""

from __future__ import annotations

import argparse
import sys

import torch

from rnnimg.errors import RnnImgError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rnnimg.judge",
                                     description="Test, or train, the digit judge shipped with rnnimg.")
    parser.add_argument("--train", action="store_true", help="train a judge and write it to --out")
    parser.add_argument("--out", help="folder for the trained weights (digit_judge.safetensors)")
    parser.add_argument("--overwrite", action="store_true", help="replace weights already in --out")
    parser.add_argument("--weights", help="test this .safetensors file instead of the shipped judge")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    return parser


def run(args: argparse.Namespace) -> None:
    from rnnimg.judge.net import load_digit_judge
    from rnnimg.judge.train import mnist_5k_test_accuracy, save_digit_judge, train_digit_judge

    if args.train:
        if not args.out:
            raise RnnImgError("--train needs --out DIR, the folder for the trained weights (the "
                              "installed package is never written).")
        if args.epochs < 1:
            raise RnnImgError(f"--epochs must be at least 1, got {args.epochs}.")
        judge, accuracy = train_digit_judge(args.epochs, args.seed)
        path = save_digit_judge(judge, args.out, overwrite=args.overwrite)
        print(f"wrote {path} ({path.stat().st_size} bytes); mnist-5k test accuracy {accuracy:.4f}")
    else:
        judge = load_digit_judge(path=args.weights)
        print(f"mnist-5k test accuracy {mnist_5k_test_accuracy(judge):.4f}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_num_threads(1)
    try:
        run(args)
    except RnnImgError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
