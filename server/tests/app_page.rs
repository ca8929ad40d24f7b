//! The app page: built into the binary, served at `/app` (and at `/` without an editor) with a
//! Content-Security-Policy that allows no inline script.

mod common;

use common::TestServer;
use omnigen_server::ServerConfig;

async fn get(s: &TestServer, path: &str) -> reqwest::Response {
    s.http.get(s.url(path)).send().await.unwrap()
}

fn header<'r>(r: &'r reqwest::Response, name: &str) -> &'r str {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// The `src`/`href` values of `<script>` and stylesheet tags, and whether any script is inline.
fn page_assets(html: &str) -> (Vec<String>, bool) {
    let mut assets = Vec::new();
    let mut inline_script = false;
    for tag in html.split('<').skip(1) {
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[start..].split('"').next()?.to_string())
        };
        if tag.starts_with("script") {
            match attr("src") {
                Some(src) => assets.push(src),
                None => inline_script = true,
            }
        } else if tag.starts_with("link") && tag.contains("stylesheet") {
            assets.extend(attr("href"));
        }
    }
    (assets, inline_script || html.contains("javascript:"))
}

#[tokio::test]
async fn the_app_page_and_its_assets_are_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;

    let page = get(&s, "/app").await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    let policy = header(&page, "content-security-policy").to_string();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
    assert!(policy.contains("default-src 'none'"), "{policy}");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("omnigen frontend install"),
        "says how to get the editor"
    );
    let (assets, inline) = page_assets(&html);
    assert!(!inline, "no inline script in the page");
    assert!(assets.len() >= 2, "{assets:?}");

    // Every asset the page links, and the modules its script imports, are served with the policy.
    let mut modules = assets.clone();
    for asset in &assets {
        let r = get(&s, &format!("/{asset}")).await;
        assert_eq!(r.status(), 200, "{asset}");
        assert!(header(&r, "content-security-policy").contains("script-src 'self'"));
        let text = r.text().await.unwrap();
        for line in text.lines().filter(|l| l.starts_with("import ")) {
            let module = line.rsplit("'./").next().unwrap().trim_end_matches("';");
            modules.push(format!("app/{module}"));
        }
    }
    for module in modules.iter().filter(|m| m.ends_with(".js")) {
        let r = get(&s, &format!("/{module}")).await;
        assert_eq!(r.status(), 200, "{module}");
        assert_eq!(header(&r, "content-type"), "text/javascript; charset=utf-8");
        let text = r.text().await.unwrap();
        assert!(!text.contains("innerHTML"), "{module} writes no HTML");
    }
    assert!(modules.iter().any(|m| m == "app/form.js"), "{modules:?}");

    assert_eq!(get(&s, "/app/missing.js").await.status(), 404);
    assert_eq!(get(&s, "/app/..%2Fapp.js").await.status(), 404);
    assert_eq!(
        get(&s, "/api/app").await.status(),
        404,
        "a page, not an API route"
    );
    let slash = s.http.get(s.url("/app/")).send().await.unwrap();
    assert_eq!(slash.url().path(), "/app", "/app/ leads to /app");

    // Without an editor, `/` is the app page; other paths still 404.
    let root = get(&s, "/").await;
    assert_eq!(root.status(), 200);
    assert!(header(&root, "content-security-policy").contains("script-src 'self'"));
    assert_eq!(root.text().await.unwrap(), html);
    assert_eq!(get(&s, "/index.html").await.status(), 404);
    s.stop().await;
}

#[tokio::test]
async fn with_an_editor_the_root_is_the_editor_and_the_app_stays_at_app() {
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor");
    std::fs::create_dir_all(&editor).unwrap();
    std::fs::write(editor.join("index.html"), "<title>editor</title>").unwrap();
    let mut config = ServerConfig::new(dir.path().join("data"));
    config.front_end_root = Some(editor);
    let s = TestServer::start_with(config).await;
    assert_eq!(
        get(&s, "/").await.text().await.unwrap(),
        "<title>editor</title>"
    );
    let app = get(&s, "/app").await;
    assert_eq!(app.status(), 200);
    let html = app.text().await.unwrap();
    assert!(html.contains("app/app.js"));
    assert!(
        html.contains("data-editor=\"installed\""),
        "it links the editor"
    );
    s.stop().await;
}
