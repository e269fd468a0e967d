"""Command-line arguments shared by the reference benchmarks: the same names and defaults as
`reel bench` (a published configuration and a video size)."""

import argparse


def shape_parser(description: str, models, warmup: int, runs: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wan2.1-t2v-1.3b", choices=sorted(models))
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--runs", type=int, default=runs)
    return parser
