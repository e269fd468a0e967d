"""One forward of diffusers' WanTransformer3DModel with random weights, timed on the same shape as
`reel bench transformer`, and (with --reel) reel's own measurement in the same run with the ratio.

    pip install -r scripts/fixtures/requirements.txt
    cargo build --release
    python scripts/bench/transformer.py --reel target/release/reel --dtype f32
    python scripts/bench/transformer.py --reel target/release/reel --dtype bf16
"""

import json
import resource
import statistics
import subprocess
import time

import torch
from diffusers import WanTransformer3DModel

from shape import shape_parser

# Published transformer configurations (the names of `reel models`) and their latent geometry.
MODELS = {
    "wan2.1-t2v-1.3b": (dict(num_attention_heads=12, ffn_dim=8960, num_layers=30, in_channels=16, out_channels=16), 8),
    "wan2.1-t2v-14b": (dict(num_attention_heads=40, ffn_dim=13824, num_layers=40, in_channels=16, out_channels=16), 8),
    "wan2.2-ti2v-5b": (dict(num_attention_heads=24, ffn_dim=14336, num_layers=30, in_channels=48, out_channels=48), 16),
}
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f16": torch.float16}


def build(name: str, dtype: torch.dtype) -> WanTransformer3DModel:
    config, _ = MODELS[name]
    model = WanTransformer3DModel(**config).eval().to(dtype)
    # As from_pretrained(torch_dtype=...) does: these modules stay in f32.
    keep = set(model._keep_in_fp32_modules)
    for module_name, module in model.named_modules():
        if keep.intersection(module_name.split(".")):
            module.to(torch.float32)
    return model


def diffusers_bench(args) -> dict:
    config, spatial = MODELS[args.model]
    dtype = DTYPES[args.dtype]
    model = build(args.model, dtype)
    frames = (args.frames - 1) // 4 + 1
    latents = torch.randn(1, config["in_channels"], frames, args.height // spatial, args.width // spatial, dtype=dtype)
    context = torch.randn(1, args.text_tokens, 4096, dtype=dtype)
    timestep = torch.tensor([500])
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.runs):
            start = time.perf_counter()
            model(latents, timestep, context, return_dict=False)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    return {"implementation": "diffusers", "seconds_per_forward": statistics.median(times), "runs": times,
            "torch_threads": torch.get_num_threads(), "torch_version": torch.__version__,
            # Linux reports ru_maxrss in KiB.
            "peak_resident_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}


def reel_bench(args) -> dict:
    command = [
        args.reel, "bench", "transformer", "--model", args.model, "--frames", str(args.frames),
        "--width", str(args.width), "--height", str(args.height), "--text-tokens", str(args.text_tokens),
        "--dtype", args.dtype, "--warmup", str(args.warmup), "--runs", str(args.runs), "--json",
    ]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = shape_parser(__doc__, MODELS, warmup=1, runs=3)
    parser.add_argument("--text-tokens", type=int, default=512)
    parser.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    parser.add_argument("--reel", help="path of the reel binary: also measure reel and print the ratio")
    args = parser.parse_args()

    shape = f"{args.model} {args.frames} frames {args.width}x{args.height} {args.dtype}"
    reference = diffusers_bench(args)
    print(f"diffusers: {reference['seconds_per_forward']:.2f} s per forward ({shape})")
    result = {"shape": shape, "diffusers": reference}
    if args.reel:
        ours = reel_bench(args)
        ratio = reference["seconds_per_forward"] / ours["seconds_per_forward"]
        print(f"reel:      {ours['seconds_per_forward']:.2f} s per forward")
        print(f"reel is {ratio:.2f}x the speed of diffusers (>1 is faster)")
        result.update(reel=ours, speedup=ratio)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
