"""Steps/s of the official `omnigen==1.0.3` LoRA training loop on CPU (the counterpart of `omnigen train` in
BENCHMARKS.md, Training). Usage:

    .venv-ref/bin/python model/scripts/bench_train_reference.py MODEL_DIR DATA.jsonl STEPS [BATCH]

What runs is `train.py --use_lora --keep_raw_resolution` reduced to one process without accelerate:
`DatasetFromJson.get_example` (condition dropout 0.1 to `<cfg>`, images through `crop_arr(max_image_size=64)`),
`TrainDataCollator`, PEFT LoRA r = 8 on qkv_proj/o_proj with gradient checkpointing, the VAE encoding every
image with `latent_dist.sample()` each step (`vae_encode_list`), `training_losses`, backward,
`clip_grad_norm_(1.0)` and `torch.optim.AdamW(lr=1e-4)`. Float32, 2 threads. The first 5 steps are warm-up.
"""
import json
import os
import sys
import time
import types

import torch

torch.set_num_threads(2)
from peft import LoraConfig, get_peft_model  # noqa: E402
from torchvision import transforms  # noqa: E402

import OmniGen.pipeline as og_pipeline_mod  # noqa: E402

if not hasattr(og_pipeline_mod, "is_torch_npu_available"):
    og_pipeline_mod.is_torch_npu_available = lambda: False
from OmniGen import OmniGenPipeline  # noqa: E402

_stub = types.ModuleType("datasets")
_stub.load_dataset = _stub.ClassLabel = _stub.concatenate_datasets = None
sys.modules.setdefault("datasets", _stub)
import OmniGen.train_helper.loss as og_loss  # noqa: E402
from OmniGen.train_helper import DatasetFromJson, TrainDataCollator  # noqa: E402
from OmniGen.utils import crop_arr  # noqa: E402

model_dir, data_file, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
batch = int(sys.argv[4]) if len(sys.argv) > 4 else 2
pipe = OmniGenPipeline.from_pretrained(model_dir)
vae, processor = pipe.vae.to(torch.float32), pipe.processor
model = pipe.model.to(torch.float32)
model.llm.config.use_cache = False
model.llm.gradient_checkpointing_enable()
for p in model.parameters():
    p.requires_grad_(False)
model.llm.enable_input_require_grads()
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, init_lora_weights="gaussian",
                                         target_modules=["qkv_proj", "o_proj"]))
model.train()
transform = transforms.Compose([
    transforms.Lambda(lambda img: crop_arr(img, 64)),
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], inplace=True),
])
dataset = DatasetFromJson.__new__(DatasetFromJson)  # the official class without `datasets.load_dataset`
dataset.image_transform, dataset.processer = transform, processor
dataset.condition_dropout_prob, dataset.max_input_length_limit, dataset.keep_raw_resolution = 0.1, 18000, True
dataset.image_path = os.path.dirname(os.path.abspath(data_file))
with open(data_file) as f:
    dataset.data = [json.loads(line) for line in f if line.strip()]
collate = TrainDataCollator(pad_token_id=processor.text_tokenizer.eos_token_id,
                            hidden_size=model.base_model.model.llm.config.hidden_size, keep_raw_resolution=True)
loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, collate_fn=collate, drop_last=True)
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, weight_decay=0.0)


def vae_encode(x):
    with torch.no_grad():
        return vae.encode(x).latent_dist.sample().mul_(vae.config.scaling_factor)


done, start = 0, None
while done < steps + 5:
    for data in loader:
        if done == 5:
            start = time.perf_counter()
        x1 = [vae_encode(x) for x in data["output_images"]]
        pv = data["input_pixel_values"]
        cond = [vae_encode(x) for x in pv] if pv else None
        kw = dict(input_ids=data["input_ids"], input_img_latents=cond, input_image_sizes=data["input_image_sizes"],
                  attention_mask=data["attention_mask"], position_ids=data["position_ids"],
                  padding_latent=data["padding_images"], past_key_values=None, return_past_key_values=False)
        loss = og_loss.training_losses(model, x1, kw)["loss"].mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        done += 1
        if done >= steps + 5:
            break
secs = time.perf_counter() - start
print(f"official loop: {steps} steps in {secs:.2f} s = {steps / secs:.2f} steps/s (last loss {loss.item():.5f})")
