//! The connected WebSocket clients and the routing of messages to them.
//!
//! Each socket gets a bounded channel. Sending never waits: a client that falls so far behind that its
//! channel is full is dropped (its socket closes and the frontend reconnects), so one slow client can
//! neither slow execution nor grow the server's memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value as Json;
use tokio::sync::mpsc;

use crate::engine_adapter::Audience;

/// How many messages may wait for one socket before it counts as too slow.
const CLIENT_BUFFER: usize = 4096;

/// A frame for a socket: text is shared between the sockets it is broadcast to.
#[derive(Debug, Clone)]
pub enum Frame {
    /// A JSON text message.
    Text(Arc<str>),
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
        if *audience == Audience::Nobody {
            return;
        }
        let frame = Frame::Text(Arc::from(message.to_string()));
        let mut map = self.lock();
        match audience {
            Audience::Nobody => {}
            Audience::Client(sid) => {
                if let Some(client) = map.get(sid) {
                    if client.tx.try_send(frame).is_err() {
                        map.remove(sid);
                    }
                }
            }
            Audience::Everyone => {
                map.retain(|_, client| client.tx.try_send(frame.clone()).is_ok());
            }
        }
    }
}
