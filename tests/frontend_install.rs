//! `omnigen frontend install`: the wheel's `static/` without source maps lands in DATA_DIR/frontend, only
//! when its sha256 matches, replacing a previous install; `omnigen serve` then serves it.

#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use sha2::{Digest, Sha256};
use support::*;

/// A minimal wheel: what the real one holds, in small.
fn fake_wheel(index: &str) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in [
            (
                "comfyui_frontend_package/__init__.py",
                "__version__ = '9.9.9'\n",
            ),
            ("comfyui_frontend_package/static/index.html", index),
            (
                "comfyui_frontend_package/static/assets/app.js",
                "export {}\n",
            ),
            ("comfyui_frontend_package/static/assets/app.js.map", "{}"),
        ] {
            zip.start_file(name, options).expect("entry");
            zip.write_all(body.as_bytes()).expect("write");
        }
        zip.finish().expect("finish");
    }
    out.into_inner()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[test]
fn installs_static_without_maps_and_replaces_a_previous_install() {
    let ws = Workspace::new();
    for (round, index) in ["<html>one</html>", "<html>two</html>"]
        .into_iter()
        .enumerate()
    {
        let wheel = fake_wheel(index);
        std::fs::write(ws.path("fe.whl"), &wheel).expect("write wheel");
        let hash = sha256(&wheel);
        let out = ws.run(&[
            "frontend",
            "install",
            "--version",
            "9.9.9",
            "--wheel",
            "fe.whl",
            "--sha256",
            &hash,
            "--data-dir",
            "data",
        ]);
        assert_exit(&out, 0);
        assert!(
            stdout(&out).trim().ends_with("frontend"),
            "prints where: {}",
            stdout(&out)
        );
        assert_eq!(
            std::fs::read_to_string(ws.path("data/frontend/index.html")).expect("index"),
            index,
            "round {round}"
        );
        assert!(ws.path("data/frontend/assets/app.js").is_file());
        assert!(
            !ws.path("data/frontend/assets/app.js.map").exists(),
            "source maps are left out"
        );
        assert!(
            !ws.path("data/frontend/__init__.py").exists(),
            "only static/ is unpacked"
        );
    }
    // No scratch folder is left behind.
    assert_eq!(ws.files_in("data"), ["frontend"]);
}

#[test]
fn a_wrong_hash_or_an_unpinned_version_without_a_hash_installs_nothing() {
    let ws = Workspace::new();
    std::fs::write(ws.path("fe.whl"), fake_wheel("<html></html>")).expect("write wheel");
    // The pinned version's hash is not this wheel's.
    let out = ws.run(&[
        "frontend",
        "install",
        "--wheel",
        "fe.whl",
        "--data-dir",
        "data",
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("sha256"), "{}", stderr(&out));
    let out = ws.run(&[
        "frontend",
        "install",
        "--version",
        "0.0.1",
        "--wheel",
        "fe.whl",
        "--data-dir",
        "data",
    ]);
    assert_exit(&out, 2);
    assert!(stderr(&out).contains("--sha256"), "{}", stderr(&out));
    assert!(!ws.path("data/frontend").exists());
}

/// `GET path` over plain HTTP/1.1; the whole response, headers included.
fn get(port: u16, path: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

#[test]
fn serve_serves_the_installed_editor_and_api_routes_still_win() {
    let ws = Workspace::new();
    let wheel = fake_wheel("<html>editor</html>");
    std::fs::write(ws.path("fe.whl"), &wheel).expect("write wheel");
    let hash = sha256(&wheel);
    let install = [
        "frontend",
        "install",
        "--version",
        "9.9.9",
        "--wheel",
        "fe.whl",
        "--sha256",
        &hash,
        "--data-dir",
        "data",
    ];
    assert_exit(&ws.run(&install), 0);
    let mut child = ws
        .omnigen()
        .args(["serve", "--port", "0", "--data-dir", "data"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start omnigen serve");
    let stderr = child.stderr.take().expect("stderr");
    let banner = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("serving"))
        .expect("a banner naming the address");
    let port: u16 = banner
        .rsplit_once("127.0.0.1:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {banner:?}"));

    let index = get(port, "/");
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(
        index
            .to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{index}"
    );
    assert!(index.ends_with("<html>editor</html>"), "{index}");
    let script = get(port, "/assets/app.js");
    assert!(
        script
            .to_ascii_lowercase()
            .contains("content-type: text/javascript"),
        "{script}"
    );
    assert!(get(port, "/assets/missing.js").starts_with("HTTP/1.1 404"));
    assert!(
        get(port, "/../queue.sqlite3").starts_with("HTTP/1.1 40"),
        "no way out of the folder"
    );
    assert!(
        get(port, "/api/object_info").contains("SaveImage"),
        "API routes come first"
    );
    child.kill().expect("kill");
    child.wait().expect("wait");
}
