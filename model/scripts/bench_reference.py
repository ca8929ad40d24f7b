"""Reference timing of the official OmniGen code (omnigen==1.0.3, float32, CPU) on a mid-size random model.

Config: hidden 3072, 32 heads (head_dim 96), MLP 8192, **2 layers**, the real vocab, pos_embed and LongRoPE shape
(constant placeholder factor lists; ~1,100 tokens < 4096 so the short factors are used), random weights. Input: a 512x512 text-to-image request (1024 output tokens) with a 75-token cond prompt and a 95-token
negative prompt, so one forward sees ~1,100 tokens.

Measures (median wall time over --repeats runs after one warm-up, and peak RSS of the process):
  * forward: one `OmniGen.forward` of the cond branch (batch 1, no KV cache);
  * step:    one sampling step as the pipeline's default path runs it without KV cache:
             `forward_with_separate_cfg` (cond + uncond forwards, CFG combine) + the Euler update.

It saves what it used to OUT_DIR (not committed; ~2 GB): `config.json`, `model.safetensors` (official layout),
the tiny fixture tokenizer files (ids are injected, the tokenizer is only there so loaders find one), and
`bench_inputs.safetensors` (x, t, ids, masks, positions of both branches, the forward output, the step output) so the
Rust benchmark runs on the same weights and can check its numbers.

Usage: .venv-ref/bin/python model/scripts/bench_reference.py OUT_DIR [--repeats 5] [--threads 2]
"""
import argparse
import json
import os
import resource
import shutil
import statistics
import time

import torch
from safetensors.torch import save_file
from transformers import Phi3Config

from OmniGen import OmniGen
from OmniGen.processor import OmniGenCollator

ap = argparse.ArgumentParser()
ap.add_argument("out_dir")
ap.add_argument("--repeats", type=int, default=5)
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
os.makedirs(args.out_dir, exist_ok=True)
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "tests", "fixtures", "tiny")

cfg = Phi3Config(
    vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=2, num_attention_heads=32,
    num_key_value_heads=32, hidden_act="silu", rms_norm_eps=1e-5, rope_theta=10000.0,
    max_position_embeddings=131072, original_max_position_embeddings=4096,
    rope_scaling={"type": "su", "short_factor": [1.05] * 48, "long_factor": [1.5] * 48},
    bos_token_id=1, eos_token_id=2, pad_token_id=32000, tie_word_embeddings=False, use_cache=True,
)
cfg.save_pretrained(args.out_dir)
cj = json.load(open(os.path.join(args.out_dir, "config.json")))
cj["rope_scaling"]["type"] = "su"
json.dump(cj, open(os.path.join(args.out_dir, "config.json"), "w"), indent=2)

t0 = time.time()
model = OmniGen(cfg)
with torch.no_grad():
    g = torch.Generator().manual_seed(0)
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.02 * torch.randn(p.shape, generator=g))
        p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.pos_embed.copy_(model.pos_embed.to(torch.bfloat16).to(torch.float32))
model.eval()
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(args.out_dir, "model.safetensors"))
for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(FIXTURES, fn), os.path.join(args.out_dir, fn))
print(f"model built and saved in {time.time() - t0:.1f}s")

# inputs via the official collator (ids are random; the model never sees text otherwise)
g = torch.Generator().manual_seed(1)
H = W = 512
n_out = H * W // 256
cond_ids = [1] + torch.randint(3, 32000, (74,), generator=g).tolist()
uncond_ids = [1] + torch.randint(3, 32000, (94,), generator=g).tolist()
collator = OmniGenCollator()
branches = []
for ids in (cond_ids, uncond_ids):
    pid, pos, mask, _, _, sizes = collator.process_mllm_input(
        [{"input_ids": ids, "pixel_values": None, "image_sizes": None}], [[H, W]])
    branches.append((pid, pos, mask, sizes))
x = torch.randn(1, 4, H // 8, W // 8, generator=g)
t = torch.tensor([0.3])
print("sequence lengths:", [b[2].shape[-1] for b in branches])


def forward():
    pid, pos, mask, sizes = branches[0]
    return model(x, t, pid, None, sizes, mask, pos, past_key_values=None, return_past_key_values=False)


def step():
    z = torch.cat([x, x], 0)
    ts = torch.zeros(2) + 0.3
    kw = dict(input_ids=[b[0] for b in branches], input_img_latents=[[], []],
              input_image_sizes=[b[3] for b in branches], attention_mask=[b[2] for b in branches],
              position_ids=[b[1] for b in branches], cfg_scale=2.5, img_cfg_scale=1.6, use_img_cfg=False,
              use_kv_cache=False, offload_model=False)
    pred, _ = model.forward_with_separate_cfg(z, ts, past_key_values=None, **kw)
    return z + (0.32 - 0.3) * pred


def bench(fn):
    with torch.no_grad():
        out = fn()  # warm-up
        times = []
        for _ in range(args.repeats):
            s = time.perf_counter()
            fn()
            times.append(time.perf_counter() - s)
    return out, statistics.median(times), times


fwd_out, fwd_med, fwd_all = bench(forward)
step_out, step_med, step_all = bench(step)
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
save_file({"x": x, "t": t, "cond.input_ids": branches[0][0], "cond.position_ids": branches[0][1],
           "cond.attention_mask": branches[0][2], "uncond.input_ids": branches[1][0],
           "uncond.position_ids": branches[1][1], "uncond.attention_mask": branches[1][2],
           "forward.out": fwd_out.contiguous(), "step.out": step_out.contiguous()},
          os.path.join(args.out_dir, "bench_inputs.safetensors"))
print(json.dumps({"torch": torch.__version__, "threads": args.threads, "repeats": args.repeats,
                  "forward_median_s": round(fwd_med, 4), "forward_all_s": [round(v, 4) for v in fwd_all],
                  "step_median_s": round(step_med, 4), "step_all_s": [round(v, 4) for v in step_all],
                  "peak_rss_mib": round(peak_mib, 1),
                  "note": "step = forward_with_separate_cfg (cond+uncond, no KV cache) + Euler update"}, indent=1))
