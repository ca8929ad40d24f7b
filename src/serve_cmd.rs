//! `omnigen serve`: the ComfyUI-compatible HTTP + WebSocket server (the `omnigen-server` crate) over the
//! same catalogue `run` uses. See `docs/server.md`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use omnigen_server::config::FRONTEND_DIR;
use omnigen_server::{Folders, HistoryLimits, ServerConfig};

use crate::catalogue::{self, io_config};
use crate::cli::{DirArgs, NatsArgs, ServeArgs};
use crate::outcome::Failure;

/// The environment variable read when `--token` is not given.
pub const TOKEN_ENV: &str = "OMNIGEN_TOKEN";

impl ServeArgs {
    fn folders(&self) -> Folders {
        let defaults = Folders::inside(&self.data_dir);
        Folders {
            input: self.input_dir.clone().unwrap_or(defaults.input),
            output: self.output_dir.clone().unwrap_or(defaults.output),
            temp: self.temp_dir.clone().unwrap_or(defaults.temp),
        }
    }

    fn config(&self) -> Result<ServerConfig, Failure> {
        let mut config = ServerConfig::new(&self.data_dir);
        config.listen = SocketAddr::new(self.listen, self.port);
        config.folders = self.folders();
        config.token = self
            .token
            .clone()
            .or_else(|| std::env::var(TOKEN_ENV).ok())
            .filter(|t| !t.is_empty());
        config.allowed_hosts = self.allowed_hosts.clone();
        // Uploads are checked against the limit LoadImage decodes with.
        config.max_image_size = self.max_image_size;
        // An explicit folder wins; else the editor `omnigen frontend install` put into the data dir.
        let installed = self.data_dir.join(FRONTEND_DIR);
        config.front_end_root = self
            .front_end_root
            .clone()
            .or_else(|| installed.join("index.html").is_file().then_some(installed));
        config.history = HistoryLimits {
            max_entries: self.history_max_items,
            max_age_ms: Duration::from_secs(self.history_max_age_days.saturating_mul(86_400))
                .as_millis()
                .try_into()
                .unwrap_or(u64::MAX),
        };
        if let Some(url) = &self.queue {
            let ack_wait = Duration::try_from_secs_f64(self.ack_wait_secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    Failure::Usage(anyhow::anyhow!(
                        "--ack-wait-secs {}: give a positive number of seconds",
                        self.ack_wait_secs
                    ))
                })?;
            if self.max_deliver == 0 {
                return Err(Failure::Usage(anyhow::anyhow!(
                    "--max-deliver 0: a job must be delivered at least once"
                )));
            }
            let mut nats = self.nats.settings(url, Default::default())?;
            nats.ack_wait = ack_wait;
            nats.max_deliver = i64::from(self.max_deliver);
            config.nats = Some(nats);
        }
        Ok(config)
    }
}

impl NatsArgs {
    /// The client settings for `url` (delivery settings at their defaults), with the plugins this
    /// process loaded.
    pub fn settings(
        &self,
        url: &str,
        plugins: omnigen_server::PluginList,
    ) -> Result<omnigen_server::NatsSettings, Failure> {
        let mut settings = omnigen_server::NatsSettings::new(url);
        settings.credentials = self.nats_creds.clone();
        settings.root_certificate = self.nats_ca.clone();
        settings.files = omnigen_server::FilesMode::parse(&self.files)
            .map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
        settings.plugins = plugins;
        Ok(settings)
    }
}

/// Serves until Ctrl-C.
pub async fn run(args: ServeArgs) -> Result<(), Failure> {
    let config = args.config()?;
    if let Some(root) = &config.front_end_root {
        if !root.join("index.html").is_file() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "--front-end-root {}: no index.html there (point it at the frontend's `static` folder)",
                root.display()
            )));
        }
    }
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
    let mut config = config;
    if let Some(nats) = &mut config.nats {
        nats.plugins = catalogue.plugins.builds();
    }
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
    if args.queue.is_some() {
        eprintln!("stopping: queued prompts stay in NATS for the workers");
    } else {
        eprintln!("stopping: a running prompt is queued again at the next start");
    }
    server.shutdown().await;
    Ok(())
}
