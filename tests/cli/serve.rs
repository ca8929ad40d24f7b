//! `omnigen serve`: the safe-default refusal, and a real server answering with the CLI's catalogue.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use serde_json::Value as Json;

use crate::support::*;

#[test]
fn refuses_to_listen_beyond_loopback_without_a_token() {
    let ws = Workspace::new();
    let out = ws
        .omnigen()
        .args(["serve", "--listen", "0.0.0.0", "--port", "0"])
        .env_remove("OMNIGEN_TOKEN")
        .output()
        .expect("run omnigen");
    assert_exit(&out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("--token") && err.contains("OMNIGEN_TOKEN"),
        "{err}"
    );
}

/// `GET path` over a plain HTTP/1.1 connection; returns the body.
fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[test]
fn serves_the_same_catalogue_as_nodes_json() {
    let ws = Workspace::new();
    let mut child = ws
        .omnigen()
        .args(["serve", "--port", "0", "--data-dir", "data"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start omnigen serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let banner = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("serving"))
        .expect("a banner naming the address");
    let port: u16 = banner
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {banner:?}"));

    let served: Json = serde_json::from_str(&get(port, "/api/object_info")).expect("JSON");
    let listed = ws.run(&["nodes", "--json"]);
    assert_exit(&listed, 0);
    let listed: Json = serde_json::from_str(&stdout(&listed)).expect("JSON");
    assert_eq!(served, listed);
    assert!(ws.path("data/queue.sqlite3").is_file());
    assert!(ws.path("data/output").is_dir());
    child.kill().unwrap();
    child.wait().unwrap();
}
