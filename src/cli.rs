//! Command-line arguments (clap derive). Parsing only: no behaviour lives here.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use omnigen_server::DEFAULT_PORT;

use crate::overrides::Override;

/// Run ComfyUI-format (API) JSON graphs headlessly.
#[derive(Debug, Parser)]
#[command(name = "omnigen", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate and execute a graph, writing its outputs.
    Run(RunArgs),
    /// Check a graph against the node catalogue without running it.
    Validate(ValidateArgs),
    /// List the available node types.
    Nodes(NodesArgs),
    /// Re-run a graph every time its file is saved, re-executing only what changed.
    Watch(WatchArgs),
    /// Serve ComfyUI's HTTP + WebSocket API with a durable queue (see docs/server.md).
    Serve(ServeArgs),
    /// Print a graph file (UI workflow, API graph, POST body or PNG) as the API-format graph.
    Convert(ConvertArgs),
    /// Manage ComfyUI's editor (the frontend `omnigen serve` serves).
    Frontend(FrontendArgs),
    /// Write a pre-quantized copy of a model folder (8- or 4-bit transformer layers) that loads small.
    Quantize(QuantizeArgs),
    /// Fine-tune a model (LoRA or full) on a JSONL dataset in the official format (see docs/cli.md).
    Train(TrainArgs),
    /// Run prompts that `omnigen serve --queue nats://…` hands out (see docs/scale-out.md).
    Worker(WorkerArgs),
    /// Write the demo model's procedural training data (PNGs + a training JSONL; see model/demo).
    DemoData(DemoDataArgs),
    /// Read a VAE's reconstructions of demo pictures with the demo evaluator (share fully correct).
    DemoEval(DemoEvalArgs),
    /// Train a small SDXL-shaped VAE from scratch on a folder or training JSONL of pictures.
    TrainVae(TrainVaeArgs),
}

/// Arguments of `omnigen quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The model folder (official or diffusers layout, with its `vae/`).
    #[arg(value_name = "IN")]
    pub input: PathBuf,
    /// The new folder to write (official layout); it must not exist.
    #[arg(value_name = "OUT")]
    pub output: PathBuf,
    /// `q8` (ggml q8_0, 8.5 bits a weight) or `q4` (q4k, 4.5 bits).
    #[arg(long, default_value = "q8")]
    pub format: String,
}

/// How to reach NATS JetStream (`serve --queue` and `worker`).
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// A NATS credentials file (`.creds`) for servers that require one.
    #[arg(long, value_name = "FILE")]
    pub nats_creds: Option<PathBuf>,
    /// A CA certificate (PEM) to trust for `tls://` NATS servers.
    #[arg(long, value_name = "FILE")]
    pub nats_ca: Option<PathBuf>,
    /// How files travel between the server and its workers: `object-store` (through NATS) or
    /// `shared` (the workers' folders are the server's; give both sides the same setting).
    #[arg(
        long,
        value_name = "object-store|shared",
        default_value = "object-store"
    )]
    pub files: String,
}

