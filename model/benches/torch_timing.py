"""PyTorch side of `bench_model` (official omnigen==1.0.3 code, float32, CPU), driven round by round.

Loads the weights and inputs that `model/scripts/bench_reference.py` saved in DIR (fast: modules are built on the
meta device and the checkpoint is assigned), warms up once, then for every line read on stdin times one forward
(cond branch, no cache) and one sampling step (`forward_with_separate_cfg` over cond + uncond, no cache, plus the
Euler update) and prints one JSON line. The Rust benchmark alternates these rounds with its own, so both sides see
the same machine load.

Usage: python model/benches/torch_timing.py DIR [--threads 2]
"""
import argparse
import json
import os
import sys
import time

import torch
from safetensors.torch import load_file
from transformers import Phi3Config

from OmniGen import OmniGen

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)

cfg = Phi3Config.from_pretrained(args.dir)
with torch.device("meta"):
    model = OmniGen(cfg)
model.load_state_dict(load_file(os.path.join(args.dir, "model.safetensors")), strict=True, assign=True)
model.eval()
inp = load_file(os.path.join(args.dir, "bench_inputs.safetensors"))
x, t = inp["x"], inp["t"]
br = [(inp[f"{b}.input_ids"], inp[f"{b}.attention_mask"], inp[f"{b}.position_ids"]) for b in ("cond", "uncond")]


def forward():
    ids, mask, pos = br[0]
    return model(x, t, ids, None, {}, mask, pos, past_key_values=None, return_past_key_values=False)


def step():
    z = torch.cat([x, x], 0)
    ts = torch.zeros(2) + t[0]
    kw = dict(input_ids=[b[0] for b in br], input_img_latents=[[], []], input_image_sizes=[{}, {}],
              attention_mask=[b[1] for b in br], position_ids=[b[2] for b in br], cfg_scale=2.5, img_cfg_scale=1.6,
              use_img_cfg=False, use_kv_cache=False, offload_model=False)
    pred, _ = model.forward_with_separate_cfg(z, ts, past_key_values=None, **kw)
    return z + (0.32 - 0.3) * pred


def timed(fn):
    s = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - s


with torch.no_grad():
    out, _ = timed(forward)  # warm-up
    err = float((out - inp["forward.out"]).abs().max()) if "forward.out" in inp else None
    print(json.dumps({"ready": True, "torch": torch.__version__, "forward_check_max_abs": err}), flush=True)
    for _ in sys.stdin:
        _, f = timed(forward)
        _, s = timed(step)
        print(json.dumps({"forward_s": f, "step_s": s}), flush=True)
