//! `omnigen worker`: runs prompts that `omnigen serve --queue nats://…` hands out, with the same
//! catalogue `run` and `serve` build. See docs/scale-out.md.

use std::sync::Arc;

use anyhow::Context;
use omnigen_model::DeviceChoice;
use omnigen_nodes::omnigen::load::LoadOmniGen;
use omnigen_server::{Dirs, WorkerConfig};

use crate::catalogue::{self, io_config};
use crate::cli::WorkerArgs;
use crate::outcome::Failure;

/// Works until Ctrl-C (a prompt running then is redelivered to another worker).
pub async fn run(args: WorkerArgs) -> Result<(), Failure> {
    let (choice, device) = device(&args.device).map_err(Failure::Usage)?;
    let mut catalogue =
        catalogue::build(&args.catalogue, io_config(Some(&args.dirs))).map_err(Failure::Usage)?;
    // `device: auto` in a graph means this worker's device.
    catalogue
        .registry
        .register_arc(Arc::new(LoadOmniGen::new().with_auto_device(choice)));
    catalogue
        .plugins
        .watch(Arc::clone(&catalogue.registry))
        .map_err(Failure::Usage)?;
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    let config = WorkerConfig {
        settings: args
            .nats
            .settings(&args.queue, catalogue.plugins.builds())?,
        name: name.clone(),
        dirs: Dirs {
            input: args.dirs.input_dir.clone(),
            output: args.dirs.output_dir.clone(),
            temp: args.dirs.temp_dir.clone(),
        },
        device: device.clone(),
    };
    eprintln!(
        "worker {name}: {} node types on {device}, taking prompts from {} (Ctrl-C to stop)",
        catalogue.registry.len(),
        args.queue
    );
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    omnigen_server::run_worker(config, Arc::clone(&catalogue.registry), stop)
        .await
        .context("the worker stopped")
        .map_err(Failure::Usage)?;
    Ok(())
}

/// `--device`: parsed and opened once, so a device this build or machine lacks is said at start;
/// returns the choice and the name announced (`auto` as what it resolved to).
fn device(text: &str) -> anyhow::Result<(DeviceChoice, String)> {
    let choice = DeviceChoice::parse(text)
        .map_err(|e| anyhow::anyhow!("--device {text}: {e}; use auto, cpu, cuda:N or metal:N"))?;
    let opened = choice.open().map_err(|e| {
        let hint = match choice {
            DeviceChoice::Cuda(_) if !cfg!(feature = "cuda") => {
                "; this omnigen was built without CUDA (build it with `--features cuda`)"
            }
            DeviceChoice::Metal(_) if !cfg!(feature = "metal") => {
                "; this omnigen was built without Metal (build it with `--features metal`)"
            }
            _ => "",
        };
        anyhow::anyhow!("--device {text}: {e}{hint}")
    })?;
    let name = match choice {
        DeviceChoice::Cpu => "cpu".to_string(),
        DeviceChoice::Cuda(n) => format!("cuda:{n}"),
        DeviceChoice::Metal(n) => format!("metal:{n}"),
        DeviceChoice::Auto if opened.is_cuda() => "cuda:0".to_string(),
        DeviceChoice::Auto if opened.is_metal() => "metal:0".to_string(),
        DeviceChoice::Auto => "cpu".to_string(),
    };
    Ok((choice, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_checked_at_start() {
        assert_eq!(device("cpu").unwrap().1, "cpu");
        let err = device("tpu").unwrap_err().to_string();
        assert!(err.contains("use auto, cpu, cuda:N or metal:N"), "{err}");
        if !cfg!(feature = "cuda") {
            let err = device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("built without CUDA"), "{err}");
        }
    }
}
