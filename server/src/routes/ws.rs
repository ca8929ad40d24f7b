//! `GET /ws?clientId=`: the event stream. The first message is `status` with the client's `sid` and the
//! current queue, so a client that queued before connecting misses nothing. A client's `feature_flags`
//! message is answered with the server's, and its `supports_preview_metadata` picks the preview frames it
//! gets (type 4 with metadata, else type 1).

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use tokio::sync::mpsc;

use super::info::feature_flags;
use super::Shared;
use crate::clients::Frame;
use crate::engine_adapter::new_prompt_id;

/// Largest message a client may send (it only ever sends small JSON).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// Most frames written before one flush.
const MAX_BATCH: usize = 256;

/// `?clientId=`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    #[serde(rename = "clientId")]
    client_id: Option<String>,
}

/// Upgrades to a WebSocket.
pub async fn connect(
    State(state): State<Shared>,
    Query(q): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let sid = q
        .client_id
        .filter(|id| !id.is_empty() && id.len() <= 128)
        .unwrap_or_else(|| new_prompt_id().replace('-', ""));
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| session(state, socket, sid))
}

async fn session(state: Shared, mut socket: WebSocket, sid: String) {
    let mut connection = state.clients.connect(sid.clone());
    let mut shutdown = state.shutdown.clone();
    let mut with_metadata = false;
    let hello = state.status_message(Some(&sid)).to_string();
    if socket.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                frame = connection.rx.recv() => {
                    let Some(frame) = frame else { break }; // dropped as too slow
                    if write_batch(&mut socket, &mut connection.rx, frame, with_metadata).await.is_err() {
                        break;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let Some(metadata) = preview_metadata_flag(text.as_str()) else { continue };
                        with_metadata = metadata;
                        let reply = json!({"type": "feature_flags", "data": feature_flags(&state)});
                        if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => {} // pings are answered by axum; binary is ignored
                },
                _ = shutdown.changed() => break,
            }
        }
    }
    state.clients.disconnect(&connection.sid, connection.id);
    let _ = socket.send(Message::Close(None)).await;
}

/// Writes `first` and whatever else already waits (up to [`MAX_BATCH`] frames), then flushes once: a
/// burst of small messages costs one write, not one each.
async fn write_batch(
    socket: &mut WebSocket,
    rx: &mut mpsc::Receiver<Frame>,
    first: Frame,
    with_metadata: bool,
) -> Result<(), axum::Error> {
    socket.feed(message(first, with_metadata)).await?;
    for _ in 1..MAX_BATCH {
        match rx.try_recv() {
            Ok(frame) => socket.feed(message(frame, with_metadata)).await?,
            Err(_) => break,
        }
    }
    socket.flush().await
}

/// A frame as a WebSocket message; a preview is laid out as this client negotiated.
fn message(frame: Frame, with_metadata: bool) -> Message {
    match frame {
        Frame::Text(text) => Message::Text(text),
        Frame::Preview(preview) => Message::Binary(preview.frame(with_metadata)),
    }
}

/// For a client's `feature_flags` message, whether it asked for previews with metadata; `None` for
/// anything else, garbage included, which is ignored.
fn preview_metadata_flag(text: &str) -> Option<bool> {
    let message: Json_ = serde_json::from_str(text).ok()?;
    if message.get("type")?.as_str()? != "feature_flags" {
        return None;
    }
    Some(message["data"]["supports_preview_metadata"].as_bool() == Some(true))
}
