"""Training parity fixtures from the official `omnigen==1.0.3` trainer code and PEFT 0.9.0 (CPU, float32).

Usage (from the repository root, after make_fixtures.py has built model/tests/fixtures/tiny):

    .venv-ref/bin/python model/scripts/make_train_fixtures.py model/tests/fixtures

Writes `reference/train.safetensors` and `reference/train_cases.json`. What runs is the official code path of
`train.py --use_lora`: `DatasetFromJson.get_example` (condition dropout to `<cfg>`), `TrainDataCollator`
(`keep_raw_resolution=True`: in 1.0.3 the `False` branch of
`TrainDataCollator.__call__` raises UnboundLocalError, so every working 1.0.3 run takes the list path), PEFT's `LoraConfig(r, lora_alpha=r, init_lora_weights="gaussian",
target_modules=["qkv_proj", "o_proj"])` on the model with gradient checkpointing, `training_losses`, backward,
`clip_grad_norm_` and `torch.optim.AdamW`. Every random decision is injected and stored instead of being drawn:
the dropout decision of each example (`random.random` is patched), the noise x0 (`sample_x0`), the normal draw
`u` whose sigmoid is t (`torch.normal` inside `sample_timestep`), the initial LoRA factors (A from PEFT's gaussian
init under a fixed seed, B overwritten with random values so that both factors get non-zero gradients; PEFT's
own B is zero), and the latents: x1 and the condition latents are random tensors standing in for
`vae_encode(...)` (the VAE has its own parity fixtures).
"""
import json
import os
import random
import sys
import types

import torch
from safetensors.torch import save_file

torch.set_num_threads(2)

from peft import LoraConfig, get_peft_model  # noqa: E402
from torchvision import transforms  # noqa: E402

from OmniGen import OmniGen, OmniGenProcessor  # noqa: E402

# OmniGen.train_helper imports `datasets` (only for load_dataset); (after transformers
# has probed for it) the reference environment does not install it.
_stub = types.ModuleType("datasets")
_stub.load_dataset = _stub.ClassLabel = _stub.concatenate_datasets = None
sys.modules.setdefault("datasets", _stub)


import OmniGen.train_helper.data as og_data  # noqa: E402
import OmniGen.train_helper.loss as og_loss  # noqa: E402
from OmniGen.train_helper import DatasetFromJson, TrainDataCollator  # noqa: E402
from OmniGen.utils import crop_arr, requires_grad  # noqa: E402

OUT = os.path.abspath(sys.argv[1])
TINY = os.path.join(OUT, "tiny")
REF = os.path.join(OUT, "reference")
RANK = 8

torch.manual_seed(0)
model = OmniGen.from_pretrained(TINY).to(torch.float32)  # 1.0.3 casts to bf16; the weights are on its grid
model.llm.config.use_cache = False
model.llm.gradient_checkpointing_enable()
processor = OmniGenProcessor.from_pretrained(TINY)
requires_grad(model, False)
model.llm.enable_input_require_grads()
torch.manual_seed(1)  # PEFT's gaussian init of A: N(0, 1/r)
model = get_peft_model(model, LoraConfig(r=RANK, lora_alpha=RANK, init_lora_weights="gaussian",
                                         target_modules=["qkv_proj", "o_proj"]))
model.to(torch.float32)
model.train()

lora_params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
g = torch.Generator().manual_seed(2)
with torch.no_grad():
    for n, p in lora_params:
        if ".lora_B." in n:  # PEFT initialises B to zero, which leaves A without a gradient
            p.copy_(0.05 * torch.randn(p.shape, generator=g))


def short(n):
    """`base_model.model.llm.layers.0.self_attn.qkv_proj.lora_A.default.weight` -> `llm.layers.0...qkv_proj.lora_A`"""
    return n.replace("base_model.model.", "").replace(".default.weight", "")


init_state = {short(n): p.detach().clone() for n, p in lora_params}

