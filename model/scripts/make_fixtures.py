"""Build the tiny OmniGen v1 parity fixtures with the official `omnigen==1.0.3` package (CPU, float32).

Usage (from the repository root, see model/tests/fixtures/README.md):

    .venv-ref/bin/python model/scripts/make_fixtures.py model/tests/fixtures

Everything random is drawn from explicit torch generators and then *stored* (initial noise, condition latents, VAE
eps), so the Rust tests inject it instead of reproducing torch's RNG. All weights (and `pos_embed`) are rounded to
the bf16 grid before anything is computed, because the official pipeline casts the model to bf16 in place.
"""
import copy
import inspect
import json
import os
import re
import shutil
import sys
import time

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

torch.set_num_threads(2)
T_START = time.time()

from diffusers.models import AutoencoderKL  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers, processors  # noqa: E402
from transformers import Phi3Config, PreTrainedTokenizerFast  # noqa: E402

import OmniGen.pipeline as og_pipeline_mod  # noqa: E402
from OmniGen import OmniGen, OmniGenPipeline, OmniGenProcessor, OmniGenScheduler  # noqa: E402
from OmniGen.scheduler import OmniGenCache  # noqa: E402

OUT = os.path.abspath(sys.argv[1])
TINY = os.path.join(OUT, "tiny")
TINY_DIFF = os.path.join(OUT, "tiny-diffusers")
LORA = os.path.join(OUT, "lora")
IMAGES = os.path.join(OUT, "images")
REF = os.path.join(OUT, "reference")
for d in (TINY, TINY_DIFF, LORA, IMAGES, REF):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)

# --------------------------------------------------------------------------------------------- prompts
NEG = inspect.signature(OmniGenProcessor.__call__).parameters["negative_prompt"].default
PROMPT_T2I = "A curly-haired man in a red shirt is drinking tea."
PROMPT_EDIT1 = "<img><|image_1|></img> Remove the cup."
PROMPT_TWO = "The woman in <img><|image_1|></img> stands beside the dog in <img><|image_2|></img>."
PROMPT_REPEAT = "<img><|image_1|></img> Remove the cup. The man is the right man in <img><|image_1|></img>."
PROMPT_REORDER = "Put <img><|image_2|></img> on the left and <img><|image_1|></img> on the right, then <img><|image_2|></img> again."
ALL_PROMPTS = [PROMPT_T2I, PROMPT_EDIT1, PROMPT_TWO, PROMPT_REPEAT, PROMPT_REORDER, NEG,
               "<img><|image_1|></img>", "<img><|image_1|></img> <img><|image_2|></img>"]

# --------------------------------------------------------------------------------------------- 1. tokenizer
# A tiny WordLevel tokenizer with the Phi-3 special-token strings and a `<s>` (id 1) BOS post-processor, so the
# processor's per-chunk BOS stripping is exercised. Vocabulary: every whitespace/punctuation piece of the prompts.
specials = ["<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
corpus = " ".join(c for p in ALL_PROMPTS
                  for c in re.split(r"<\|image_\d+\|>", OmniGenProcessor.add_prefix_instruction(None, p)))
for sp in specials:
    corpus = corpus.replace(sp, " ")
pre = pre_tokenizers.Whitespace()
vocab = {t: i for i, t in enumerate(specials)}
for w in sorted({w for w, _ in pre.pre_tokenize_str(corpus)}):
    vocab.setdefault(w, len(vocab))
VOCAB = 160
assert len(vocab) <= VOCAB, len(vocab)
tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
tok.pre_tokenizer = pre
tok.add_special_tokens(specials)
tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 pad_token="<|endoftext|>")
hf_tok.save_pretrained(TINY)

# --------------------------------------------------------------------------------------------- 2. tiny Phi-3 config
HIDDEN, HEADS, LAYERS, MLP = 32, 4, 2, 64
ORIG_MAX_POS = 64  # small, so that padded lengths cross the LongRoPE long/short threshold
cfg = Phi3Config(
    vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=MLP, num_hidden_layers=LAYERS,
    num_attention_heads=HEADS, num_key_value_heads=HEADS, hidden_act="silu", rms_norm_eps=1e-5,
    rope_theta=10000.0, max_position_embeddings=256, original_max_position_embeddings=ORIG_MAX_POS,
    rope_scaling={"type": "su", "short_factor": [1.0, 1.1, 1.4, 2.0], "long_factor": [1.0, 2.0, 5.0, 12.0]},
    bos_token_id=1, eos_token_id=2, pad_token_id=3, tie_word_embeddings=False,
    attention_dropout=0.0, resid_pdrop=0.0, embd_pdrop=0.0, use_cache=True,
)
cfg.save_pretrained(TINY)
# Phi3Config.save_pretrained rewrites "su" to "longrope"; restore the spelling of the real Shitao/OmniGen-v1 file.
with open(os.path.join(TINY, "config.json")) as f:
    cfg_json = json.load(f)
cfg_json["rope_scaling"]["type"] = "su"
cfg_json["_attn_implementation"] = "sdpa"
cfg_json["_name_or_path"] = "tiny-random-omnigen"
with open(os.path.join(TINY, "config.json"), "w") as f:
    json.dump(cfg_json, f, indent=2)

