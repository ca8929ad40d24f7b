//! The training loop (`train.py` of `omnigen==1.0.3`): examples from a JSONL [`Dataset`], condition
//! dropout, VAE latents, the rectified-flow loss, gradient accumulation, clipping, AdamW, optional EMA,
//! checkpoints that resume bit for bit, and the loss log.
//!
//! Randomness is counter-based: every draw (epoch order, dropout, VAE posterior sample, noise, t) is seeded
//! from `(seed, micro-batch index, slot, purpose)`, so the whole random state of a run is its seed and its
//! step count, both saved in `trainer_state.json`.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};

use super::checkpoint::{self, TrainerState};
use super::data::{load_image, BadData, DataError, Dataset, Example, ImagePrep};
use super::full::FullModel;
use super::log::{self, LossRow};
use super::{
    flow_loss, timestep_from_normal, FlowBatch, LoraAdapter, LoraConfig, OptimConfig, Optimizer,
};
use crate::error::{Error, Result};
use crate::files::ModelFiles;
use crate::noise::{gaussian, NoiseRng};
use crate::processor::{collate, Processor, TokenRow, DEFAULT_NEGATIVE_PROMPT};
use crate::transformer::Transformer;
use crate::vae::Vae;

/// LoRA or full fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TrainMode {
    /// LoRA factors on `qkv_proj` and `o_proj` (the official `--use_lora`).
    Lora(LoraConfig),
    /// Every parameter (the official default without `--use_lora`); saved in the official layout.
    Full,
}

/// How long to train.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duration {
    /// Optimizer steps.
    Steps(usize),
    /// Passes over the data (each drops its last incomplete batch, as the official loader).
    Epochs(usize),
}

/// Everything a run needs. [`TrainConfig::new`] gives the official trainer's defaults.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// The JSONL file.
    pub data: PathBuf,
    /// The base model folder (official or diffusers layout, with `vae/`).
    pub model: PathBuf,
    /// Where checkpoints, `loss.csv` and `loss.png` go.
    pub output: PathBuf,
    /// LoRA (default rank 8, alpha 8) or full.
    pub mode: TrainMode,
    /// AdamW and clipping.
    pub optim: OptimConfig,
    /// Examples per micro-batch (`--batch_size_per_device`, default 1).
    pub batch_size: usize,
    /// Micro-batches per optimizer step (default 1).
    pub grad_accum: usize,
    /// Steps or epochs (default 1 epoch).
    pub duration: Duration,
    /// Image preparation (default: 1024, raw resolution off as the official default).
    pub images: ImagePrep,
    /// Probability of replacing an example's instruction and images by [`TrainConfig::dropout_text`]
    /// (default 0.1).
    pub condition_dropout: f64,
    /// The instruction of a dropped example. Default: the pipeline's default negative prompt, so that the
    /// unconditional branch the pipeline samples with is the one trained; `"<cfg>"` is the official trainer's.
    pub dropout_text: String,
    /// Compute dtype of the transformer (the VAE always runs in f32).
    pub dtype: DType,
    /// Device.
    pub device: Device,
    /// Checkpoint every N optimizer steps (the last step always writes one).
    pub checkpoint_every: Option<usize>,
    /// EMA decay of the trained parameters (`--use_ema`: 0.9999), off when `None`.
    pub ema_decay: Option<f64>,
    /// Seed of every random draw.
    pub seed: u64,
    /// Skip or fail on bad examples.
    pub on_bad_data: BadData,
    /// A checkpoint folder to continue from.
    pub resume: Option<PathBuf>,
}

impl TrainConfig {
    /// The official defaults for `data`, `model` and `output`.
    pub fn new(
        data: impl Into<PathBuf>,
        model: impl Into<PathBuf>,
        output: impl Into<PathBuf>,
    ) -> Self {
        Self {
            data: data.into(),
            model: model.into(),
            output: output.into(),
            mode: TrainMode::Lora(LoraConfig::official(8)),
            optim: OptimConfig::default(),
            batch_size: 1,
            grad_accum: 1,
            duration: Duration::Epochs(1),
            images: ImagePrep {
                max_image_size: 1024,
                keep_raw_resolution: false,
            },
            condition_dropout: 0.1,
            dropout_text: DEFAULT_NEGATIVE_PROMPT.to_string(),
            dtype: DType::F32,
            device: Device::Cpu,
            checkpoint_every: None,
            ema_decay: None,
            seed: 0,
            on_bad_data: BadData::Fail,
            resume: None,
        }
    }
}

