"""diffusers' whole Wan pipeline with random weights, timed by stage on the same work as
`reel bench pipeline`: UMT5-XXL encodes 512 fixed token ids for the prompt and again for the
negative prompt, WanPipeline denoises from those embeddings (`prompt_embeds`, so no tokenizer is
needed offline) and the VAE decodes. Each stage includes building its component with random
weights, as reel's stages include loading theirs. Prints a JSON report as its last line.

    pip install -r scripts/fixtures/requirements.txt
    python scripts/bench/pipeline.py --frames 17 --width 320 --height 192 --steps 2
"""

import json
import resource
import time

import torch
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline
from transformers import UMT5Config, UMT5EncoderModel

from shape import shape_parser
from transformer import MODELS, build

UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu")
TEXT_TOKENS = 512


def main() -> None:
    parser = shape_parser(__doc__, {name: None for name in MODELS if name.startswith("wan2.1")}, warmup=0, runs=1)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--guidance", type=float, default=5.0)
    args = parser.parse_args()
    dtype = torch.bfloat16
    stages = {}

    start = time.perf_counter()
    torch.set_default_dtype(dtype)
    encoder = UMT5EncoderModel(UMT5Config(**UMT5_XXL)).eval()
    torch.set_default_dtype(torch.float32)
    ids = torch.arange(TEXT_TOKENS).unsqueeze(0)
    with torch.no_grad():
        cond = encoder(ids, attention_mask=torch.ones_like(ids)).last_hidden_state
        uncond = encoder(ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    del encoder
    stages["encode"] = time.perf_counter() - start

    # reel's stages include building their component (random weights), so these do too.
    start = time.perf_counter()
    transformer = build(args.model, dtype)
    build_transformer = time.perf_counter() - start
    start = time.perf_counter()
    vae = AutoencoderKLWan().eval()
    build_vae = time.perf_counter() - start
    pipe = WanPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                       scheduler=UniPCMultistepScheduler(prediction_type="flow_prediction",
                                                         use_flow_sigmas=True, flow_shift=3.0))
    timings = {}
    def on_step(pipeline, step, timestep, callback_kwargs):
        timings.setdefault("first_step", time.perf_counter())
        timings["last_step"] = time.perf_counter()
        return callback_kwargs
    start = time.perf_counter()
    with torch.no_grad():
        pipe(prompt_embeds=cond, negative_prompt_embeds=uncond, height=args.height, width=args.width,
             num_frames=args.frames, num_inference_steps=args.steps, guidance_scale=args.guidance,
             output_type="np", callback_on_step_end=on_step)
    end = time.perf_counter()
    # The step callback runs after each step: denoising ends at the last one, decoding follows.
    stages["denoise"] = build_transformer + timings["last_step"] - start
    stages["decode"] = build_vae + end - timings["last_step"]
    report = {"implementation": "diffusers", "stage_seconds": stages, "seconds": sum(stages.values()),
              "peak_resident_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
    print(json.dumps({"diffusers": report}))


if __name__ == "__main__":
    main()