# --------------------------------------------------------------------------------------------- 3. tiny OmniGen
def bf16_round_(t):
    t.copy_(t.to(torch.bfloat16).to(torch.float32))


torch.manual_seed(0)
model = OmniGen(cfg)
with torch.no_grad():
    g = torch.Generator().manual_seed(1234)
    for name, p in model.named_parameters():  # everything random, incl. the zero-initialised final layer
        if name.endswith("norm.weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.08 * torch.randn(p.shape, generator=g))
    for t_ in list(model.parameters()) + [model.pos_embed]:
        bf16_round_(t_)
model.eval()
sd = {k: v.contiguous() for k, v in model.state_dict().items()}
save_file(sd, os.path.join(TINY, "model.safetensors"))
print("state_dict keys:", len(sd), "params:", sum(p.numel() for p in model.parameters()))

# --------------------------------------------------------------------------------------------- 4. tiny VAE
torch.manual_seed(1)
vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4,
                    down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                    block_out_channels=[8, 8, 16, 16], layers_per_block=1, norm_num_groups=4,
                    sample_size=64, scaling_factor=0.13025)
with torch.no_grad():
    g = torch.Generator().manual_seed(77)
    for name, p in vae.named_parameters():  # perturb so norms/biases are non-trivial, keep it bf16-representable
        p.add_(0.02 * torch.randn(p.shape, generator=g))
        bf16_round_(p)
vae.eval()
vae.save_pretrained(os.path.join(TINY, "vae"))

# --------------------------------------------------------------------------------------------- 5. input images
def save_png(name, arr):
    path = os.path.join(IMAGES, name)
    Image.fromarray(arr).save(path)
    return path