/// What the step callback sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The row written to `loss.csv`.
    pub row: LossRow,
    /// Steps of the whole run.
    pub total_steps: usize,
    /// Steps per second in this process so far.
    pub steps_per_s: f64,
    /// The checkpoint written after this step, if any.
    pub checkpointed: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunOutcome {
    /// Every step ran; the final checkpoint.
    Finished {
        /// The last checkpoint folder.
        checkpoint: PathBuf,
    },
    /// The callback asked to stop; a resumable checkpoint was written.
    Stopped {
        /// The checkpoint to `--resume` from.
        checkpoint: PathBuf,
        /// Steps done.
        step: usize,
    },
}

enum Params {
    Lora(LoraAdapter),
    Full {
        params: Vec<(String, Var)>,
        frozen: Vec<(String, Tensor)>,
    },
}

/// Purposes of the counter-based draws.
const DRAW_ORDER: u64 = 1;
const DRAW_DROPOUT: u64 = 2;
const DRAW_VAE: u64 = 3;
const DRAW_NOISE: u64 = 4;
const DRAW_T: u64 = 5;

/// One 64-bit seed from the run seed and three counters (SplitMix64 finalizer over a running mix).
fn draw_seed(seed: u64, a: u64, b: u64, purpose: u64) -> u64 {
    let mut h = seed ^ 0x5EED_0F0A_116E_u64;
    for v in [a, b, purpose] {
        h = h.wrapping_add(v).wrapping_add(0x9E37_79B9_7F4A_7C15);
        h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        h ^= h >> 31;
    }
    h
}