/// Arguments of `omnigen worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The NATS server the front (`omnigen serve --queue`) uses: `nats://HOST:PORT`.
    #[arg(long, value_name = "nats://HOST:PORT")]
    pub queue: String,
    /// This worker's name in logs and results (default: worker-PID).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// The device model nodes use when a graph says `auto`: `auto`, `cpu`, `cuda:N` or `metal:N`.
    #[arg(long, value_name = "DEVICE", default_value = "auto")]
    pub device: String,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub dirs: DirArgs,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen frontend`.
#[derive(Debug, Args)]
pub struct FrontendArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: FrontendCommand,
}

/// The `frontend` subcommands.
#[derive(Debug, Subcommand)]
pub enum FrontendCommand {
    /// Fetch (with pip) or take a wheel of ComfyUI's frontend, check its sha256, and unpack it into the data dir.
    Install(FrontendInstallArgs),
}

/// Arguments of `omnigen frontend install`.
#[derive(Debug, Args)]
pub struct FrontendInstallArgs {
    /// The frontend version (default: the pinned one, which is also what `/system_stats` reports).
    #[arg(long, value_name = "X.Y.Z")]
    pub version: Option<String>,
    /// Use this wheel file instead of running `pip download`.
    #[arg(long, value_name = "FILE")]
    pub wheel: Option<PathBuf>,
    /// The wheel's expected sha256 (required for a version other than the pinned one).
    #[arg(long, value_name = "HEX")]
    pub sha256: Option<String>,
    /// The data dir `omnigen serve` uses; the editor goes into its `frontend/` folder.
    #[arg(long, value_name = "DIR", default_value = "omnigen-data")]
    pub data_dir: PathBuf,
}

/// Where nodes read inputs and write outputs.
#[derive(Debug, Clone, Args)]
pub struct DirArgs {
    /// Directory LoadImage reads from.
    #[arg(long, value_name = "DIR", default_value = "input")]
    pub input_dir: PathBuf,
    /// Directory SaveImage writes to.
    #[arg(long, value_name = "DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// Directory PreviewImage writes to.
    #[arg(long, value_name = "DIR", default_value = "temp")]
    pub temp_dir: PathBuf,
    /// Let LoadImage read absolute paths outside the input directory.
    #[arg(long)]
    pub allow_absolute_paths: bool,
    /// Largest image width/height LoadImage accepts (guards against decompression bombs).
    #[arg(long, value_name = "PIXELS", default_value_t = 8192)]
    pub max_image_size: u32,
}

/// Where extra node types come from.
#[derive(Debug, Clone, Args)]
pub struct CatalogueArgs {
    /// Directory of WebAssembly plugin nodes (`*.wasm`); may be repeated.
    #[arg(long = "plugins", value_name = "DIR")]
    pub plugin_dirs: Vec<PathBuf>,
    /// Register nodes used only by the test suite (a slow counting node).
    #[arg(long, hide = true)]
    pub test_nodes: bool,
}

/// Where `--events` writes the event stream (the engine's `EventSink` feeds it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutput {
    /// JSON lines on standard output (`--events jsonl` or `--events -`).
    Stdout,
    /// JSON lines appended to a file.
    File(PathBuf),
}

impl std::str::FromStr for EventOutput {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "jsonl" | "-" => EventOutput::Stdout,
            path => EventOutput::File(PathBuf::from(path)),
        })
    }
}

/// Arguments of `omnigen run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The graph file: API graph, `{"prompt": …}` body, the editor's UI workflow, or a PNG.
    #[arg(value_name = "GRAPH.json")]
    pub graph: PathBuf,
    /// Override an input: `ID.INPUT=VALUE` (VALUE is parsed as JSON, else taken as a string).
    #[arg(long = "set", value_name = "ID.INPUT=VALUE")]
    pub overrides: Vec<Override>,
    /// Write the event stream as JSON lines: `jsonl` (or `-`) for stdout, otherwise a file path.
    #[arg(long, value_name = "jsonl|FILE")]
    pub events: Option<EventOutput>,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub dirs: DirArgs,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The graph file: API graph, `{"prompt": …}` body, the editor's UI workflow, or a PNG.
    #[arg(value_name = "GRAPH.json")]
    pub graph: PathBuf,
    /// Override an input before validating: `ID.INPUT=VALUE`.
    #[arg(long = "set", value_name = "ID.INPUT=VALUE")]
    pub overrides: Vec<Override>,
    /// Print ComfyUI's error JSON (`{"error":…,"node_errors":…}`) instead of a readable report.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dirs: DirArgs,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The graph file: the editor's saved workflow, an API graph, a `{"prompt": …}` body, or a PNG.
    #[arg(value_name = "GRAPH.json|IMAGE.png")]
    pub graph: PathBuf,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Print the catalogue in ComfyUI's `/object_info` shape.
    #[arg(long)]
    pub json: bool,
    /// The input directory whose images LoadImage's `image` combo lists (with `--json`).
    #[arg(long, value_name = "DIR", default_value = "input")]
    pub input_dir: PathBuf,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The graph file to watch, or a directory whose `*.json` graphs are all watched.
    #[arg(value_name = "GRAPH.json|DIR")]
    pub target: PathBuf,
    /// Override an input on every run: `ID.INPUT=VALUE`.
    #[arg(long = "set", value_name = "ID.INPUT=VALUE")]
    pub overrides: Vec<Override>,
    /// Write the event stream as JSON lines: `jsonl` (or `-`) for stdout, otherwise a file path.
    #[arg(long, value_name = "jsonl|FILE")]
    pub events: Option<EventOutput>,
    /// Quiet period after a file change before re-running, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub debounce_ms: u64,
    /// Do not draw progress bars.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub dirs: DirArgs,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on. Anything but a loopback address needs a token.
    #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub listen: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// Where the queue database lives, and the input/output/temp folders unless given.
    #[arg(long, value_name = "DIR", default_value = "omnigen-data")]
    pub data_dir: PathBuf,
    /// Uploads and LoadImage's files (default: DATA_DIR/input).
    #[arg(long, value_name = "DIR")]
    pub input_dir: Option<PathBuf>,
    /// Saved results (default: DATA_DIR/output).
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// Previews (default: DATA_DIR/temp).
    #[arg(long, value_name = "DIR")]
    pub temp_dir: Option<PathBuf>,
    /// Access token clients must send (`Authorization: Bearer TOKEN`); default: $OMNIGEN_TOKEN.
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Accept this name in the Host header (e.g. the machine's DNS name); may be repeated.
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allowed_hosts: Vec<String>,
    /// Keep at most this many finished prompts in history.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub history_max_items: usize,
    /// Forget finished prompts older than this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub history_max_age_days: u64,
    /// Largest image width/height LoadImage accepts (guards against decompression bombs).
    #[arg(long, value_name = "PIXELS", default_value_t = 8192)]
    pub max_image_size: u32,
    /// Serve ComfyUI's editor from this folder (its `static/` build, with `index.html`); default: the one
    /// `omnigen frontend install` put into DATA_DIR/frontend, if any.
    #[arg(long, value_name = "DIR")]
    pub front_end_root: Option<PathBuf>,
    /// Hand prompts to `omnigen worker` processes through NATS JetStream (`nats://HOST:PORT`) instead
    /// of running them here; history stays in DATA_DIR. See docs/scale-out.md.
    #[arg(long, value_name = "nats://HOST:PORT")]
    pub queue: Option<String>,
    /// With `--queue`: a job neither acked nor heartbeated for this long goes to another worker.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub ack_wait_secs: f64,
    /// With `--queue`: a job delivered this many times without finishing is recorded failed.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub max_deliver: u32,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

/// Arguments of `omnigen demo-data`.
#[derive(Debug, Args)]
pub struct DemoDataArgs {
    /// The folder to write `SPLIT.jsonl`, `SPLIT.scenes.jsonl` and `SPLIT/*.png` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// How many samples (pictures: one output, plus one input for edit, subject and outline).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub count: usize,
    /// The tasks, taken in turn: t2i, edit, subject, outline.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "t2i,edit,subject,outline"
    )]
    pub tasks: Vec<String>,
    /// `train` (no held-out combination anywhere) or `heldout` (outputs of held-out combinations only).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// The picture side in pixels (a multiple of 16).
    #[arg(long, value_name = "PX", default_value_t = 64)]
    pub size: u32,
}

