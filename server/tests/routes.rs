//! The frontend's remaining routes over a real loopback server: `/jobs` and cancel, settings and
//! userdata (with persistence across a restart), `/upload/mask`, upload decoding, `/view` previews and
//! channels, `extra_pnginfo` in saved PNGs and `/system_stats` devices.

mod common;

use common::{graph, png, png_text, png_with_text, slow, status_json, TestServer};
use omnigen_server::config::DeviceInfo;
use omnigen_server::ServerConfig;
use reqwest::multipart::{Form, Part};
use serde_json::{json, Value as Json};

fn ids(jobs: &Json) -> Vec<&str> {
    jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn jobs_list_detail_and_cancel_in_the_frontends_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let done = s.queue(graph(1, "c")).await;
    s.finished(&done).await;
    let running = s.queue(slow(1000, 10)).await;
    s.running(&running).await;
    let waiting = s.queue(graph(2, "c")).await;

    // The queue panel's request.
    let (status, queue) = s
        .get("/api/jobs?status=in_progress,pending&limit=200&offset=0")
        .await;
    assert_eq!(status, 200, "{queue}");
    assert_eq!(ids(&queue), [waiting.as_str(), running.as_str()]);
    assert_eq!(queue["jobs"][0]["status"], "pending");
    assert_eq!(queue["jobs"][1]["status"], "in_progress");
    assert!(queue["jobs"][1]["execution_start_time"].is_u64());
    for job in queue["jobs"].as_array().unwrap() {
        assert!(job["create_time"].is_u64(), "{job}");
        assert!(job["priority"].is_number(), "{job}");
        assert_eq!(job["outputs_count"], 0);
    }
    assert_eq!(
        queue["pagination"],
        json!({"offset": 0, "limit": 200, "total": 2, "has_more": false})
    );

    // Cancelling a pending job takes it out of the queue, and saying it again is still true.
    for _ in 0..2 {
        let (status, answer) = s
            .post(&format!("/api/jobs/{waiting}/cancel"), json!({}))
            .await;
        assert_eq!(status, 200);
        assert_eq!(answer, json!({"cancelled": true}));
    }
    // Cancelling the running one interrupts it.
    let (_, answer) = s
        .post(&format!("/api/jobs/{running}/cancel"), json!({}))
        .await;
    assert_eq!(answer, json!({"cancelled": true}));
    s.finished(&running).await;
    let (_, answer) = s.post(&format!("/jobs/{done}/cancel"), json!({})).await;
    assert_eq!(answer, json!({"cancelled": false}), "a finished job stays");

    // The history panel's request: newest first, interrupted and deleted ones are `cancelled`.
    let (status, history) = s
        .get("/api/jobs?status=completed,failed,cancelled&limit=200&offset=0")
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        ids(&history),
        [waiting.as_str(), running.as_str(), done.as_str()]
    );
    let statuses: Vec<&str> = history["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["cancelled", "cancelled", "completed"]);
    let finished = &history["jobs"][2];
    assert!(
        finished["execution_end_time"].as_u64() >= finished["execution_start_time"].as_u64(),
        "{finished}"
    );
    assert_eq!(history["pagination"]["total"], 3);

    // Paging and sorting.
    let (_, page) = s.get("/jobs?limit=1&offset=1&sort_order=asc").await;
    assert_eq!(ids(&page), [running.as_str()]);
    assert_eq!(
        page["pagination"],
        json!({"offset": 1, "limit": 1, "total": 3, "has_more": true})
    );
    let (_, by_duration) = s
        .get("/jobs?status=completed,cancelled&sort_by=execution_duration")
        .await;
    assert_eq!(
        by_duration["jobs"][0]["id"], running,
        "the interrupted slow job ran longest"
    );

    // One job in detail: outputs, status and the workflow to re-open.
    let (status, detail) = s.get(&format!("/api/jobs/{done}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["id"], done);
    assert_eq!(detail["status"], "completed");
    assert_eq!(detail["outputs"], json!({"2": {"value": ["1"]}}));
    assert_eq!(detail["execution_status"]["status_str"], "success");
    assert_eq!(detail["execution_status"]["completed"], true);
    assert_eq!(detail["workflow"]["prompt"]["1"]["class_type"], "Const");
    assert_eq!(detail["workflow"]["extra_data"]["client_id"], "c");

    // Unknown ids and bad queries.
    let unknown = "00000000-0000-4000-8000-000000000000";
    let (status, answer) = s.get(&format!("/api/jobs/{unknown}")).await;
    assert_eq!((status, answer), (404, json!({"error": "Job not found"})));
    let (status, _) = s
        .post(&format!("/api/jobs/{unknown}/cancel"), json!({}))
        .await;
    assert_eq!(status, 404);
    for (query, names) in [
        ("status=done", "done"),
        ("limit=0", "limit"),
        ("limit=x", "limit"),
        ("offset=-1", "offset"),
        ("sort_by=name", "sort_by"),
        ("sort_order=up", "sort_order"),
    ] {
        let (status, answer) = s.get(&format!("/api/jobs?{query}")).await;
        assert_eq!(status, 400, "{query}");
        assert!(
            answer["error"].as_str().unwrap().contains(names),
            "{query}: {answer}"
        );
    }

    // Cancelling several at once.
    let a = s.queue(slow(1000, 10)).await;
    s.running(&a).await;
    let b = s.queue(graph(3, "c")).await;
    let (_, answer) = s.post("/api/jobs/cancel", json!({"job_ids": [a, b]})).await;
    assert_eq!(answer, json!({"cancelled": true}));
    s.finished(&a).await;
    let (_, answer) = s.post("/api/jobs/cancel", json!({"job_ids": [done]})).await;
    assert_eq!(answer, json!({"cancelled": false}));
    let (status, _) = s.post("/api/jobs/cancel", json!({"job_ids": "x"})).await;
    assert_eq!(status, 400);

    // A failed job carries its execution_error.
    let failed = s
        .queue(json!({"prompt": {"1": {"class_type": "Fail", "inputs": {"message": "no luck"}}}}))
        .await;
    s.finished(&failed).await;
    let (_, answer) = s.get("/api/jobs?status=failed").await;
    assert_eq!(ids(&answer), [failed.as_str()]);
    let error = &answer["jobs"][0]["execution_error"];
    assert_eq!(error["exception_message"], "no luck", "{answer}");
    assert_eq!(error["node_id"], "1");
    assert_eq!(error["node_type"], "Fail");
    assert!(error["traceback"].is_array());
    s.stop().await;
}

#[tokio::test]
async fn settings_merge_set_and_persist_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.get("/api/settings").await, (200, json!({})));
    let (status, _) = s
        .post(
            "/api/settings",
            json!({"Comfy.A": 1, "Comfy.B": {"nested": [1, 2]}}),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = s
        .post("/api/settings/Comfy.InstalledVersion", json!("1.58.1"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(s.get("/api/settings/Comfy.A").await.1, json!(1));
    assert_eq!(s.get("/settings/Comfy.Unset").await, (200, Json::Null));

    // Writes racing each other lose no key.
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..16 {
        let request = s
            .http
            .post(s.url("/api/settings"))
            .body(json!({format!("k{i}"): i}).to_string());
        writes.spawn(async move { request.send().await.unwrap().status().as_u16() });
    }
    while let Some(status) = writes.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    let (_, all) = s.get("/api/settings").await;
    assert_eq!(all.as_object().unwrap().len(), 3 + 16, "{all}");

    // Bad bodies are refused and change nothing.
    let (status, _) = s.post("/api/settings", json!([1, 2])).await;
    assert_eq!(status, 400);
    let r = s
        .http
        .post(s.url("/api/settings/Comfy.A"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    s.stop().await;

    let file = dir.path().join("user/default/comfy.settings.json");
    assert!(file.is_file());
    let s = TestServer::start(dir.path()).await;
    let (_, after) = s.get("/api/settings").await;
    assert_eq!(after, all);
    assert_eq!(after["Comfy.InstalledVersion"], "1.58.1");
    assert_eq!(after["Comfy.B"], json!({"nested": [1, 2]}));
    s.stop().await;
}

#[tokio::test]
async fn userdata_files_are_written_listed_moved_deleted_and_kept_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.max_body_bytes = 64 * 1024;
    let s = TestServer::start_with(config.clone()).await;
    let listing = "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true";
    assert_eq!(
        s.get(listing).await.0,
        404,
        "no folder yet: the frontend reads it as empty"
    );

    let put = |file: &str, query: &str, body: &'static str| {
        s.http
            .post(s.url(&format!("/api/userdata/{file}{query}")))
            .body(body)
            .send()
    };
    let workflow = r#"{"nodes":[],"links":[]}"#;
    let (status, answer) =
        status_json(put("workflows%2Fa.json", "", workflow).await.unwrap()).await;
    assert_eq!((status, answer), (200, json!("workflows/a.json")));
    let (status, _) = status_json(
        put("workflows%2Fa.json", "?overwrite=false", "{}")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "overwrite=false keeps the file");
    let (status, info) = status_json(
        put("workflows%2Fsub%2Fb.json", "?full_info=true", "{}")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{info}");
    assert_eq!(info["path"], "workflows/sub/b.json");
    assert_eq!(info["size"], 2);
    assert!(
        info["modified"].as_u64().unwrap() > 1_600_000_000_000,
        "milliseconds"
    );
    assert!(info["created"].is_u64());
    put("workflows%2F.index.json", "", "{}").await.unwrap();

    let (status, files) = s.get(listing).await;
    assert_eq!(status, 200, "{files}");
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        ["a.json", "sub/b.json"],
        "hidden files are not listed"
    );
    assert_eq!(files[0]["size"], workflow.len());
    assert_eq!(
        s.get("/api/userdata?dir=workflows").await.1,
        json!(["a.json"])
    );
    assert_eq!(
        s.get("/api/userdata?dir=workflows&recurse=true&split=true")
            .await
            .1,
        json!([["a.json", "a.json"], ["sub/b.json", "sub", "b.json"]])
    );
    assert_eq!(s.get("/api/userdata").await.0, 400, "dir is required");

    let r = s
        .http
        .get(s.url("/api/userdata/workflows%2Fa.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(r.headers()["content-disposition"], "attachment");
    assert_eq!(r.text().await.unwrap(), workflow);

    // user.css is the one file served inline, as a stylesheet.
    put("user.css", "", "body { color: red }").await.unwrap();
    let r = s
        .http
        .get(s.url("/api/userdata/user.css"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    assert_eq!(r.headers()["content-disposition"], "inline");

    // Move (rename), refusing to replace with overwrite=false.
    let (status, moved) = s
        .post(
            "/api/userdata/workflows%2Fa.json/move/workflows%2Frenamed.json",
            json!(null),
        )
        .await;
    assert_eq!((status, moved), (200, json!("workflows/renamed.json")));
    assert_eq!(s.get("/api/userdata/workflows%2Fa.json").await.0, 404);
    let (status, _) = s
        .post(
            "/api/userdata/workflows%2Fsub%2Fb.json/move/workflows%2Frenamed.json?overwrite=false",
            json!(null),
        )
        .await;
    assert_eq!(status, 409);
    let (status, info) = s
        .post(
            "/api/userdata/workflows%2Fsub%2Fb.json/move/workflows%2Fc.json?full_info=true",
            json!(null),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["path"], "workflows/c.json");

    // Delete.
    let r = s
        .http
        .delete(s.url("/api/userdata/workflows%2Fc.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(s.get("/api/userdata/workflows%2Fc.json").await.0, 404);
    let r = s
        .http
        .delete(s.url("/api/userdata/workflows%2Fc.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Paths that leave the user folder, and bodies over the limit, write nothing.
    for file in [
        "..%2F..%2Fevil.json",
        "%2Fetc%2Fevil.json",
        "%252e%252e%2Fevil.json",
        "workflows%5C..%5C..%5Cevil.json",
        "a%00.json",
    ] {
        let r = put(file, "", "{}").await.unwrap();
        assert!(
            matches!(r.status().as_u16(), 400 | 403 | 404),
            "{file}: {}",
            r.status()
        );
    }
    assert_eq!(s.get("/api/userdata?dir=..").await.0, 403);
    let r = s
        .http
        .post(s.url("/api/userdata/workflows%2Fbig.json"))
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert!(!dir.path().join("user/default/workflows/big.json").exists());
    assert!(!dir.path().join("evil.json").exists());
    assert!(!dir.path().join("user/evil.json").exists());

    // Symlinks pointing out of the user folder are neither followed nor listed.
    #[cfg(unix)]
    {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.json"), "SECRET").unwrap();
        let user = dir.path().join("user/default");
        std::os::unix::fs::symlink(
            outside.path().join("secret.json"),
            user.join("workflows/link.json"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path(), user.join("out")).unwrap();
        for file in ["workflows%2Flink.json", "out%2Fsecret.json"] {
            let (status, body) = s.get(&format!("/api/userdata/{file}")).await;
            assert_eq!(status, 403, "{file}: {body}");
        }
        let (status, _) = status_json(put("out%2Fnew.json", "", "{}").await.unwrap()).await;
        assert_eq!(status, 403);
        let (status, _) = status_json(put("workflows%2Flink.json", "", "{}").await.unwrap()).await;
        assert_eq!(status, 403);
        assert_eq!(s.get("/api/userdata?dir=out").await.0, 403);
        assert_eq!(
            s.get("/api/userdata?dir=workflows&recurse=true").await.1,
            json!(["renamed.json"])
        );
        assert_eq!(
            std::fs::read_to_string(outside.path().join("secret.json")).unwrap(),
            "SECRET"
        );
        assert!(!outside.path().join("new.json").exists());
        std::fs::remove_file(user.join("workflows/link.json")).unwrap();
    }
    s.stop().await;

    // Everything is still there after a restart.
    let s = TestServer::start_with(config).await;
    let r = s
        .http
        .get(s.url("/api/userdata/workflows%2Frenamed.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), workflow);
    assert_eq!(
        s.get("/api/userdata?dir=workflows&recurse=true").await.1,
        json!(["renamed.json"])
    );
    s.stop().await;
}

async fn upload(
    s: &TestServer,
    route: &str,
    name: &str,
    bytes: Vec<u8>,
    fields: &[(&str, String)],
) -> (u16, Json) {
    let mut form = Form::new().part("image", Part::bytes(bytes).file_name(name.to_string()));
    for (k, v) in fields {
        form = form.text(k.to_string(), v.clone());
    }
    let r = s
        .http
        .post(s.url(route))
        .multipart(form)
        .send()
        .await
        .unwrap();
    status_json(r).await
}

#[tokio::test]
async fn uploads_are_decoded_and_checked_against_the_image_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path());
    config.max_image_size = 64;
    let s = TestServer::start_with(config).await;
    let (status, answer) = upload(
        &s,
        "/upload/image",
        "ok.png",
        png(64, 8, [1, 2, 3, 255]),
        &[],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(dir.path().join("input/ok.png").is_file());

    let mut truncated = png(16, 16, [9, 9, 9, 255]);
    truncated.truncate(truncated.len() / 2);
    let cases = [
        ("wide.png", png(65, 8, [0; 4]), "64x64"),
        ("tall.png", png(8, 100, [0; 4]), "64x64"),
        (
            "corrupt.png",
            b"\x89PNG\r\n\x1a\ngarbage".to_vec(),
            "corrupt.png",
        ),
        ("truncated.png", truncated, "truncated.png"),
        ("fake.jpg", b"\xff\xd8\xffnot a jpeg".to_vec(), "fake.jpg"),
        (
            "anim.gif",
            b"GIF89a\x01\0\x01\0".to_vec(),
            "png, jpg and webp",
        ),
    ];
    for (name, bytes, says) in cases {
        let (status, answer) = upload(&s, "/upload/image", name, bytes, &[]).await;
        assert_eq!(status, 400, "{name}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{name}: {message}");
        assert!(!dir.path().join("input").join(name).exists(), "{name}");
    }
    s.stop().await;
}

#[tokio::test]
async fn mask_uploads_put_the_masks_alpha_on_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let chunks = [("workflow".to_string(), r#"{"id":"w"}"#.to_string())];
    let original = png_with_text(4, 3, [200, 100, 50, 255], &chunks);
    let (status, _) = upload(&s, "/upload/image", "orig.png", original, &[]).await;
    assert_eq!(status, 200);

    let reference = json!({"filename": "orig.png", "subfolder": "", "type": "input"}).to_string();
    let fields = |reference: &str| {
        vec![
            ("original_ref", reference.to_string()),
            ("type", "input".to_string()),
            ("subfolder", "clipspace".to_string()),
        ]
    };
    let mask = png(4, 3, [0, 0, 0, 77]);
    let (status, answer) = upload(
        &s,
        "/api/upload/mask",
        "mask.png",
        mask.clone(),
        &fields(&reference),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer,
        json!({"name": "mask.png", "subfolder": "clipspace", "type": "input"})
    );
    let stored = std::fs::read(dir.path().join("input/clipspace/mask.png")).unwrap();
    let pixels = image::load_from_memory(&stored).unwrap().to_rgba8();
    assert_eq!(pixels.dimensions(), (4, 3));
    assert!(pixels.pixels().all(|p| p.0 == [200, 100, 50, 77]));
    assert_eq!(png_text(&stored), chunks, "the original's workflow is kept");

    // The annotated form names the type too.
    let annotated = json!({"filename": "orig.png [input]"}).to_string();
    let (status, _) = upload(
        &s,
        "/upload/mask",
        "mask2.png",
        mask.clone(),
        &fields(&annotated),
    )
    .await;
    assert_eq!(status, 200);

    let missing = json!({"filename": "nope.png", "type": "input"}).to_string();
    let outside = json!({"filename": "../orig.png", "subfolder": "", "type": "input"}).to_string();
    let up = json!({"filename": "orig.png", "subfolder": "..", "type": "input"}).to_string();
    for (name, bytes, reference, expected) in [
        ("m.png", png(5, 3, [0; 4]), reference.clone(), 400),
        ("m.png", mask.clone(), missing, 404),
        ("m.png", mask.clone(), outside, 403),
        ("m.png", mask.clone(), up, 403),
        ("m.png", mask.clone(), "not json".to_string(), 400),
        (
            "m.png",
            b"\x89PNG\r\n\x1a\nbad".to_vec(),
            reference.clone(),
            400,
        ),
    ] {
        let (status, answer) = upload(&s, "/upload/mask", name, bytes, &fields(&reference)).await;
        assert_eq!(status, expected, "{reference}: {answer}");
    }
    let (status, answer) = upload(&s, "/upload/mask", "m.png", mask, &[]).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .unwrap()
        .contains("original_ref"));
    assert!(!dir.path().join("input/clipspace/m.png").exists());
    assert!(!dir.path().join("input/m.png").exists());
    s.stop().await;
}

#[tokio::test]
async fn view_sends_previews_and_channels() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let original = png(4, 4, [10, 20, 30, 40]);
    std::fs::write(dir.path().join("output/a.png"), &original).unwrap();
    std::fs::write(dir.path().join("output/notes.txt"), b"text").unwrap();
    let view = |query: &str| {
        let url = s.url(&format!("/api/view?filename=a.png&type=output&{query}"));
        let http = s.http.clone();
        async move {
            let r = http.get(url).send().await.unwrap();
            let status = r.status().as_u16();
            let kind = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            (status, kind, r.bytes().await.unwrap().to_vec())
        }
    };

    let (status, kind, bytes) = view("preview=jpeg;80").await;
    assert_eq!((status, kind.as_str()), (200, "image/jpeg"));
    let jpeg = image::load_from_memory(&bytes).unwrap();
    assert_eq!((jpeg.width(), jpeg.height()), (4, 4));
    // No lossy WebP encoder: a webp preview is a JPEG unless alpha must be kept.
    assert_eq!(view("preview=webp;90").await.1, "image/jpeg");
    let (_, kind, bytes) = view("preview=webp;90&channel=rgba").await;
    assert_eq!(kind, "image/webp");
    let webp = image::load_from_memory(&bytes).unwrap().to_rgba8();
    assert_eq!(webp.get_pixel(0, 0).0, [10, 20, 30, 40]);

    let (_, kind, bytes) = view("channel=rgb").await;
    assert_eq!(kind, "image/png");
    let rgb = image::load_from_memory(&bytes).unwrap();
    assert!(!rgb.color().has_alpha());
    assert_eq!(rgb.to_rgb8().get_pixel(3, 3).0, [10, 20, 30]);
    let (_, _, bytes) = view("channel=a").await;
    let alpha = image::load_from_memory(&bytes).unwrap().to_rgba8();
    assert_eq!(alpha.get_pixel(0, 0).0, [0, 0, 0, 40]);
    assert_eq!(
        view("channel=rgba").await.2,
        original,
        "rgba is the file itself"
    );
    assert_eq!(view("").await.2, original);

    assert_eq!(view("channel=bgr").await.0, 400);
    let r = s
        .http
        .get(s.url("/api/view?filename=notes.txt&preview=jpeg;80"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a preview of a file that is not an image");
    s.stop().await;
}

#[tokio::test]
async fn extra_pnginfo_reaches_saved_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let workflow = json!({"id": "wf-9", "nodes": [{"id": 1, "type": "SavePng"}], "links": []});
    let id = s
        .queue(json!({
            "prompt": {"1": {"class_type": "SavePng", "inputs": {"filename_prefix": "wf"}}},
            "client_id": "c",
            "extra_data": {"extra_pnginfo": {"workflow": workflow}}
        }))
        .await;
    let entry = s.finished(&id).await;
    let image = &entry["outputs"]["1"]["images"][0];
    let filename = image["filename"].as_str().unwrap();
    let r = s
        .http
        .get(s.url(&format!("/view?filename={filename}&type=output")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let chunks = png_text(&r.bytes().await.unwrap());
    let text = |key: &str| {
        let (_, text) = chunks.iter().find(|(k, _)| k == key).unwrap();
        serde_json::from_str::<Json>(text).unwrap()
    };
    assert_eq!(text("workflow"), workflow);
    assert_eq!(text("prompt")["1"]["class_type"], "SavePng");

    // The jobs panel knows the workflow and previews the saved image.
    let (_, jobs) = s.get("/api/jobs?workflow_id=wf-9").await;
    assert_eq!(ids(&jobs), [id.as_str()]);
    let job = &jobs["jobs"][0];
    assert_eq!(job["workflow_id"], "wf-9");
    assert_eq!(job["outputs_count"], 1);
    assert_eq!(job["previewable_outputs_count"], 1);
    assert_eq!(job["preview_output"]["filename"], filename);
    assert_eq!(job["preview_output"]["nodeId"], "1");
    assert_eq!(job["preview_output"]["mediaType"], "images");
    assert_eq!(ids(&s.get("/api/jobs?workflow_id=other").await.1).len(), 0);
    s.stop().await;
}

#[tokio::test]
async fn system_stats_lists_the_devices_it_was_given() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    assert_eq!(s.get("/api/system_stats").await.1["devices"], json!([]));
    s.stop().await;

    let mut config = ServerConfig::new(dir.path());
    config.devices = vec![DeviceInfo {
        name: "cuda:0 Test GPU".into(),
        kind: "cuda".into(),
        index: 0,
        vram_total: 80 << 30,
        vram_free: 70 << 30,
        torch_vram_total: 2 << 30,
        torch_vram_free: 1 << 30,
    }];
    let s = TestServer::start_with(config).await;
    let (_, stats) = s.get("/api/system_stats").await;
    assert_eq!(
        stats["devices"],
        json!([{
            "name": "cuda:0 Test GPU", "type": "cuda", "index": 0,
            "vram_total": 80u64 << 30, "vram_free": 70u64 << 30,
            "torch_vram_total": 2u64 << 30, "torch_vram_free": 1u64 << 30
        }])
    );
    s.stop().await;
}

#[tokio::test]
async fn object_info_lists_the_input_folder_afresh_and_any_existing_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let image = |info: &Json| info["PickFile"]["input"]["required"]["image"].clone();
    let (_, info) = s.get("/api/object_info").await;
    assert_eq!(image(&info), json!([[], {"image_upload": true}]));

    // An upload, a file put there by hand and one in a subfolder: the next request lists the first
    // two (the folder's top level, as ComfyUI lists it), without a restart.
    let (status, answer) =
        upload(&s, "/upload/image", "b.png", png(2, 2, [1, 2, 3, 255]), &[]).await;
    assert_eq!(status, 200, "{answer}");
    let input = dir.path().join("input");
    std::fs::write(input.join("a.png"), png(2, 2, [0; 4])).unwrap();
    std::fs::write(input.join("notes.txt"), "not an image").unwrap();
    std::fs::create_dir_all(input.join("sub")).unwrap();
    std::fs::write(input.join("sub/c.png"), png(2, 2, [0; 4])).unwrap();
    let (_, info) = s.get("/object_info").await;
    assert_eq!(
        image(&info),
        json!([["a.png", "b.png"], {"image_upload": true}])
    );
    // The editor's assets panel lists the folder itself: every file, newest first.
    let (status, files) = s.get("/internal/files/input").await;
    assert_eq!(status, 200);
    let files: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let mut sorted = files.clone();
    sorted.sort();
    assert_eq!(sorted, ["a.png", "b.png", "notes.txt"]);
    assert_eq!(s.get("/internal/files/elsewhere").await.0, 400);
    let (_, one) = s.get("/api/object_info/PickFile").await;
    assert_eq!(image(&one), image(&info));

    // The list is what the editor offers, not a limit: an existing file outside it is accepted, a
    // missing one is refused by the node's own check, not as "not in list".
    let pick = |name: &str| json!({"prompt": {"1": {"class_type": "PickFile", "inputs": {"image": name}}}});
    let (status, answer) = s.post("/prompt", pick("sub/c.png")).await;
    assert_eq!(status, 200, "{answer}");
    s.finished(answer["prompt_id"].as_str().unwrap()).await;
    let (status, answer) = s.post("/prompt", pick("gone.png")).await;
    assert_eq!(status, 400, "{answer}");
    let error = &answer["node_errors"]["1"]["errors"][0];
    assert_eq!(error["type"], "custom_validation_failed", "{answer}");
    assert!(
        error["details"].as_str().unwrap().contains("gone.png"),
        "{answer}"
    );
    s.stop().await;
}

#[tokio::test]
async fn workflow_templates_and_the_default_workflow_extension_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(dir.path()).await;
    let (status, list) = s.get("/api/workflow_templates").await;
    assert_eq!(status, 200);
    let names = list["omnigen"].as_array().expect("{list}");
    assert_eq!(names[0], "text_to_image", "the default comes first");
    assert_eq!(names.len(), 8, "{list}");
    for name in names {
        let name = name.as_str().unwrap();
        let (status, workflow) = s
            .get(&format!("/api/workflow_templates/omnigen/{name}.json"))
            .await;
        assert_eq!(status, 200, "{name}");
        assert!(
            workflow["nodes"].as_array().is_some_and(|n| !n.is_empty()),
            "{name}"
        );
        let thumb = s
            .http
            .get(s.url(&format!("/api/workflow_templates/omnigen/{name}.jpg")))
            .send()
            .await
            .unwrap();
        assert_eq!(thumb.headers()["content-type"], "image/jpeg");
        assert!(
            thumb.bytes().await.unwrap().starts_with(&[0xff, 0xd8]),
            "{name}"
        );
    }
    for missing in [
        "omnigen/nope.json",
        "other/text_to_image.json",
        "omnigen/text_to_image.png",
    ] {
        let (status, _) = s.get(&format!("/api/workflow_templates/{missing}")).await;
        assert_eq!(status, 404, "{missing}");
    }

    // ComfyUI's core template indexes, fetched beside the editor: none (they need ComfyUI's nodes).
    assert_eq!(s.get("/templates/index.json").await, (200, json!([])));
    assert_eq!(s.get("/templates/index.fr.json").await, (200, json!([])));
    assert_eq!(s.get("/templates/index_logo.json").await, (200, json!({})));
    assert_eq!(s.get("/templates/flux.json").await.0, 404);

    // The extension /extensions lists is served as a script.
    let (_, extensions) = s.get("/api/extensions").await;
    let url = extensions[0].as_str().unwrap();
    let script = s.http.get(s.url(url)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    assert!(script.text().await.unwrap().contains("registerExtension"));
    assert_eq!(s.get("/extensions/omnigen/other.js").await.0, 404);
    s.stop().await;
}
