//! The accept loop: HTTP/1.1 connections (with upgrades, for the WebSocket) served by hyper, like
//! `axum::serve`, but with a header-read timeout: a connection that does not finish a request head in
//! time (idle after connecting or between requests, or sending its head slowly) is closed, so idle
//! and slowloris connections cannot pile up until the process runs out of open files. A request body
//! that stops sending for the body timeout is abandoned too (its connection then closes).

use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower_http::timeout::RequestBodyTimeout;

/// How long a connection may stay silent.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// To finish a request head (idle after connecting or between requests included).
    pub header: Duration,
    /// Between two chunks of a request body.
    pub body_idle: Duration,
}

/// Serves `app` on `listener` until `stop` turns true, then lets each connection finish its current
/// request (WebSocket sessions end on the same signal) and returns.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    timeouts: Timeouts,
    stop: watch::Receiver<bool>,
) {
    let mut until = stop.clone();
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let app = app.clone();
                    let stop = stop.clone();
                    connections.spawn(connection(stream, app, timeouts, stop));
                }
                Err(e) => {
                    // Out of file descriptors, or a connection reset before it was accepted: keep
                    // serving the connections there are, and try again shortly.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = stopped(&mut until) => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

async fn connection(
    stream: tokio::net::TcpStream,
    app: Router,
    timeouts: Timeouts,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header);
    // A stalled body fails the handler's body read (400), and hyper closes a connection whose
    // request body was not read to the end.
    let app = RequestBodyTimeout::new(app, timeouts.body_idle);
    let serving = builder
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
        .with_upgrades();
    tokio::pin!(serving);
    tokio::select! {
        result = serving.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        () = stopped(&mut stop) => {}
    }
    serving.as_mut().graceful_shutdown();
    if let Err(e) = serving.await {
        tracing::debug!(error = %e, "connection ended with an error while stopping");
    }
}

/// Resolves once `stop` is true (or its sender is gone). Holds no `watch::Ref`, which is not `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
