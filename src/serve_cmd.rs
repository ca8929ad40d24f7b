//! `omnigen serve`: the ComfyUI-compatible HTTP + WebSocket server (the `omnigen-server` crate) over the
//! same catalogue `run` uses. See `docs/server.md`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use omnigen_server::{Folders, HistoryLimits, ServerConfig, DEFAULT_PORT};

use crate::catalogue::{self, io_config};
use crate::cli::{CatalogueArgs, DirArgs};
use crate::outcome::Failure;

/// The environment variable read when `--token` is not given.
pub const TOKEN_ENV: &str = "OMNIGEN_TOKEN";

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
    #[command(flatten)]
    pub catalogue: CatalogueArgs,
}

impl ServeArgs {
    fn folders(&self) -> Folders {
        let defaults = Folders::inside(&self.data_dir);
        Folders {
            input: self.input_dir.clone().unwrap_or(defaults.input),
            output: self.output_dir.clone().unwrap_or(defaults.output),
            temp: self.temp_dir.clone().unwrap_or(defaults.temp),
        }
    }

    fn config(&self) -> ServerConfig {
        let mut config = ServerConfig::new(&self.data_dir);
        config.listen = SocketAddr::new(self.listen, self.port);
        config.folders = self.folders();
        config.token = self
            .token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        config.allowed_hosts = self.allowed_hosts.clone();
        config.history = HistoryLimits {
            max_entries: self.history_max_items,
            max_age_ms: Duration::from_secs(self.history_max_age_days.saturating_mul(86_400))
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        };
        config
    }
}

/// Serves until Ctrl-C.
pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let config = args.config();
    // The same catalogue `run` builds; LoadImage stays inside the input folder.
    let folders = config.folders.clone();
    let dirs = DirArgs {
        input_dir: folders.input,
        output_dir: folders.output,
        temp_dir: folders.temp,
        allow_absolute_paths: false,
        max_image_size: args.max_image_size,
    };
    let mut catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&dirs))).map_err(Failure::Usage)?;
    catalogue
        .plugins
        .watch(std::sync::Arc::clone(&catalogue.registry))
        .map_err(Failure::Usage)?;
    let server = omnigen_server::start(config, std::sync::Arc::clone(&catalogue.registry))
        .await
        .context("cannot start the server")
        .map_err(Failure::Usage)?;
    eprintln!(
        "serving {} node types on http://{} (Ctrl-C to stop)",
        catalogue.registry.len(),
        server.local_addr()
    );
    let _ = tokio::signal::ctrl_c().await;
    eprintln!("stopping: a running prompt is queued again at the next start");
    server.shutdown().await;
    Ok(())
}