/// Arguments of `omnigen demo-eval`.
#[derive(Debug, Args)]
pub struct DemoEvalArgs {
    /// The VAE folder (`config.json` + `diffusion_pytorch_model.safetensors`).
    #[arg(long, value_name = "DIR")]
    pub vae: PathBuf,
    /// A folder `omnigen demo-data` wrote.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Which of its splits to read.
    #[arg(long, default_value = "heldout")]
    pub split: String,
    /// Read at most this many samples.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Also write each reconstruction here (`NNNNNN.png`).
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
}

/// Arguments of `omnigen train-vae`.
#[derive(Debug, Args)]
pub struct TrainVaeArgs {
    /// A training JSONL (its input and output pictures) or a folder of pictures, all of one size.
    #[arg(long, value_name = "JSONL|DIR")]
    pub data: PathBuf,
    /// The VAE folder to write (diffusers layout), with `loss.csv`.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f64,
    #[arg(long, default_value_t = 8)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Channels per level (`len − 1` downsamples: four levels make latent = pixels / 8).
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,64")]
    pub channels: Vec<usize>,
    #[arg(long, default_value_t = 1)]
    pub layers_per_block: usize,
    #[arg(long, default_value_t = 8)]
    pub norm_groups: usize,
    #[arg(long, default_value_t = 1e-4)]
    pub kl_weight: f64,
    /// Train on random PX×PX windows for the first `--crop-steps` steps (cheaper; a multiple of 8).
    #[arg(long, value_name = "PX")]
    pub crop: Option<usize>,
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub crop_steps: usize,
    /// Start from this VAE folder's weights (same architecture) instead of a fresh initialisation.
    #[arg(long, value_name = "DIR")]
    pub init: Option<PathBuf>,
    /// Print the losses every N steps.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub log_every: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn argument_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn events_flag_picks_stdout_or_file() {
        assert_eq!("jsonl".parse::<EventOutput>(), Ok(EventOutput::Stdout));
        assert_eq!("-".parse::<EventOutput>(), Ok(EventOutput::Stdout));
        assert_eq!(
            "ev.jsonl".parse::<EventOutput>(),
            Ok(EventOutput::File(PathBuf::from("ev.jsonl")))
        );
    }
}