image_transform = transforms.Compose([
    transforms.Lambda(lambda pil_image: crop_arr(pil_image, 32)),  # input images: at most 32 pixels a side
    transforms.ToTensor(),
    transforms.Normalize(mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], inplace=True),
])
dataset = DatasetFromJson.__new__(DatasetFromJson)  # the official class without load_dataset
dataset.image_transform = image_transform
dataset.processer = processor
dataset.condition_dropout_prob = 0.1
dataset.max_input_length_limit = 1024
dataset.keep_raw_resolution = True
dataset.image_path = os.path.join(OUT, "images")
collate = TrainDataCollator(pad_token_id=processor.text_tokenizer.eos_token_id,
                            hidden_size=model.base_model.model.llm.config.hidden_size, keep_raw_resolution=True)


def examples(rows):
    """The official get_example with the dropout draw injected. The output image is not read (x1 is injected):
    only its size matters to the collator."""
    feats = []
    # instance attribute: input images go through the official transform, the (absent) output image is skipped
    dataset.process_image = lambda f: None if f is None else DatasetFromJson.process_image(dataset, f)
    for instruction, images, dropped, (oh, ow) in rows:
        dataset.data = [{"instruction": instruction, "input_images": images, "output_image": None}]
        og_data.random.random = (lambda: 0.0) if dropped else (lambda: 1.0)
        mllm, _ = dataset.get_example(0)
        feats.append((mllm, torch.zeros(3, oh, ow)))
    og_data.random.random = random.random
    return feats


