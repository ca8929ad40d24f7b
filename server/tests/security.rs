//! Refusals: token, Host allow-list, Origin check, path variants, symlinks, active content, uploads.

mod common;

use common::TestServer;
use omnigen_server::ServerConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[tokio::test]
async fn listening_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.listen = "0.0.0.0:0".parse().unwrap();
    let (registry, _, _) = common::registry();
    let err = omnigen_server::start(config, registry)
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("--token") && text.contains("OMNIGEN_TOKEN"),
        "{text}"
    );
}

#[tokio::test]
async fn the_token_is_required_from_header_cookie_or_query() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.token = Some("s3cret".into());
    let s = TestServer::start_with(config).await;
    let status = |r: reqwest::Response| r.status().as_u16();

    assert_eq!(
        status(s.http.get(s.url("/queue")).send().await.unwrap()),
        401
    );
    let wrong = s
        .http
        .get(s.url("/queue"))
        .bearer_auth("s3cre")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let wrong = s
        .http
        .get(s.url("/queue"))
        .bearer_auth("s3cret0")
        .send()
        .await
        .unwrap();
    assert_eq!(status(wrong), 401);
    let right = s
        .http
        .get(s.url("/api/queue"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(status(right), 200);

    // A browser brings it once in the query and then holds an HttpOnly SameSite=Strict cookie.
    let first = s
        .http
        .get(s.url("/users?token=s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    let cookie = first.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let later = s
        .http
        .get(s.url("/queue"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(status(later), 200);
    let bad_cookie = s
        .http
        .get(s.url("/queue"))
        .header("cookie", "omnigen_token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(status(bad_cookie), 401);

    // The socket needs it too.
    let url = format!("ws://{}/ws", s.addr);
    assert!(tokio_tungstenite::connect_async(url.clone()).await.is_err());
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer s3cret".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
    s.stop().await;
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let own = format!("http://{}", s.addr);

    // DNS rebinding: a hostile name resolving to 127.0.0.1.
    for host in [
        "evil.example",
        "evil.example:8188",
        "127.0.0.1.evil.example",
        "localhost.evil",
    ] {
        let r = s
            .http
            .get(s.url("/queue"))
            .header("host", host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{host}");
    }
    let r = s
        .http
        .get(s.url("/queue"))
        .header("host", format!("localhost:{}", s.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // CSRF: state-changing requests from other origins.
    let post = |origin: &str| {
        s.http
            .post(s.url("/queue"))
            .header("origin", origin)
            .body(json!({"clear": true}).to_string())
            .send()
    };
    let other_port = format!("http://127.0.0.1:{}", s.addr.port() + 1);
    for origin in [
        "http://evil.example",
        "null",
        other_port.as_str(),
        "file://",
        "https://127.0.0.1",
    ] {
        assert_eq!(post(origin).await.unwrap().status(), 403, "{origin}");
    }
    assert_eq!(post(&own).await.unwrap().status(), 200);
    // Without an Origin (API clients) it is allowed.
    let (status, _) = s.post("/queue", json!({"clear": true})).await;
    assert_eq!(status, 200);
    // A foreign page submitting a prompt is refused before anything is queued.
    let r = s
        .http
        .post(s.url("/prompt"))
        .header("origin", "http://evil.example")
        .body(common::graph(1, "c").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(s.get("/prompt").await.1["exec_info"]["queue_remaining"], 0);

    // The WebSocket upgrade checks the Origin too.
    for (origin, ok) in [
        ("http://evil.example", false),
        ("null", false),
        (own.as_str(), true),
    ] {
        let mut request = format!("ws://{}/ws", s.addr).into_client_request().unwrap();
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        assert_eq!(
            tokio_tungstenite::connect_async(request).await.is_ok(),
            ok,
            "{origin}"
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn view_serves_only_plain_paths_inside_its_folders() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), b"TOP-SECRET-CONTENT").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let output = dir.path().join("output");
    std::fs::create_dir_all(output.join("sub")).unwrap();
    std::fs::write(output.join("sub/ok.png"), b"\x89PNG\r\n\x1a\nfake").unwrap();
    std::fs::write(output.join("page.html"), b"<script>alert(1)</script>").unwrap();
    std::fs::write(output.join("pic.svg"), b"<svg onload=alert(1)/>").unwrap();
    std::fs::write(dir.path().join("input/in.png"), b"\x89PNG\r\n\x1a\nin").unwrap();
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(outside.path(), output.join("link")).unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret.txt"), output.join("s.txt"))
            .unwrap();
    }

    let view = |query: &str| s.http.get(s.url(&format!("/view?{query}"))).send();
    let r = view("filename=ok.png&subfolder=sub&type=output")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-type"], "image/png");
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("inline"));
    let r = view("filename=in.png [input]").await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"\x89PNG\r\n\x1a\nin");

    for name in ["page.html", "pic.svg"] {
        let r = view(&format!("filename={name}")).await.unwrap();
        assert_eq!(r.status(), 200);
        let disposition = r.headers()["content-disposition"].to_str().unwrap();
        assert!(
            disposition.starts_with("attachment"),
            "{name}: {disposition}"
        );
        assert_ne!(r.headers()["content-type"], "text/html");
    }

    let attacks = [
        "filename=..%2Fsecret.txt",
        "filename=secret.txt&subfolder=..",
        "filename=secret.txt&subfolder=sub%2F..%2F..",
        "filename=%2Fetc%2Fpasswd",
        "filename=passwd&subfolder=%2Fetc",
        "filename=..%5C..%5Csecret.txt",
        "filename=C%3A%5Cwindows%5Cwin.ini",
        "filename=ok.png%00.txt&subfolder=sub",
        "filename=%252e%252e%252fsecret.txt",
        "filename=secret.txt&subfolder=%252e%252e",
        "filename=secret.txt&subfolder=link",
        "filename=s.txt",
        "filename=ok.png&subfolder=sub&type=..%2Foutput",
    ];
    for attack in attacks {
        let r = view(attack).await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert!(matches!(status, 400 | 403), "{attack}: {status} {body}");
        assert!(!body.contains("TOP-SECRET-CONTENT"), "{attack}: {body}");
    }
    assert_eq!(view("filename=missing.png").await.unwrap().status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn uploads_keep_base_names_dedupe_and_refuse_active_content() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let png = common::png(2, 2, [1, 2, 3, 255]);
    let upload = |name: &str, bytes: Vec<u8>, subfolder: &str| {
        let form = reqwest::multipart::Form::new()
            .part(
                "image",
                reqwest::multipart::Part::bytes(bytes).file_name(name.to_string()),
            )
            .text("subfolder", subfolder.to_string());
        s.http.post(s.url("/upload/image")).multipart(form).send()
    };

    let (status, answer) =
        common::status_json(upload("cat.png", png.clone(), "").await.unwrap()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"name": "cat.png", "subfolder": "", "type": "input"})
    );
    // The same bytes again keep the name; different bytes get `name (1).png`.
    let (_, answer) = common::status_json(upload("cat.png", png.clone(), "").await.unwrap()).await;
    assert_eq!(answer["name"], "cat.png");
    let other = common::png(2, 2, [9, 9, 9, 255]);
    let (_, answer) = common::status_json(upload("cat.png", other, "").await.unwrap()).await;
    assert_eq!(answer["name"], "cat (1).png");
    assert!(dir.path().join("input/cat (1).png").is_file());

    // Folders in the file name are dropped.
    let (_, answer) =
        common::status_json(upload("../../evil.png", png.clone(), "pets").await.unwrap()).await;
    assert_eq!(answer["name"], "evil.png");
    assert!(dir.path().join("input/pets/evil.png").is_file());

    for (name, bytes, subfolder) in [
        ("x.html", b"<script>alert(1)</script>".to_vec(), ""),
        ("x.svg", b"<svg onload=alert(1)/>".to_vec(), ""),
        ("x.png", b"<html>not a png</html>".to_vec(), ""),
        ("x.png", png.clone(), ".."),
        ("x.png", png.clone(), "/tmp"),
    ] {
        let r = upload(name, bytes, subfolder).await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 403),
            "{name} in {subfolder:?}"
        );
    }
    assert!(!dir.path().join("x.png").exists());
    assert!(!dir.path().join("input/x.html").exists());
    s.stop().await;
}
