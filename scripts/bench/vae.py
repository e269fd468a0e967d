"""One decode of diffusers' AutoencoderKLWan with random weights (f32, as WanPipeline runs it), timed
on the same latents shape as `reel bench vae`. Prints a JSON report as its last line.

    pip install -r scripts/fixtures/requirements.txt
    python scripts/bench/vae.py --frames 17 --width 320 --height 192
"""

import json
import resource
import statistics
import time

import torch
from diffusers import AutoencoderKLWan

from shape import shape_parser

# Published VAE configurations by transformer name (see `reel models`): (config, latent channels, spatial factor).
MODELS = {
    "wan2.1-t2v-1.3b": (dict(), 16, 8),
    "wan2.1-t2v-14b": (dict(), 16, 8),
    "wan2.2-t2v-a14b": (dict(), 16, 8),
    "wan2.2-ti2v-5b": (dict(base_dim=160, decoder_base_dim=256, z_dim=48, is_residual=True, in_channels=12,
                            out_channels=12, patch_size=2, scale_factor_spatial=16,
                            latents_mean=[0.0] * 48, latents_std=[1.0] * 48), 48, 16),
}


def main() -> None:
    parser = shape_parser(__doc__, MODELS, warmup=0, runs=1)
    args = parser.parse_args()

    config, channels, spatial = MODELS[args.model]
    vae = AutoencoderKLWan(**config).eval()
    latents = torch.randn(1, channels, (args.frames - 1) // 4 + 1, args.height // spatial, args.width // spatial)
    times = []
    with torch.no_grad():
        for i in range(args.warmup + args.runs):
            start = time.perf_counter()
            vae.decode(latents, return_dict=False)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
    report = {"implementation": "diffusers", "seconds_per_decode": statistics.median(times), "runs": times,
              "torch_threads": torch.get_num_threads(),
              "peak_resident_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    print(f"diffusers: {report['seconds_per_decode']:.2f} s per decode")
    print(json.dumps({"diffusers": report}))


if __name__ == "__main__":
    main()