def case_inputs(rows, seed):
    """The collated batch of `rows` and its injected draws (x1, x0, u, condition latents) from `seed`."""
    data = collate(examples(rows))
    gen = torch.Generator().manual_seed(seed)
    oh, ow = rows[0][3]
    x1 = [torch.randn(1, 4, oh // 8, ow // 8, generator=gen) for _ in rows]
    x0 = [torch.randn(x.shape, generator=gen) for x in x1]
    u = torch.randn(len(rows), generator=gen)
    pv = data["input_pixel_values"]  # a list of [1,3,h,w] (keep_raw_resolution)
    cond = [torch.randn(1, 4, p.shape[2] // 8, p.shape[3] // 8, generator=gen) for p in pv] or None
    return data, x1, x0, u, cond


def loss_of(inputs):
    """`training_losses(model, x1, model_kwargs)["loss"].mean()` with x0 and the normal draw of t injected."""
    data, x1, x0, u, cond = inputs
    model_kwargs = dict(input_ids=data["input_ids"], input_img_latents=cond,
                        input_image_sizes=data["input_image_sizes"], attention_mask=data["attention_mask"],
                        position_ids=data["position_ids"], padding_latent=data["padding_images"],
                        past_key_values=None, return_past_key_values=False)
    og_loss.sample_x0 = lambda _x1: [x.clone() for x in x0]
    real_normal = torch.normal
    torch.normal = lambda **kw: u.clone()
    try:
        return og_loss.training_losses(model, x1, model_kwargs)["loss"].mean()
    finally:
        torch.normal = real_normal


def run_case(name, rows, seed, opt_cfgs):
    inputs = case_inputs(rows, seed)
    data, x1, x0, u, cond = inputs
    loss = loss_of(inputs)
    t = torch.sigmoid(u)
    model.zero_grad()
    loss.backward()
    ref = {f"{name}.x1": torch.cat(x1), f"{name}.x0": torch.cat(x0), f"{name}.u": u, f"{name}.t": t, f"{name}.loss": loss.detach().reshape(1),
           f"{name}.input_ids": data["input_ids"], f"{name}.attention_mask": data["attention_mask"].to(torch.uint8),
           f"{name}.position_ids": data["position_ids"]}
    spans = [[r, s, e] for r, sp in data["input_image_sizes"].items() for (s, e) in sp]
    ref[f"{name}.image_sizes"] = torch.tensor(spans, dtype=torch.int64).reshape(-1, 3)
    if cond is not None:
        for k, lat in enumerate(cond):
            ref[f"{name}.cond_latent.{k}"] = lat
    grads = {short(n): p.grad.detach().clone() for n, p in lora_params}
    for k, v in grads.items():
        ref[f"{name}.grad.{k}"] = v
    info = {"name": name, "rows": [{"instruction": r[0], "input_images": r[1], "dropped": r[2],
                                    "output_hw": list(r[3])} for r in rows],
            "loss": loss.item(), "grad_norm": None, "optimizers": []}
    for oc in opt_cfgs:
        with torch.no_grad():
            for n, p in lora_params:
                p.copy_(init_state[short(n)])
                p.grad = grads[short(n)].clone()
        opt = torch.optim.AdamW([p for _, p in lora_params], lr=oc["lr"], weight_decay=oc["weight_decay"])
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), oc["max_grad_norm"])
        info["grad_norm"] = norm.item()
        opt.step()
        opt.zero_grad()
        for n, p in lora_params:
            ref[f"{name}.{oc['name']}.after.{short(n)}"] = p.detach().clone()
        info["optimizers"].append(dict(oc, clipped=norm.item() > oc["max_grad_norm"]))
        with torch.no_grad():
            for n, p in lora_params:
                p.copy_(init_state[short(n)])
    print(name, "loss", loss.item(), "grad norm", info["grad_norm"])
    return ref, info


OFFICIAL = {"name": "official", "lr": 1e-4, "weight_decay": 0.0, "max_grad_norm": 1.0}  # train.py defaults
SHARP = {"name": "sharp", "lr": 1e-2, "weight_decay": 0.1, "max_grad_norm": 0.05}  # decay and clipping engaged
ref = {f"init.{k}": v for k, v in init_state.items()}
cases = {"lora": {"r": RANK, "lora_alpha": RANK, "target_modules": ["qkv_proj", "o_proj"],
                  "init_lora_weights": "gaussian", "note": "B injected non-zero (PEFT's init is zero)"},
         "adamw": {"betas": [0.9, 0.999], "eps": 1e-8}, "cases": []}
CASES = [
        ("batch3", [("<img><|image_1|></img> Remove the cup.", ["a_56x40.png"], False, (64, 64)),
                    ("The woman in <img><|image_1|></img> stands beside the dog.", ["b_45x70.png"], True, (64, 64)),
                    ("A curly-haired man in a red shirt is drinking tea.", None, False, (64, 64))], 10),
        ("single_nonsquare", [("A curly-haired man in a red shirt is drinking tea.", None, False, (32, 48))], 11)]
for name, rows, seed in CASES:
    r, info = run_case(name, rows, seed, [OFFICIAL, SHARP])
    ref.update(r)
    cases["cases"].append(info)

# Two consecutive steps with one optimizer (moments and bias correction at step 2): batch3, then single_nonsquare.
with torch.no_grad():
    for n, p in lora_params:
        p.copy_(init_state[short(n)])
opt = torch.optim.AdamW([p for _, p in lora_params], lr=SHARP["lr"], weight_decay=SHARP["weight_decay"])
norms = []
for name, rows, seed in CASES:
    inputs = case_inputs(rows, seed)
    opt.zero_grad()
    loss_of(inputs).backward()
    norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), SHARP["max_grad_norm"]).item())
    opt.step()
for n, p in lora_params:
    ref[f"two_steps.after.{short(n)}"] = p.detach().clone()
cases["two_steps"] = {"cases": [c[0] for c in CASES], "optimizer": SHARP, "grad_norms": norms}
print("two steps, grad norms", norms)
save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(REF, "train.safetensors"))
with open(os.path.join(REF, "train_cases.json"), "w") as f:
    json.dump(cases, f, indent=1)
print("wrote", len(ref), "tensors")
