//! The connected WebSocket clients and the routing of messages to them.
//!
//! Each socket gets a bounded channel. Sending never waits: a client that falls so far behind that its
//! channel is full is dropped (its socket closes and the frontend reconnects), so one slow client can
//! neither slow execution nor grow the server's memory. A preview is skipped, rather than queued, for a
//! socket that already has [`PREVIEW_BACKLOG`] frames waiting: a newer one follows, and images are the
//! large frames.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::engine_adapter::Audience;
use crate::preview::EncodedPreview;

/// How many messages may wait for one socket before it counts as too slow.
const CLIENT_BUFFER: usize = 4096;

/// A socket with more frames than this waiting gets no preview.
pub const PREVIEW_BACKLOG: usize = 32;

/// A frame for a socket; cheap to clone, shared between the sockets it is broadcast to.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A JSON text message.
    Text(Utf8Bytes),
    /// A preview image; the socket frames it as its client negotiated.
    Preview(Arc<EncodedPreview>),
}

/// One connected socket, as the hub holds it.
struct Client {
    connection: u64,
    tx: mpsc::Sender<Frame>,
}

/// Every connected client by sid.
#[derive(Default)]
pub struct Clients {
    by_sid: Mutex<HashMap<String, Client>>,
    next_connection: AtomicU64,
}

/// A registration: the receiving end of one socket's channel.
pub struct Connection {
    /// The client's sid.
    pub sid: String,
    /// Identifies this socket (a reconnect under the same sid replaces it).
    pub id: u64,
    /// Frames to send.
    pub rx: mpsc::Receiver<Frame>,
}

impl Clients {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Client>> {
        self.by_sid.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a socket under `sid`, replacing an older socket with the same sid.
    pub fn connect(&self, sid: String) -> Connection {
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .insert(sid.clone(), Client { connection: id, tx });
        Connection { sid, id, rx }
    }

    /// Forgets a socket (unless a newer one took its sid).
    pub fn disconnect(&self, sid: &str, connection: u64) {
        let mut map = self.lock();
        if map.get(sid).is_some_and(|c| c.connection == connection) {
            map.remove(sid);
        }
    }

    /// Sends a JSON message to its audience.
    pub fn send(&self, audience: &Audience, message: &Json) {
        if *audience != Audience::Nobody {
            self.send_text(audience, message.to_string());
        }
    }

    /// Sends a JSON text, already serialised, to its audience.
    pub fn send_text(&self, audience: &Audience, text: String) {
        self.deliver(audience, Frame::Text(text.into()));
    }

    /// Sends a preview to its audience, skipping sockets with a backlog.
    pub fn send_preview(&self, audience: &Audience, preview: Arc<EncodedPreview>) {
        self.deliver(audience, Frame::Preview(preview));
    }

    fn deliver(&self, audience: &Audience, frame: Frame) {
        let mut map = self.lock();
        match audience {
            Audience::Nobody => {}
            Audience::Client(sid) => {
                if let Some(client) = map.get(sid) {
                    if !client.offer(frame) {
                        map.remove(sid);
                    }
                }
            }
            Audience::Everyone => map.retain(|_, client| client.offer(frame.clone())),
        }
    }
}

impl Client {
    /// Queues `frame`; `false` when the client is too slow and must go.
    fn offer(&self, frame: Frame) -> bool {
        if matches!(frame, Frame::Preview(_))
            && CLIENT_BUFFER - self.tx.capacity() > PREVIEW_BACKLOG
        {
            return true; // skipped, not dropped
        }
        self.tx.try_send(frame).is_ok()
    }
}
