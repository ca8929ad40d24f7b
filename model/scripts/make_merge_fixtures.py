"""The official `merge_lora` on an adapter trained by `omnigen train`, then a 4-step sample (CPU, float32).

Usage (from the repository root, with the reference venv of requirements.txt):

    .venv-ref/bin/python model/scripts/make_merge_fixtures.py model/tests/fixtures

`fixtures/trained_lora/` was written by this repository's trainer (6 LoRA steps on the tiny model):

    omnigen train --data model/tests/fixtures/train_data/train.jsonl --model model/tests/fixtures/tiny \
      --output RUN --device cpu --max-image-size 64 --keep-raw-resolution --batch-size 2 --steps 6 --lr 1e-2 \
      --lora-rank 4 --lora-alpha 8 --condition-dropout 0.25 --seed 3
    cp RUN/checkpoint-000006/adapter_* model/tests/fixtures/trained_lora/

The official pipeline's merge (`OmniGenPipeline.merge_lora`: `PeftModel.from_pretrained(model, path)
.merge_and_unload()`, here on the float32 model as make_fixtures.py does), then the pipeline's sampling loop
(`OmniGenScheduler`, `forward_with_separate_cfg`, KV cache on) with injected noise. Writes
`reference/trained_lora.safetensors` (`noise`, `final_latent` of each case) and `reference/trained_lora.json`.
"""
import json
import os
import sys

import torch
from peft import PeftModel
from safetensors.torch import save_file

torch.set_num_threads(2)
import OmniGen.pipeline as og_pipeline_mod  # noqa: E402
from OmniGen import OmniGenPipeline, OmniGenScheduler  # noqa: E402

if not hasattr(og_pipeline_mod, "is_torch_npu_available"):
    og_pipeline_mod.is_torch_npu_available = lambda: False  # omnigen 1.0.3 NameError on CPU-only hosts

OUT = os.path.abspath(sys.argv[1])
TINY = os.path.join(OUT, "tiny")
LORA = os.path.join(OUT, "trained_lora")
REF = os.path.join(OUT, "reference")

pipe = OmniGenPipeline.from_pretrained(TINY)
model = pipe.model.to(torch.float32)
model = PeftModel.from_pretrained(model, LORA).merge_and_unload()
model.eval()
proc = pipe.processor

CASES = [
    {"name": "t2i", "prompt": "a small picture of a cat", "height": 48, "width": 64, "steps": 4,
     "guidance_scale": 2.5, "noise_seed": 11},
    {"name": "t2i_square", "prompt": "a grey square", "height": 64, "width": 64, "steps": 4,
     "guidance_scale": 3.0, "noise_seed": 12},
]
ref = {}
for case in CASES:
    h, w = case["height"], case["width"]
    data = proc([case["prompt"]], None, height=h, width=w, use_img_cfg=False, separate_cfg_input=True)
    noise = torch.randn(1, 4, h // 8, w // 8, generator=torch.Generator().manual_seed(case["noise_seed"]))
    latents = torch.cat([noise] * 2, 0)
    kw = dict(input_ids=data["input_ids"], input_img_latents=[[], []], input_image_sizes=data["input_image_sizes"],
              attention_mask=data["attention_mask"], position_ids=data["position_ids"],
              cfg_scale=case["guidance_scale"], img_cfg_scale=1.6, use_img_cfg=False, use_kv_cache=True,
              offload_model=False)
    sched = OmniGenScheduler(num_steps=case["steps"])
    with torch.no_grad():
        z = sched(latents, model.forward_with_separate_cfg, kw, use_kv_cache=True, offload_kv_cache=False)
    final = z.chunk(2, dim=0)[0]
    ref[f"{case['name']}.noise"] = noise.contiguous()
    ref[f"{case['name']}.final_latent"] = final.contiguous().float()
    print(case["name"], "final mean|.|", float(final.abs().mean()))
save_file(ref, os.path.join(REF, "trained_lora.safetensors"))
with open(os.path.join(REF, "trained_lora.json"), "w") as f:
    json.dump({"lora": "trained_lora", "cases": CASES}, f, indent=2)