/// Arguments of `omnigen train` (defaults: the official `train.py`'s, see model/README.md).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The dataset: one JSON object a line (`instruction`, `input_images`, `output_image`; paths relative to the file).
    #[arg(long, value_name = "DATA.jsonl")]
    pub data: PathBuf,
    /// The base model folder (official or diffusers layout, with `vae/`).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// Where checkpoints, `loss.csv` and `loss.png` go.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
    /// LoRA rank (LoRA is the default mode).
    #[arg(long, default_value_t = 8, conflicts_with = "full")]
    pub lora_rank: usize,
    /// LoRA alpha (default: the rank).
    #[arg(long, conflicts_with = "full")]
    pub lora_alpha: Option<f64>,
    /// Train every parameter instead of LoRA; checkpoints are model folders in the official layout.
    #[arg(long)]
    pub full: bool,
    /// Learning rate (constant).
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f64,
    /// Clip the gradient norm at this value (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    pub max_grad_norm: f64,
    /// Examples per micro-batch.
    #[arg(long, default_value_t = 1)]
    pub batch_size: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    /// Optimizer steps to run.
    #[arg(long, conflicts_with = "epochs")]
    pub steps: Option<usize>,
    /// Passes over the data (default 1 when --steps is not given).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Largest image side (the square side without --keep-raw-resolution).
    #[arg(long, default_value_t = 1024)]
    pub max_image_size: u32,
    /// Keep each image's aspect ratio (as inference preprocesses) instead of a centre-cropped square.
    #[arg(long)]
    pub keep_raw_resolution: bool,
    /// Probability of training an example unconditionally.
    #[arg(long, default_value_t = 0.1)]
    pub condition_dropout: f64,
    /// The instruction of a dropped example (default: the pipeline's negative prompt; the official trainer's is `<cfg>`).
    #[arg(long, value_name = "TEXT")]
    pub dropout_text: Option<String>,
    /// Keep an EMA of the trained weights with this decay (the official --use_ema uses 0.9999).
    #[arg(long, value_name = "DECAY")]
    pub ema: Option<f64>,
    /// `f32` or `bf16` (default: `auto`, bf16 on a GPU, f32 on the CPU).
    #[arg(long, default_value = "auto")]
    pub dtype: String,
    /// `auto`, `cpu`, `cuda:N` or `metal:N`.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Write a checkpoint every N steps (the last step always writes one).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Continue from a checkpoint folder written by an earlier run.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skip bad dataset lines with a warning instead of stopping.
    #[arg(long)]
    pub skip_bad_data: bool,
    /// Print a line per step instead of a progress bar.
    #[arg(long)]
    pub quiet: bool,
}