fn uniform(seed: u64) -> f64 {
    (NoiseRng::new(seed).next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A prepared example of one micro-batch.
struct Prepared {
    instruction: String,
    /// Condition latents `[1,4,h,w]` and their pixel sizes.
    inputs: Vec<(Tensor, (usize, usize))>,
    /// Target latent `[1,4,h,w]`.
    x1: Tensor,
}

/// A training run.
pub struct Trainer {
    cfg: TrainConfig,
    files: ModelFiles,
    dataset: Dataset,
    warnings: Vec<DataError>,
    processor: Processor,
    vae: Vae,
    transformer: Transformer,
    params: Params,
    optimizer: Optimizer,
    ema: Option<Vec<Tensor>>,
    posteriors: HashMap<PathBuf, (Tensor, Tensor)>,
    step: usize,
    total_steps: usize,
    per_epoch: usize,
    rows: Vec<LossRow>,
    elapsed_before: f64,
}

impl Trainer {
    /// Reads the data, loads the model (and the checkpoint to resume from), and prepares the output folder.
    pub fn new(cfg: TrainConfig) -> Result<Self> {
        if cfg.batch_size == 0 || cfg.grad_accum == 0 {
            return Err(Error::Input(
                "batch size and gradient accumulation must be at least 1".into(),
            ));
        }
        if !(0.0..=1.0).contains(&cfg.condition_dropout) {
            return Err(Error::Input(format!(
                "condition dropout {} is not a probability",
                cfg.condition_dropout
            )));
        }
        let (dataset, warnings) = Dataset::open(&cfg.data, cfg.on_bad_data)?;
        let per_epoch = dataset.len() / cfg.batch_size;
        if per_epoch == 0 {
            return Err(Error::Input(format!(
                "{}: {} usable example(s), fewer than the batch size {}",
                cfg.data.display(),
                dataset.len(),
                cfg.batch_size
            )));
        }
        let total_steps = match cfg.duration {
            Duration::Steps(n) => n,
            Duration::Epochs(e) => e * per_epoch / cfg.grad_accum,
        };
        if total_steps == 0 {
            return Err(Error::Input(format!(
                "nothing to train: {per_epoch} batch(es) an epoch make no step of {} accumulated batches",
                cfg.grad_accum
            )));
        }
        let state = match &cfg.resume {
            Some(dir) => Some(TrainerState::read(dir)?),
            None => None,
        };
        if let Some(s) = &state {
            s.check_compatible(&cfg)?;
        }
        let files = ModelFiles::discover_with_vae(&cfg.model)?;
        let processor = Processor::from_tokenizer_file(&files.tokenizer)?;
        let vae = Vae::load(&files.vae_dir, &cfg.device)?;
        let (transformer, params) = match cfg.mode {
            TrainMode::Lora(lora) => {
                let mut tr = Transformer::load(
                    &files.config,
                    &files.weights,
                    files.diffusers,
                    cfg.dtype,
                    crate::WeightFormat::Full,
                    &cfg.device,
                )?;
                let adapter = LoraAdapter::attach(&mut tr, lora, cfg.seed)?;
                (tr, Params::Lora(adapter))
            }
            TrainMode::Full => {
                // A resumed full fine-tune continues from the checkpoint's own weights.
                let source = match &cfg.resume {
                    Some(dir) => ModelFiles::discover(dir)?,
                    None => files.clone(),
                };
                let FullModel {
                    transformer,
                    params,
                    frozen,
                } = FullModel::load(&source, cfg.dtype, &cfg.device)?;
                (transformer, Params::Full { params, frozen })
            }
        };
        let vars = match &params {
            Params::Lora(a) => a.vars(),
            Params::Full { params, .. } => params.iter().map(|(_, v)| v.clone()).collect(),
        };
        let optimizer = Optimizer::new(vars.clone(), cfg.optim)?;
        let ema = cfg
            .ema_decay
            .map(|_| vars.iter().map(|v| v.as_tensor().detach()).collect());
        let mut trainer = Self {
            files,
            dataset,
            warnings,
            processor,
            vae,
            transformer,
            params,
            optimizer,
            ema,
            posteriors: HashMap::new(),
            step: 0,
            total_steps,
            per_epoch,
            rows: Vec::new(),
            elapsed_before: 0.0,
            cfg,
        };
        if let Some(state) = state {
            trainer.restore(&state)?;
        }
        std::fs::create_dir_all(&trainer.cfg.output)
            .map_err(|e| Error::io(&trainer.cfg.output, e))?;
        log::write_loss_csv(&trainer.loss_csv(), &trainer.rows)?;
        Ok(trainer)
    }

    /// Bad examples that were skipped ([`BadData::Skip`]), for warnings.
    pub fn warnings(&self) -> &[DataError] {
        &self.warnings
    }

    /// Optimizer steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// Steps of the whole run.
    pub fn total_steps(&self) -> usize {
        self.total_steps
    }

    /// The dataset.
    pub fn dataset(&self) -> &Dataset {
        &self.dataset
    }

    /// The transformer being trained (with its LoRA branches attached in LoRA mode).
    pub fn transformer(&self) -> &Transformer {
        &self.transformer
    }

    /// The trained variables with their names (`<module>.lora_A` / `.lora_B`, or official tensor names).
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        match &self.params {
            Params::Lora(a) => a
                .modules()
                .iter()
                .flat_map(|(n, a, b)| {
                    [
                        (format!("{n}.lora_A"), a.clone()),
                        (format!("{n}.lora_B"), b.clone()),
                    ]
                })
                .collect(),
            Params::Full { params, .. } => params.clone(),
        }
    }

    fn loss_csv(&self) -> PathBuf {
        self.cfg.output.join("loss.csv")
    }

    /// Runs the remaining steps. `on_step` sees every step; `Break` writes a checkpoint and stops.
    pub fn run(
        &mut self,
        on_step: &mut dyn FnMut(&StepReport) -> ControlFlow<()>,
    ) -> Result<RunOutcome> {
        let start = Instant::now();
        let first = self.step;
        let mut last_checkpoint = None;
        while self.step < self.total_steps {
            let mut row = self.train_step()?;
            row.elapsed_s = self.elapsed_before + start.elapsed().as_secs_f64();
            self.rows.push(row);
            log::append_loss_row(&self.loss_csv(), &row)?;
            let due = self.step == self.total_steps
                || self
                    .cfg
                    .checkpoint_every
                    .is_some_and(|n| n > 0 && self.step.is_multiple_of(n));
            if due {
                last_checkpoint = Some(self.save_checkpoint(row.elapsed_s)?);
            }
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            let report = StepReport {
                row,
                total_steps: self.total_steps,
                steps_per_s: (self.step - first) as f64 / secs,
                checkpointed: due,
            };
            if on_step(&report).is_break() && self.step < self.total_steps {
                let checkpoint = match (due, last_checkpoint) {
                    (true, Some(c)) => c,
                    _ => self.save_checkpoint(row.elapsed_s)?,
                };
                return Ok(RunOutcome::Stopped {
                    checkpoint,
                    step: self.step,
                });
            }
        }
        let checkpoint = match last_checkpoint {
            Some(c) => c,
            None => self.save_checkpoint(self.elapsed_before)?,
        };
        Ok(RunOutcome::Finished { checkpoint })
    }

    /// One optimizer step: `grad_accum` micro-batches, clipping, AdamW, EMA. Returns the loss row
    /// (`elapsed_s` left at 0).
    pub fn train_step(&mut self) -> Result<LossRow> {
        let mut total: Option<GradStore> = None;
        let mut loss_sum = 0f64;
        let vars = self.optimizer_vars();
        let mut epoch = 0;
        for k in 0..self.cfg.grad_accum {
            let micro = (self.step * self.cfg.grad_accum + k) as u64;
            epoch = micro as usize / self.per_epoch;
            let loss = self.micro_batch_loss(micro)?;
            loss_sum += f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
            let scaled = (loss / self.cfg.grad_accum as f64)?;
            let grads = scaled.backward()?;
            total = Some(match total {
                None => grads,
                Some(mut acc) => {
                    for v in &vars {
                        if let Some(g) = grads.get(v.as_tensor()) {
                            let sum = match acc.get(v.as_tensor()) {
                                Some(prev) => (prev + g)?,
                                None => g.clone(),
                            };
                            acc.insert(v.as_tensor(), sum);
                        }
                    }
                    acc
                }
            });
        }
        let mut grads = total.ok_or_else(|| Error::Input("no micro-batch".into()))?;
        let grad_norm = self.optimizer.step(&mut grads)?;
        if let (Some(decay), Some(ema)) = (self.cfg.ema_decay, self.ema.as_mut()) {
            for (e, v) in ema.iter_mut().zip(&vars) {
                *e = ((&*e * decay)? + (v.as_tensor().detach() * (1.0 - decay))?)?;
            }
        }
        self.step += 1;
        Ok(LossRow {
            step: self.step,
            epoch,
            loss: loss_sum / self.cfg.grad_accum as f64,
            grad_norm,
            lr: self.cfg.optim.lr,
            elapsed_s: 0.0,
        })
    }

    fn optimizer_vars(&self) -> Vec<Var> {
        match &self.params {
            Params::Lora(a) => a.vars(),
            Params::Full { params, .. } => params.iter().map(|(_, v)| v.clone()).collect(),
        }
    }

    /// The dataset indices of micro-batch `micro` (a seeded permutation per epoch, incomplete batch dropped).
    pub fn batch_indices(&self, micro: u64) -> Vec<usize> {
        let epoch = micro / self.per_epoch as u64;
        let pos = (micro % self.per_epoch as u64) as usize;
        let n = self.dataset.len();
        let mut order: Vec<usize> = (0..n).collect();
        let mut rng = NoiseRng::new(draw_seed(self.cfg.seed, epoch, 0, DRAW_ORDER));
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        order[pos * self.cfg.batch_size..(pos + 1) * self.cfg.batch_size].to_vec()
    }

    /// The loss of micro-batch `micro`: examples grouped by target size, each group one forward with the
    /// collator's padding, each image's MSE weighted equally (the official list path's mean).
    pub fn micro_batch_loss(&mut self, micro: u64) -> Result<Tensor> {
        let indices = self.batch_indices(micro);
        let mut prepared = Vec::with_capacity(indices.len());
        for (slot, &i) in indices.iter().enumerate() {
            let ex = self.dataset.examples()[i].clone();
            prepared.push(self.prepare(&ex, micro, slot as u64)?);
        }
        let b = prepared.len();
        let mut groups: Vec<((usize, usize), Vec<usize>)> = Vec::new();
        for (slot, p) in prepared.iter().enumerate() {
            let (_, _, h, w) = p.x1.dims4()?;
            match groups.iter_mut().find(|(s, _)| *s == (h, w)) {
                Some((_, v)) => v.push(slot),
                None => groups.push(((h, w), vec![slot])),
            }
        }
        let dev = self.cfg.device.clone();
        let mut total: Option<Tensor> = None;
        for ((h, w), slots) in groups {
            let mut rows = Vec::new();
            let mut cond = Vec::new();
            for (r, &slot) in slots.iter().enumerate() {
                let p = &prepared[slot];
                let sizes: Vec<(usize, usize)> = p.inputs.iter().map(|(_, s)| *s).collect();
                let tok = self.processor.tokenize_prompt(&p.instruction, &sizes, r)?;
                for &img in &tok.images {
                    cond.push(p.inputs[img].0.clone());
                }
                rows.push(TokenRow {
                    ids: tok.row.ids,
                    spans: tok.row.spans,
                });
            }
            let collated = collate(&rows, h * w / 4, &dev)?;
            let x1 = Tensor::cat(
                &slots
                    .iter()
                    .map(|&s| prepared[s].x1.clone())
                    .collect::<Vec<_>>(),
                0,
            )?;
            let noise = slots
                .iter()
                .map(|&s| {
                    gaussian(
                        draw_seed(self.cfg.seed, micro, s as u64, DRAW_NOISE),
                        (1, x1.dim(1)?, h, w),
                        &dev,
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            let x0 = Tensor::cat(&noise, 0)?;
            let u = slots
                .iter()
                .map(|&s| gaussian(draw_seed(self.cfg.seed, micro, s as u64, DRAW_T), 1, &dev))
                .collect::<Result<Vec<_>>>()?;
            let t = timestep_from_normal(&Tensor::cat(&u, 0)?)?;
            let mask = collated.attention_mask.clone();
            let loss = flow_loss(
                &self.transformer,
                &FlowBatch {
                    x1: &x1,
                    x0: &x0,
                    t: &t,
                    input_ids: &collated.input_ids,
                    condition_latents: &cond,
                    image_spans: &collated.image_spans,
                    attention_mask: &mask,
                    position_ids: &collated.position_ids,
                },
            )?;
            let weighted = (loss * (slots.len() as f64 / b as f64))?;
            total = Some(match total {
                None => weighted,
                Some(acc) => (acc + weighted)?,
            });
        }
        total.ok_or_else(|| Error::Input("empty micro-batch".into()))
    }

    /// Dropout draw, images to latents (posterior cached per file, a fresh sample per use, as the
    /// official `latent_dist.sample()`).
    fn prepare(&mut self, ex: &Example, micro: u64, slot: u64) -> Result<Prepared> {
        let seed = self.cfg.seed;
        let dropped =
            uniform(draw_seed(seed, micro, slot, DRAW_DROPOUT)) < self.cfg.condition_dropout;
        let (instruction, inputs) = if dropped {
            (self.cfg.dropout_text.clone(), Vec::new())
        } else {
            (ex.instruction.clone(), ex.input_images.clone())
        };
        let mut latents = Vec::new();
        for (k, path) in inputs.iter().enumerate() {
            let (lat, size) = self.latent(
                ex,
                path,
                draw_seed(seed, micro, slot, DRAW_VAE).wrapping_add(k as u64 + 1),
            )?;
            latents.push((lat, size));
        }
        let (x1, _) = self.latent(ex, &ex.output_image, draw_seed(seed, micro, slot, DRAW_VAE))?;
        Ok(Prepared {
            instruction,
            inputs: latents,
            x1,
        })
    }

    /// A scaled latent sample of `path` and its processed pixel size.
    fn latent(&mut self, ex: &Example, path: &Path, seed: u64) -> Result<(Tensor, (usize, usize))> {
        if !self.posteriors.contains_key(path) {
            let pixels = load_image(path, self.cfg.images, &self.cfg.device)
                .map_err(|reason| Error::Data(self.dataset.image_error(ex, path, reason)))?;
            let post = self.vae.posterior(&pixels)?;
            self.posteriors.insert(path.to_path_buf(), post);
        }
        let (mean, std) = &self.posteriors[path];
        let eps = gaussian(seed, mean.shape().clone(), mean.device())?;
        let z = (mean + std.mul(&eps)?)?;
        let vc = self.vae.config();
        let z = match vc.shift_factor {
            Some(s) => ((z - s)? * vc.scaling_factor)?,
            None => (z * vc.scaling_factor)?,
        };
        let f = vc.downscale();
        let (_, _, h, w) = z.dims4()?;
        Ok((z, (h * f, w * f)))
    }

    /// Writes `output/checkpoint-<step>` (staged under a temporary name, then renamed).
    pub fn save_checkpoint(&self, elapsed_s: f64) -> Result<PathBuf> {
        let name = format!("checkpoint-{:06}", self.step);
        let dir = self.cfg.output.join(&name);
        let tmp = self.cfg.output.join(format!(".{name}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        let vars = self.optimizer_vars();
        let current: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        self.write_weights(&tmp, &current)?;
        if let Some(ema) = &self.ema {
            self.write_weights(&tmp.join("ema"), ema)?;
        }
        let (mut tensors, steps) = self.optimizer.state();
        if let Some(ema) = &self.ema {
            for (i, e) in ema.iter().enumerate() {
                tensors.insert(format!("ema.{i}"), e.clone());
            }
        }
        checkpoint::write_optimizer(&tmp, tensors)?;
        TrainerState::of(&self.cfg, self.step, steps, self.total_steps, elapsed_s).write(&tmp)?;
        log::write_loss_csv(&tmp.join("loss.csv"), &self.rows)?;
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        log::plot_loss(&self.cfg.output.join("loss.png"), &self.rows)?;
        Ok(dir)
    }

    /// The trained weights `values` (in var order) as a PEFT folder or an official model folder.
    fn write_weights(&self, dir: &Path, values: &[Tensor]) -> Result<()> {
        match &self.params {
            Params::Lora(a) => {
                let factors: Vec<(String, Tensor, Tensor)> = a
                    .modules()
                    .iter()
                    .zip(values.chunks(2))
                    .map(|((n, _, _), ab)| (n.clone(), ab[0].clone(), ab[1].clone()))
                    .collect();
                super::adapter::write_peft(dir, a.config(), &factors)
            }
            Params::Full { params, frozen } => {
                let mut tensors: HashMap<String, Tensor> = frozen.iter().cloned().collect();
                for ((name, _), t) in params.iter().zip(values) {
                    tensors.insert(name.clone(), t.detach());
                }
                super::full::save_model_folder(dir, &self.files, tensors)
            }
        }
    }

    /// Loads a checkpoint's weights, optimizer state, EMA, step and loss rows.
    fn restore(&mut self, state: &TrainerState) -> Result<()> {
        let dir = self
            .cfg
            .resume
            .clone()
            .ok_or_else(|| Error::Input("no checkpoint to resume".into()))?;
        if let Params::Lora(adapter) = &self.params {
            let path = dir.join("adapter_model.safetensors");
            let saved = candle_core::safetensors::load(&path, &self.cfg.device)
                .map_err(|e| Error::Input(format!("cannot read `{}`: {e}", path.display())))?;
            for (name, _, _) in adapter.modules() {
                let get = |which: &str| {
                    let key = format!("base_model.model.{name}.{which}.weight");
                    saved
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| Error::Input(format!("`{}` has no `{key}`", path.display())))
                };
                adapter.set(name, &get("lora_A")?, &get("lora_B")?)?;
            }
        }
        let tensors = checkpoint::read_optimizer(&dir, &self.cfg.device)?;
        self.optimizer.load_state(&tensors, state.optimizer_steps)?;
        if let Some(ema) = self.ema.as_mut() {
            for (i, e) in ema.iter_mut().enumerate() {
                let key = format!("ema.{i}");
                let t = tensors.get(&key).ok_or_else(|| {
                    Error::Input(format!(
                        "checkpoint `{}` has no EMA (`{key}`)",
                        dir.display()
                    ))
                })?;
                *e = t.to_dtype(e.dtype())?;
            }
        }
        self.step = state.step;
        self.elapsed_before = state.elapsed_s;
        let log_path = dir.join("loss.csv");
        self.rows = if log_path.is_file() {
            log::read_loss_csv(&log_path)?
                .into_iter()
                .filter(|r| r.step <= state.step)
                .collect()
        } else {
            Vec::new()
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(dir: &Path) -> PathBuf {
        for (name, w, h) in [("a.png", 48, 32), ("b.png", 32, 32)] {
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5) as u8, (y * 7) as u8, 90]))
                .save(dir.join(name))
                .unwrap();
        }
        let text = concat!(
            r#"{"instruction": "a square", "output_image": "a.png"}"#,
            "\n",
            r#"{"instruction": "<img><|image_1|></img> edit", "input_images": ["a.png"], "output_image": "b.png"}"#,
            "\n",
        );
        let p = dir.join("d.jsonl");
        std::fs::write(&p, text).unwrap();
        p
    }

    fn config(dir: &Path, mode: TrainMode) -> TrainConfig {
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny");
        let mut cfg = TrainConfig::new(dataset(dir), tiny, dir.join("out"));
        cfg.mode = mode;
        cfg.batch_size = 2;
        cfg.condition_dropout = 0.0;
        cfg.images = ImagePrep {
            max_image_size: 64,
            keep_raw_resolution: true,
        };
        cfg
    }

    #[test]
    fn every_parameter_of_a_full_fine_tune_gets_a_gradient_through_a_mixed_size_batch() -> Result<()>
    {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer = Trainer::new(config(dir.path(), TrainMode::Full))?;
        let vars = trainer.named_vars();
        // 2 layers x 6 + embed_tokens + norm + 2 patch embedders x 2 + 2 time MLPs x 4 + final layer 4.
        assert_eq!(vars.len(), 30);
        assert!(!vars.iter().any(|(n, _)| n == "pos_embed"));
        let loss = trainer.micro_batch_loss(0)?;
        let grads = loss.backward()?;
        for (name, var) in &vars {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("no gradient reaches {name}"));
            let norm = g.sqr()?.sum_all()?.to_scalar::<f32>()?;
            assert!(
                norm > 0.0 && norm.is_finite(),
                "{name}: gradient norm {norm}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_micro_batch_redraws_the_same_randomness_and_the_next_one_other() -> Result<()> {
        let dir = tempfile::tempdir().unwrap();
        let mut trainer =
            Trainer::new(config(dir.path(), TrainMode::Lora(LoraConfig::official(4))))?;
        let a = trainer.micro_batch_loss(0)?.to_scalar::<f32>()?;
        let b = trainer.micro_batch_loss(0)?.to_scalar::<f32>()?;
        assert_eq!(a, b, "the same micro-batch draws the same randomness");
        let c = trainer.micro_batch_loss(1)?.to_scalar::<f32>()?;
        assert_ne!(a, c, "another micro-batch draws other noise");
        // Two targets of different sizes (32x48 and 32x32): one forward each, weights 1/2 each.
        let mut order = trainer.batch_indices(0);
        order.sort();
        assert_eq!(order, vec![0, 1]);
        Ok(())
    }
}
