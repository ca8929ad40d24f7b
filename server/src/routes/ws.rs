//! `GET /ws?clientId=`: the event stream. The first message is `status` with the client's `sid` and the
//! current queue, so a client that queued before connecting misses nothing.

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Value as Json_};

use super::info::feature_flags;
use super::Shared;
use crate::clients::Frame;
use crate::engine_adapter::new_prompt_id;

/// Largest message a client may send (it only ever sends small JSON).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

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
    let hello = state.status_message(Some(&sid)).to_string();
    if socket.send(Message::Text(hello.into())).await.is_ok() {
        loop {
            tokio::select! {
                frame = connection.rx.recv() => {
                    let Some(frame) = frame else { break }; // dropped as too slow
                    let message = match frame {
                        Frame::Text(t) => Message::Text((&*t).into()),
                    };
                    if socket.send(message).await.is_err() {
                        break;
                    }
                }
                incoming = socket.recv() => match incoming {
                    Some(Ok(Message::Text(text))) => {
                        if let Some(reply) = answer(&state, text.as_str()) {
                            if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                                break;
                            }
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

/// The reply to a client's message: its `feature_flags` get ours; anything else (including garbage) is
/// ignored.
fn answer(state: &Shared, text: &str) -> Option<Json_> {
    let message: Json_ = serde_json::from_str(text).ok()?;
    (message.get("type")?.as_str()? == "feature_flags")
        .then(|| json!({"type": "feature_flags", "data": feature_flags(state)}))
}
