//! What the server is started with.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::queue::HistoryLimits;

/// ComfyUI's default port.
pub const DEFAULT_PORT: u16 = 8188;

/// ComfyUI's default upload limit (`--max-upload-size`), also the `POST /prompt` body limit.
pub const DEFAULT_MAX_BODY: usize = 100 * 1024 * 1024;

/// Largest width or height (pixels) of an uploaded image by default: the same as LoadImage's default
/// (`--max-image-size`).
pub const DEFAULT_MAX_IMAGE_SIZE: u32 = 8192;

/// A compute device as `GET /system_stats` lists it (ComfyUI's shape). The server knows no devices
/// itself: whoever starts it (the binary, built for a GPU) describes them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeviceInfo {
    /// A readable name (`"cuda:0 NVIDIA H200"`).
    pub name: String,
    /// The kind, as torch names it: `"cuda"`, `"mps"`, `"cpu"` ….
    #[serde(rename = "type")]
    pub kind: String,
    /// The device index.
    pub index: u32,
    /// Total memory in bytes.
    pub vram_total: u64,
    /// Free memory in bytes.
    pub vram_free: u64,
    /// Memory held by the model runtime's allocator (ComfyUI's `torch_vram_total`).
    pub torch_vram_total: u64,
    /// Free memory inside that allocator (ComfyUI's `torch_vram_free`).
    pub torch_vram_free: u64,
}
/// The ComfyUI frontend version this server is tested with: what `omnigen frontend install` fetches and
/// what `/system_stats` reports as `required_frontend_version`. The one place the pin lives (with its hash).
pub const FRONTEND_VERSION: &str = "1.58.1";

/// sha256 of [`FRONTEND_VERSION`]'s wheel, `comfyui_frontend_package-1.58.1-py3-none-any.whl` on PyPI.
pub const FRONTEND_WHEEL_SHA256: &str =
    "37912597537a731a8f421179618a736c24184c5bdbfa327f38b2fb7c291852d9";

/// The editor's folder inside the data dir, where `omnigen frontend install` unpacks it and `omnigen serve`
/// finds it.
pub const FRONTEND_DIR: &str = "frontend";

/// The folders nodes and `/view` work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folders {
    /// Uploads and LoadImage's files (`type=input`).
    pub input: PathBuf,
    /// Saved results (`type=output`).
    pub output: PathBuf,
    /// Previews (`type=temp`).
    pub temp: PathBuf,
}

impl Folders {
    /// `input/`, `output/` and `temp/` inside `data_dir`.
    pub fn inside(data_dir: &Path) -> Self {
        Folders {
            input: data_dir.join("input"),
            output: data_dir.join("output"),
            temp: data_dir.join("temp"),
        }
    }
}

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address and port to listen on (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where the queue database (and, by default, the folders) live.
    pub data_dir: PathBuf,
    /// The input/output/temp folders.
    pub folders: Folders,
    /// The access token; required unless listening on a loopback address.
    pub token: Option<String>,
    /// Extra host names accepted in the `Host` header (besides loopback names and the listen address).
    pub allowed_hosts: Vec<String>,
    /// Largest request body in bytes.
    pub max_body_bytes: usize,
    /// How much history to keep.
    pub history: HistoryLimits,
    /// How often history is pruned (off the execution path).
    pub prune_every: Duration,
    /// Largest width or height of an uploaded image (pixels); pass LoadImage's limit here.
    pub max_image_size: u32,
    /// The devices `/system_stats` lists (empty on a CPU build).
    pub devices: Vec<DeviceInfo>,
    /// A connection that does not finish a request head within this time is closed (idle and
    /// slowloris connections); WebSocket sessions are not affected.
    pub header_read_timeout: Duration,
    /// A request body that sends nothing for this long is abandoned and its connection closed (a body
    /// trickled in slowly after its head); the time between two chunks counts, not the whole upload.
    pub body_idle_timeout: Duration,
    /// Run jobs on `omnigen worker` processes through NATS JetStream instead of in this process
    /// (docs/scale-out.md); `None` runs them here.
    pub nats: Option<crate::queue::nats::NatsSettings>,
    /// A folder with ComfyUI's editor (`index.html` and its assets), served for every path no API route
    /// answers; `None` serves no editor.
    pub front_end_root: Option<PathBuf>,
}

impl ServerConfig {
    /// Defaults: `127.0.0.1:8188`, folders inside `data_dir`, no token, ComfyUI's 100 MB body limit,
    /// 8192-pixel images, no devices.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        let data_dir = data_dir.into();
        ServerConfig {
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
            folders: Folders::inside(&data_dir),
            data_dir,
            token: None,
            allowed_hosts: Vec::new(),
            max_body_bytes: DEFAULT_MAX_BODY,
            history: HistoryLimits::default(),
            prune_every: Duration::from_secs(60),
            max_image_size: DEFAULT_MAX_IMAGE_SIZE,
            devices: Vec::new(),
            header_read_timeout: Duration::from_secs(30),
            body_idle_timeout: Duration::from_secs(30),
            front_end_root: None,
            nats: None,
        }
    }

    /// The queue database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("queue.sqlite3")
    }

    /// The single user's folder: settings (`comfy.settings.json`) and `/userdata` files, as ComfyUI
    /// lays it out (`user/default/`).
    pub fn user_dir(&self) -> PathBuf {
        self.data_dir.join("user").join("default")
    }
}