rng = np.random.RandomState(5)
yy, xx = np.mgrid[0:40, 0:56]
IMG_A = save_png("a_56x40.png", np.stack([(xx * 4) % 256, (yy * 6) % 256, ((xx + yy) * 3) % 256], -1).astype(np.uint8))
IMG_B = save_png("b_45x70.png", rng.randint(0, 256, size=(70, 45, 3)).astype(np.uint8))
yy, xx = np.mgrid[0:150, 0:230]
smooth = np.stack([(xx * 255 // 229), (yy * 255 // 149), ((xx * yy) % 256)], -1)
IMG_C = save_png("c_230x150.png", np.clip(smooth + rng.randint(-40, 41, size=smooth.shape), 0, 255).astype(np.uint8))
IMG_D = save_png("d_12x40.png", rng.randint(0, 256, size=(40, 12, 3)).astype(np.uint8))
rng2 = np.random.RandomState(6)  # separate stream: adding images must not change the ones above
IMG_E = os.path.join(IMAGES, "e_rgba_33x20.png")  # alpha channel: convert('RGB') drops it
Image.fromarray(rng2.randint(0, 256, size=(20, 33, 4)).astype(np.uint8), "RGBA").save(IMG_E)
IMG_F = os.path.join(IMAGES, "f_gray_20x37.png")  # 8-bit grayscale: convert('RGB') replicates it
Image.fromarray(rng2.randint(0, 256, size=(37, 20)).astype(np.uint8), "L").save(IMG_F)
IMAGE_FILES = {"a": IMG_A, "b": IMG_B, "c": IMG_C, "d": IMG_D, "e": IMG_E, "f": IMG_F}


def rel(path):
    return os.path.relpath(path, OUT)


# --------------------------------------------------------------------------------------------- 6. official loading
if not hasattr(og_pipeline_mod, "is_torch_npu_available"):
    og_pipeline_mod.is_torch_npu_available = lambda: False  # omnigen 1.0.3 NameError on CPU-only hosts
pipe = OmniGenPipeline.from_pretrained(TINY)
reloaded = load_file(os.path.join(TINY, "model.safetensors"))
assert all(torch.equal(reloaded[k], sd[k]) for k in sd)
m = pipe.model.to(torch.float32)  # 1.0.3 cast to bf16 in __init__; the weights were already on the bf16 grid
assert all(torch.equal(m.state_dict()[k], sd[k]) for k in sd)
vae = pipe.vae
proc = pipe.processor
SF = vae.config.scaling_factor

cases = {"model": {"hidden_size": HIDDEN, "num_heads": HEADS, "num_layers": LAYERS, "intermediate_size": MLP,
                   "vocab_size": VOCAB, "original_max_position_embeddings": ORIG_MAX_POS,
                   "vae_scaling_factor": SF},
         "images": {k: rel(v) for k, v in IMAGE_FILES.items()},
         "negative_prompt": NEG}


def c(t):
    t = t.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    return t.contiguous().clone()


def image_sizes_tensor(d):
    rows = [[b, s, e] for b, spans in d.items() for (s, e) in spans]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 3)


# --------------------------------------------------------------------------------------------- 7. image preprocessing
ref = {}
pre_cases = []
for name, path, max_size in [("a_1024", IMG_A, 1024), ("a_32", IMG_A, 32), ("a_24", IMG_A, 24),
                             ("b_1024", IMG_B, 1024), ("b_40", IMG_B, 40), ("c_1024", IMG_C, 1024),
                             ("c_64", IMG_C, 64), ("c_100", IMG_C, 100), ("c_37", IMG_C, 37),
                             ("d_1024", IMG_D, 1024), ("d_16", IMG_D, 16), ("e_1024", IMG_E, 1024),
                             ("f_1024", IMG_F, 1024), ("f_24", IMG_F, 24)]:
    p = OmniGenProcessor(hf_tok, max_image_size=max_size).process_image(path)
    ref[f"pre.{name}.pixels"] = c(p)
    pre_cases.append({"name": name, "image": rel(path), "max_input_image_size": max_size,
                      "out_hw": list(p.shape[-2:])})
cases["preprocess"] = pre_cases

# raw PIL resizes (uint8 HWC) so the resampler can be checked on its own
resize_cases = []
src_b = Image.open(IMG_B).convert("RGB")
src_c = Image.open(IMG_C).convert("RGB")
for name, src, src_name, size, flt in [
        ("b_bicubic_down", src_b, "b", (17, 29), Image.BICUBIC), ("b_bicubic_up", src_b, "b", (61, 83), Image.BICUBIC),
        ("b_bicubic_mixed", src_b, "b", (70, 30), Image.BICUBIC), ("c_bicubic_down", src_c, "c", (100, 65), Image.BICUBIC),
        ("c_box_half", src_c, "c", (115, 75), Image.BOX), ("b_box_half", src_b, "b", (22, 35), Image.BOX),
        ("c_box_odd", src_c, "c", (33, 21), Image.BOX), ("b_bicubic_same_w", src_b, "b", (45, 50), Image.BICUBIC)]:
    out = np.array(src.resize(size, resample=flt))
    ref[f"resize.{name}"] = torch.from_numpy(out.copy())
    resize_cases.append({"name": name, "image": src_name, "width": size[0], "height": size[1],
                         "filter": "bicubic" if flt == Image.BICUBIC else "box"})
cases["resize"] = resize_cases
save_file(ref, os.path.join(REF, "preprocess.safetensors"))

# --------------------------------------------------------------------------------------------- 8. processor / collator
ref = {}
proc_cases = []


def store_batch(prefix, d):
    ref[f"{prefix}.input_ids"] = c(d["input_ids"])
    mask = c(d["attention_mask"])
    assert bool(((mask == 0) | (mask == 1)).all())
    ref[f"{prefix}.attention_mask"] = mask.to(torch.uint8)  # 0/1 (float32 in the official code); 4x smaller
    ref[f"{prefix}.position_ids"] = c(d["position_ids"])
    ref[f"{prefix}.image_sizes"] = image_sizes_tensor(d["input_image_sizes"])
    for k, pv in enumerate(d["input_pixel_values"]):
        ref[f"{prefix}.pixels.{k}"] = c(pv)
    assert all(p is None for p in d["padding_images"])


def run_processor(name, instructions, images, height=64, width=64, use_img_cfg=True, separate=False,
                  input_size_as_output=False, max_size=1024, negative_prompt=None, tokenizer=None, group="proc",
                  case_list=None):
    pr = OmniGenProcessor(tokenizer or hf_tok, max_image_size=max_size)
    kw = {} if negative_prompt is None else {"negative_prompt": negative_prompt}
    img_paths = None if images is None else [[IMAGE_FILES[x] for x in row] for row in images]
    d = pr(instructions, img_paths, height=height, width=width, use_img_cfg=use_img_cfg,
           separate_cfg_input=separate, use_input_image_size_as_output=input_size_as_output, **kw)
    if separate:
        for i in range(len(d["input_ids"])):
            store_batch(f"{group}.{name}.b{i}", {k: v[i] for k, v in d.items()})
        n_branches = len(d["input_ids"])
    else:
        store_batch(f"{group}.{name}", d)
        n_branches = None
    (proc_cases if case_list is None else case_list).append({
                       "name": name, "instructions": instructions, "images": images, "height": height, "width": width,
                       "use_img_cfg": use_img_cfg, "separate_cfg": separate,
                       "use_input_image_size_as_output": input_size_as_output, "max_input_image_size": max_size,
                       "negative_prompt": negative_prompt, "num_branches": n_branches})
    return d


run_processor("t2i", [PROMPT_T2I], None, height=48, width=80)
run_processor("t2i_sep", [PROMPT_T2I], None, height=48, width=80, separate=True)
run_processor("edit1_imgcfg", [PROMPT_EDIT1], [["a"]])
run_processor("edit1_noimgcfg", [PROMPT_EDIT1], [["a"]], use_img_cfg=False)
run_processor("edit1_imgcfg_sep", [PROMPT_EDIT1], [["a"]], separate=True)
run_processor("edit1_noimgcfg_sep", [PROMPT_EDIT1], [["a"]], use_img_cfg=False, separate=True)
run_processor("two_images", [PROMPT_TWO], [["a", "b"]], height=32, width=48)
run_processor("two_images_sep", [PROMPT_TWO], [["a", "b"]], height=32, width=48, separate=True)
run_processor("repeat", [PROMPT_REPEAT], [["a"]])
run_processor("reorder_sep", [PROMPT_REORDER], [["a", "b"]], separate=True)
run_processor("input_size_as_output", [PROMPT_EDIT1], [["b"]], input_size_as_output=True, separate=True)
run_processor("small_max_size", [PROMPT_TWO], [["c", "d"]], max_size=40)
run_processor("custom_negative", [PROMPT_T2I], None, negative_prompt="blurry, ugly.")
run_processor("batch2", [PROMPT_T2I, PROMPT_EDIT1], [[], ["a"]], height=32, width=32)
run_processor("batch2_sep", [PROMPT_EDIT1, PROMPT_TWO], [["a"], ["b", "a"]], height=32, width=32, separate=True)
# plain tokenizer outputs of the templated text (BOS handling reference)
for i, p in enumerate(ALL_PROMPTS):
    ref[f"tok.{i}.ids"] = torch.tensor(hf_tok(OmniGenProcessor.add_prefix_instruction(None, p)).input_ids)
cases["tokenizer"] = [{"index": i, "prompt": p} for i, p in enumerate(ALL_PROMPTS)]
cases["processor"] = proc_cases
save_file(ref, os.path.join(REF, "processor.safetensors"))
print("processor cases:", len(proc_cases))

# ---- the same processor with a Llama/Phi-3-style tokenizer (BPE, normalizer Prepend("▁") + Replace(" ", "▁"),
# no pre-tokenizer, like the real Phi-3 tokenizer.json): checks per-chunk tokenization with the dummy prefix.
from tokenizers import normalizers, trainers  # noqa: E402

LLAMA_DIR = os.path.join(OUT, "tokenizer-llama-style")
shutil.rmtree(LLAMA_DIR, ignore_errors=True)
bpe = Tokenizer(models.BPE(unk_token="<unk>"))
bpe.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
bpe_corpus = [c for p in ALL_PROMPTS for c in re.split(r"<\|image_\d+\|>", OmniGenProcessor.add_prefix_instruction(None, p))]
bpe.train_from_iterator(bpe_corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False))
bpe.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
hf_llama = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<|endoftext|>")
hf_llama.save_pretrained(LLAMA_DIR)
ref = {}
llama_cases = []
for args_, kw_ in [(("t2i", [PROMPT_T2I], None), dict(height=48, width=80)),
                   (("edit1_imgcfg_sep", [PROMPT_EDIT1], [["a"]]), dict(separate=True)),
                   (("two_images", [PROMPT_TWO], [["a", "b"]]), dict(height=32, width=48)),
                   (("reorder_sep", [PROMPT_REORDER], [["a", "b"]]), dict(separate=True)),
                   (("unknown_words", ["Zebra-like <img><|image_1|></img>wörds, ünseen!"], [["a"]]), dict())]:
    run_processor(*args_, tokenizer=hf_llama, group="llama", case_list=llama_cases, **kw_)
for i, p in enumerate(ALL_PROMPTS):
    ref[f"tok.{i}.ids"] = torch.tensor(hf_llama(OmniGenProcessor.add_prefix_instruction(None, p)).input_ids)
cases["processor_llama_style"] = llama_cases
save_file(ref, os.path.join(REF, "processor_llama_style.safetensors"))

# --------------------------------------------------------------------------------------------- 9. VAE
ref = {}
with torch.no_grad():
    for name, path in [("a", IMG_A), ("b", IMG_B)]:
        px = proc.process_image(path).unsqueeze(0)
        dist = vae.encode(px).latent_dist
        eps = torch.randn(dist.mean.shape, generator=torch.Generator().manual_seed(11))
        sample = dist.mean + dist.std * eps
        ref.update({f"vae.{name}.pixels": c(px), f"vae.{name}.mean": c(dist.mean), f"vae.{name}.logvar": c(dist.logvar),
                    f"vae.{name}.std": c(dist.std), f"vae.{name}.eps": c(eps), f"vae.{name}.sample": c(sample),
                    f"vae.{name}.latent_scaled_mean": c(dist.mean * SF), f"vae.{name}.latent_scaled_sample": c(sample * SF)})
    z = torch.randn(1, 4, 6, 10, generator=torch.Generator().manual_seed(12))
    dec = vae.decode(z / SF).sample
    ref.update({"vae.decode.latent": c(z), "vae.decode.out": c(dec),
                "vae.decode.uint8": ((dec * 0.5 + 0.5).clamp(0, 1) * 255).permute(0, 2, 3, 1).to(torch.uint8)[0].contiguous()})
save_file(ref, os.path.join(REF, "vae.safetensors"))
cases["vae"] = {"decode_note": "decode input is latent/scaling_factor; uint8 = trunc(clamp(x*0.5+0.5,0,1)*255), HWC"}

# --------------------------------------------------------------------------------------------- 10. raw forwards
ref = {}
captured = {}


def hook(name):
    def fn(_mod, _inp, out):
        captured[name] = out.last_hidden_state if hasattr(out, "last_hidden_state") else out
    return fn


hooks = [m.time_token.register_forward_hook(hook("time_token")), m.t_embedder.register_forward_hook(hook("t_emb")),
         m.llm.register_forward_hook(hook("llm_hidden"))]


def rand(shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def fwd_inputs(d, sizes_hw, seed, x_rows):
    """Condition latents: random (one per placeholder occurrence, collator order) instead of VAE samples."""
    lat = [rand((1, 4, p.shape[-2] // 8, p.shape[-1] // 8), seed + 100 + k) for k, p in enumerate(d["input_pixel_values"])]
    x = rand((x_rows, 4, sizes_hw[0] // 8, sizes_hw[1] // 8), seed)
    return lat, x


fwd_cases = []


def forward_case(name, d, hw, ts, seed, model_=None, dtype=torch.float32, store_inputs=True):
    mm = m if model_ is None else model_
    rows = d["input_ids"].shape[0]
    lat, x = fwd_inputs(d, hw, seed, rows)
    t = torch.tensor(ts, dtype=torch.float32)
    with torch.no_grad():
        out = mm(x.to(dtype), t, d["input_ids"], [l.to(dtype) for l in lat] if lat else None, d["input_image_sizes"],
                 d["attention_mask"], d["position_ids"], past_key_values=None, return_past_key_values=False)
    p = f"fwd.{name}"
    if store_inputs:
        ref.update({f"{p}.x": c(x), f"{p}.t": c(t), f"{p}.input_ids": c(d["input_ids"]),
                    f"{p}.attention_mask": c(d["attention_mask"]), f"{p}.position_ids": c(d["position_ids"]),
                    f"{p}.image_sizes": image_sizes_tensor(d["input_image_sizes"])})
        for k, l in enumerate(lat):
            ref[f"{p}.cond_latent.{k}"] = c(l)
    ref[f"{p}.out"] = c(out)
    if model_ is None:
        ref.update({f"{p}.time_token": c(captured["time_token"]), f"{p}.t_emb": c(captured["t_emb"]),
                    f"{p}.llm_hidden": c(captured["llm_hidden"])})
    S = d["attention_mask"].shape[-1]
    info = {"name": name, "seq_len": S, "rope": "long" if S > ORIG_MAX_POS else "short", "out_hw_px": list(hw),
            "rows": rows, "num_cond_latents": len(lat), "dtype": str(dtype).replace("torch.", "")}
    fwd_cases.append(info)
    print("forward", info)
    return x, t, lat, out


d_t2i = proc([PROMPT_T2I], None, height=48, width=80, use_img_cfg=False, separate_cfg_input=False)
forward_case("t2i_batched", d_t2i, (48, 80), [0.3, 0.7], seed=42)
d_t2i_sep = proc([PROMPT_T2I], None, height=48, width=80, use_img_cfg=False, separate_cfg_input=True)
forward_case("t2i_cond_only", {k: v[0] for k, v in d_t2i_sep.items()}, (48, 80), [0.55], seed=43)
d_two = proc([PROMPT_TWO], [[IMG_A, IMG_B]], height=32, width=48, use_img_cfg=True, separate_cfg_input=False)
forward_case("two_images_batched", d_two, (32, 48), [0.1, 0.1, 0.1], seed=44)
d_two_sep = proc([PROMPT_TWO], [[IMG_A, IMG_B]], height=32, width=48, use_img_cfg=True, separate_cfg_input=True)
forward_case("two_images_cond_only", {k: v[0] for k, v in d_two_sep.items()}, (32, 48), [0.9], seed=45)
forward_case("two_images_imgcond_only", {k: v[2] for k, v in d_two_sep.items()}, (32, 48), [0.25], seed=46)
# ---- KV cache (OmniGenCache) at step 0 and at a later step, on the batched two-image case
kv = {}
with torch.no_grad():
    lat, x = fwd_inputs(d_two, (32, 48), 47, 3)
    t0 = torch.full((3,), 0.0)
    n_img = x.shape[-1] * x.shape[-2] // 4
    cache = OmniGenCache(n_img, offload_kv_cache=False)
    m.llm.config.use_cache = True
    out0, cache = m(x, t0, d_two["input_ids"], lat, d_two["input_image_sizes"], d_two["attention_mask"],
                    d_two["position_ids"], past_key_values=cache, return_past_key_values=True)
    x1 = rand(tuple(x.shape), 48)
    t1 = torch.full((3,), 0.25)
    pos1 = d_two["position_ids"][:, -(n_img + 1):]
    mask1 = d_two["attention_mask"][..., -(n_img + 1):, :]
    out1, cache = m(x1, t1, None, lat, d_two["input_image_sizes"], mask1, pos1, past_key_values=cache,
                    return_past_key_values=True)
    m.llm.config.use_cache = False
    full1 = m(x1, t1, d_two["input_ids"], lat, d_two["input_image_sizes"], d_two["attention_mask"],
              d_two["position_ids"], past_key_values=None, return_past_key_values=False)
    nocache0 = m(x, t0, d_two["input_ids"], lat, d_two["input_image_sizes"], d_two["attention_mask"],
                 d_two["position_ids"], past_key_values=None, return_past_key_values=False)
p = "kv.two_images_batched"
ref.update({f"{p}.step0.x": c(x), f"{p}.step0.t": c(t0), f"{p}.step0.out": c(out0), f"{p}.step0.out_nocache": c(nocache0),
            f"{p}.step1.x": c(x1), f"{p}.step1.t": c(t1), f"{p}.step1.position_ids": c(pos1),
            f"{p}.step1.attention_mask": c(mask1), f"{p}.step1.out": c(out1), f"{p}.step1.out_nocache": c(full1),
            f"{p}.cached_key.layer0": c(cache.key_cache[0]), f"{p}.cached_value.layer0": c(cache.value_cache[0])})
for k, l in enumerate(lat):
    ref[f"{p}.cond_latent.{k}"] = c(l)
print("kv step0 vs nocache max diff", float((out0 - nocache0).abs().max()),
      "; step1 vs full recompute", float((out1 - full1).abs().max()))
cases["kv"] = {"name": "two_images_batched", "inputs_from_processor_case": "two_images",
               "num_output_tokens": n_img,
               "note": "step0 uses OmniGenCache (time/image tokens attend only to condition tokens); step1 passes "
                       "input_ids=None with position_ids/attention_mask cropped to the last N_out+1 rows"}
cases["forward"] = fwd_cases
for h in hooks:
    h.remove()

# ---- bf16 forward (same inputs as t2i_batched / two_images_batched)
m_bf16 = copy.deepcopy(m).to(torch.bfloat16)
forward_case("t2i_batched_bf16", d_t2i, (48, 80), [0.3, 0.7], seed=42, model_=m_bf16, dtype=torch.bfloat16,
             store_inputs=False)
forward_case("two_images_batched_bf16", d_two, (32, 48), [0.1, 0.1, 0.1], seed=44, model_=m_bf16,
             dtype=torch.bfloat16, store_inputs=False)
del m_bf16

# --------------------------------------------------------------------------------------------- 11. LoRA
lcfg = LoraConfig(r=4, lora_alpha=8, init_lora_weights="gaussian", target_modules=["qkv_proj", "o_proj"])
base_copy = copy.deepcopy(m)
peft_model = get_peft_model(base_copy, lcfg)
with torch.no_grad():
    g = torch.Generator().manual_seed(99)
    for name, prm in peft_model.named_parameters():
        if "lora_" in name:
            prm.copy_(0.1 * torch.randn(prm.shape, generator=g))
            bf16_round_(prm)
peft_model.save_pretrained(LORA)
os.remove(os.path.join(LORA, "README.md"))  # peft's model-card boilerplate
with open(os.path.join(LORA, "adapter_config.json")) as f:
    adapter_cfg = json.load(f)
adapter_cfg["target_modules"] = sorted(adapter_cfg["target_modules"])  # peft writes a set: order varies per run
with open(os.path.join(LORA, "adapter_config.json"), "w") as f:
    json.dump(adapter_cfg, f, indent=2, sort_keys=True)
# the pipeline's merge_lora: PeftModel.from_pretrained(model, path).merge_and_unload(); here on the f32 model
merged = PeftModel.from_pretrained(copy.deepcopy(m), LORA).merge_and_unload()
lora_sd = load_file(os.path.join(LORA, "adapter_model.safetensors"))
forward_case("t2i_batched_lora", d_t2i, (48, 80), [0.3, 0.7], seed=42, model_=merged, store_inputs=False)
forward_case("two_images_batched_lora", d_two, (32, 48), [0.1, 0.1, 0.1], seed=44, model_=merged, store_inputs=False)
ref["lora.merged.layers.0.self_attn.qkv_proj.weight"] = c(merged.llm.layers[0].self_attn.qkv_proj.weight)
ref["lora.merged.layers.1.self_attn.o_proj.weight"] = c(merged.llm.layers[1].self_attn.o_proj.weight)
cases["lora"] = {"dir": rel(LORA), "r": 4, "alpha": 8, "scale": 2.0, "keys": sorted(lora_sd.keys()),
                 "note": "merged in float32: W + (alpha/r) * B @ A"}
del merged, base_copy, peft_model
save_file(ref, os.path.join(REF, "forward.safetensors"))

# --------------------------------------------------------------------------------------------- 12. sampling loops
# Replicates OmniGenPipeline.__call__ (1.0.3) with injected noise and injected condition latents (VAE posterior mean
# times scaling_factor for every occurrence), through the official OmniGenScheduler and forward_with_(separate_)cfg.
ref = {}
loop_cases = []
mean_cache = {}


def cond_latent(pixels, dtype):
    key = (pixels.shape, float(pixels.sum()))
    if key not in mean_cache:
        with torch.no_grad():
            mean_cache[key] = vae.encode(pixels).latent_dist.mean * SF
    return mean_cache[key].to(dtype)


def sample_case(name, prompt, images, height=64, width=64, steps=4, gs=2.5, igs=1.6, use_img_guidance=True,
                separate=True, use_kv=True, input_size_as_output=False, dtype=torch.float32, noise_seed=0):
    m.to(dtype)
    img_paths = None if images is None else [IMAGE_FILES[x] for x in images]
    if img_paths is None:
        use_img_guidance = False
    data = proc([prompt], None if img_paths is None else [img_paths], height=height, width=width,
                use_img_cfg=use_img_guidance, separate_cfg_input=separate,
                use_input_image_size_as_output=input_size_as_output)
    data = copy.deepcopy(data)
    num_cfg = 2 if use_img_guidance else 1
    if input_size_as_output:
        height, width = (data["input_pixel_values"][0][0] if separate else data["input_pixel_values"][0]).shape[-2:]
    noise = torch.randn(1, 4, height // 8, width // 8, generator=torch.Generator().manual_seed(noise_seed))
    latents = torch.cat([noise] * (1 + num_cfg), 0).to(dtype)
    if separate:
        lat = [[cond_latent(px, dtype) for px in branch] for branch in data["input_pixel_values"]]
    else:
        lat = [cond_latent(px, dtype) for px in data["input_pixel_values"]]
    kw = dict(input_ids=data["input_ids"], input_img_latents=lat, input_image_sizes=data["input_image_sizes"],
              attention_mask=data["attention_mask"], position_ids=data["position_ids"], cfg_scale=gs,
              img_cfg_scale=igs, use_img_cfg=use_img_guidance, use_kv_cache=use_kv, offload_model=False)
    func = m.forward_with_separate_cfg if separate else m.forward_with_cfg
    steps_log = []

    def logged(z, timesteps, **kwargs):
        out = func(z, timesteps, **kwargs)
        steps_log.append((z[:1].clone(), timesteps.clone(), out[0][:1].clone()))
        return out

    sched = OmniGenScheduler(num_steps=steps)
    with torch.no_grad():
        z = sched(latents, logged, kw, use_kv_cache=use_kv, offload_kv_cache=False)
        final = z.chunk(1 + num_cfg, dim=0)[0]
        dec = vae.decode(final.to(torch.float32) / SF).sample
    img = ((dec * 0.5 + 0.5).clamp(0, 1) * 255).permute(0, 2, 3, 1).to(torch.uint8)[0].contiguous()
    p = f"loop.{name}"
    ref.update({f"{p}.noise": c(noise), f"{p}.sigmas": c(sched.sigma), f"{p}.final_latent": c(final),
                f"{p}.decoded": c(dec), f"{p}.image_uint8": img})
    flat = [l for branch in lat for l in branch] if separate else lat
    for k, l in enumerate(flat):
        ref[f"{p}.cond_latent.{k}"] = c(l)
    for i, (zi, ti, vi) in enumerate(steps_log):
        ref.update({f"{p}.step{i}.z": c(zi), f"{p}.step{i}.t": c(ti), f"{p}.step{i}.v": c(vi)})
    info = {"name": name, "prompt": prompt, "images": images, "height": int(height), "width": int(width),
            "steps": steps, "guidance_scale": gs, "img_guidance_scale": igs, "use_img_guidance": use_img_guidance,
            "separate_cfg": separate, "use_kv_cache": use_kv, "use_input_image_size_as_output": input_size_as_output,
            "dtype": str(dtype).replace("torch.", ""), "noise_seed": noise_seed,
            "cond_latents": len(flat), "max_input_image_size": 1024}
    loop_cases.append(info)
    print("loop", name, "final mean|.|", float(final.abs().mean()), "img mean", float(img.float().mean()))
    m.to(torch.float32)
    return img


img_t2i_kv = sample_case("t2i_sep_kv", PROMPT_T2I, None, height=48, width=80)
sample_case("t2i_sep_nokv", PROMPT_T2I, None, height=48, width=80, use_kv=False)
sample_case("t2i_batched_kv", PROMPT_T2I, None, height=48, width=80, separate=False)
sample_case("t2i_batched_nokv", PROMPT_T2I, None, height=48, width=80, separate=False, use_kv=False)
img_edit = sample_case("two_images_sep_kv_imgcfg", PROMPT_TWO, ["a", "b"], height=32, width=48, gs=2.0, igs=1.6)
sample_case("two_images_batched_nokv_imgcfg", PROMPT_TWO, ["a", "b"], height=32, width=48, gs=2.0, igs=1.6,
            separate=False, use_kv=False)
sample_case("two_images_batched_kv_imgcfg", PROMPT_TWO, ["a", "b"], height=32, width=48, gs=2.0, igs=1.6,
            separate=False)
sample_case("edit_sep_kv_noimgcfg", PROMPT_EDIT1, ["a"], height=32, width=48, gs=2.0, use_img_guidance=False)
img_inp = sample_case("edit_input_size_sep_kv", PROMPT_EDIT1, ["b"], gs=2.0, igs=1.6, input_size_as_output=True)
sample_case("t2i_sep_kv_bf16", PROMPT_T2I, None, height=48, width=80, dtype=torch.bfloat16)
cases["sampling"] = loop_cases
save_file(ref, os.path.join(REF, "sampling.safetensors"))

# ---- cross-check: the real pipeline (seeded noise, VAE encode patched to the posterior mean) gives the same images
pipe.vae_encode = lambda x, dtype: cond_latent(x, dtype)
checks = {}
for tag, kw, expect in [
        ("t2i_sep_kv", dict(prompt=PROMPT_T2I, height=48, width=80, guidance_scale=2.5), img_t2i_kv),
        ("two_images_sep_kv_imgcfg", dict(prompt=PROMPT_TWO, input_images=[IMG_A, IMG_B], height=32, width=48,
                                          guidance_scale=2.0, img_guidance_scale=1.6), img_edit),
        ("edit_input_size_sep_kv", dict(prompt=PROMPT_EDIT1, input_images=[IMG_B], guidance_scale=2.0,
                                        img_guidance_scale=1.6, use_input_image_size_as_output=True), img_inp)]:
    out = pipe(num_inference_steps=4, seed=0, dtype=torch.float32, offload_kv_cache=False, **kw)[0]
    same = np.array_equal(np.array(out), expect.numpy())
    checks[tag] = same
    print("pipeline == replicated loop for", tag, ":", same)
    assert same, tag
    m = pipe.model.to(torch.float32)
cases["pipeline_crosscheck"] = checks

# --------------------------------------------------------------------------------------------- 13. diffusers layout
MAP = {"pos_embed": "patch_embedding.pos_embed",
       "x_embedder.proj.weight": "patch_embedding.output_image_proj.weight",
       "x_embedder.proj.bias": "patch_embedding.output_image_proj.bias",
       "input_x_embedder.proj.weight": "patch_embedding.input_image_proj.weight",
       "input_x_embedder.proj.bias": "patch_embedding.input_image_proj.bias",
       "final_layer.adaLN_modulation.1.weight": "norm_out.linear.weight",
       "final_layer.adaLN_modulation.1.bias": "norm_out.linear.bias",
       "final_layer.linear.weight": "proj_out.weight", "final_layer.linear.bias": "proj_out.bias",
       "llm.embed_tokens.weight": "embed_tokens.weight"}
for a in ("time_token", "t_embedder"):
    for i, j in ((0, 1), (2, 2)):
        for s in ("weight", "bias"):
            MAP[f"{a}.mlp.{i}.{s}"] = f"{a}.linear_{j}.{s}"
dsd = {}
for k, v in sd.items():
    if k in MAP:
        dsd[MAP[k]] = v
    elif "qkv_proj" in k:
        n = k.split(".")[2]
        for part, name in zip(v.chunk(3, dim=0), ("to_q", "to_k", "to_v")):
            dsd[f"layers.{n}.self_attn.{name}.weight"] = part
    elif "o_proj" in k:
        dsd[f"layers.{k.split('.')[2]}.self_attn.to_out.0.weight"] = v
    else:
        assert k.startswith("llm."), k
        dsd[k[4:]] = v
# the real diffusers repo stores the transformer in bf16 (lossless here: every value is on the bf16 grid)
dsd = {k: v.to(torch.bfloat16).contiguous() for k, v in dsd.items()}
os.makedirs(os.path.join(TINY_DIFF, "transformer"))
save_file(dsd, os.path.join(TINY_DIFF, "transformer", "diffusion_pytorch_model.safetensors"))
with open(os.path.join(TINY_DIFF, "transformer", "config.json"), "w") as f:
    json.dump({"_class_name": "OmniGenTransformer2DModel", "_diffusers_version": "0.33.0", "in_channels": 4,
               "patch_size": 2, "hidden_size": HIDDEN, "rms_norm_eps": 1e-5, "num_attention_heads": HEADS,
               "num_key_value_heads": HEADS, "intermediate_size": MLP, "num_layers": LAYERS, "pad_token_id": 3,
               "vocab_size": VOCAB, "max_position_embeddings": 256, "original_max_position_embeddings": ORIG_MAX_POS,
               "rope_base": 10000, "rope_scaling": cfg_json["rope_scaling"], "pos_embed_max_size": 192,
               "time_step_dim": 256, "flip_sin_to_cos": True, "downscale_freq_shift": 0,
               "timestep_activation_fn": "silu"}, f, indent=2)
shutil.copytree(os.path.join(TINY, "vae"), os.path.join(TINY_DIFF, "vae"))
os.makedirs(os.path.join(TINY_DIFF, "tokenizer"))
for fn in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
    shutil.copy(os.path.join(TINY, fn), os.path.join(TINY_DIFF, "tokenizer", fn))
os.makedirs(os.path.join(TINY_DIFF, "scheduler"))
with open(os.path.join(TINY_DIFF, "scheduler", "scheduler_config.json"), "w") as f:
    json.dump({"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.33.0",
               "invert_sigmas": True, "num_train_timesteps": 1, "shift": 1.0}, f, indent=2)
with open(os.path.join(TINY_DIFF, "model_index.json"), "w") as f:
    json.dump({"_class_name": "OmniGenPipeline", "_diffusers_version": "0.33.0",
               "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
               "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
               "transformer": ["diffusers", "OmniGenTransformer2DModel"],
               "vae": ["diffusers", "AutoencoderKL"]}, f, indent=2)

with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump(cases, f, indent=1)
print("done in %.1fs" % (time.time() - T_START))

# --------------------------------------------------------------------------------------------- 14. README + inventory
from safetensors import safe_open  # noqa: E402

lines = [open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures_readme_head.md")).read().rstrip(), ""]
lines.append("### Files\n\n| file | bytes |\n|---|---|")
all_files = sorted(os.path.relpath(os.path.join(dp, fn), OUT) for dp, _, fns in os.walk(OUT) for fn in fns
                   if fn != "README.md")
for fn in all_files:
    lines.append(f"| `{fn}` | {os.path.getsize(os.path.join(OUT, fn))} |")
lines.append(f"\nTotal: {sum(os.path.getsize(os.path.join(OUT, f)) for f in all_files)} bytes.\n")
for fn in [f for f in all_files if f.endswith(".safetensors")]:
    lines.append(f"### `{fn}`\n\n| key | dtype | shape |\n|---|---|---|")
    with safe_open(os.path.join(OUT, fn), "pt") as f:
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            lines.append(f"| `{k}` | {sl.get_dtype()} | {list(sl.get_shape())} |")
    lines.append("")
with open(os.path.join(OUT, "README.md"), "w") as f:
    f.write("\n".join(lines))
print("README written;", len(all_files), "files")
