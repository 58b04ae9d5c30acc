//! The quickstart called from a real browser: a page served on one
//! loopback origin fetches `GET /me` from the quickstart on another, in
//! headless Chromium, and the test reads what the page wrote into its DOM.
//! It checks what only a browser enforces: the preflight a token's
//! `Authorization` header triggers, and whether the page may read a `401`.
//!
//! Needs Chromium (`/usr/bin/chromium`, Debian's `chromium` package). When
//! it is missing and the test runs as root, the test installs it with
//! apt-get; otherwise it fails and says how to install it.

mod common;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use axum::{Router, response::Html, routing::get};
use common::{examples::*, *};
use ensure_user::testing::{SigningKey, random_id};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Chromium's path, installed first if it is missing and the test may.
fn chromium() -> PathBuf {
    let path = PathBuf::from(CHROMIUM);
    if path.exists() {
        return path;
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    assert!(
        root,
        "the browser test needs Chromium at {CHROMIUM}: install it with \
         `sudo apt-get install -y chromium` (or run the tests as root, and \
         this test installs it)"
    );
    for args in [
        &["update", "-qq"][..],
        &[
            "install",
            "-y",
            "-qq",
            "-o",
            "DPkg::Lock::Timeout=300",
            "chromium",
        ][..],
    ] {
        let output = std::process::Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("apt-get runs");
        assert!(
            output.status.success(),
            "apt-get {} failed while installing Chromium for the browser test:\n{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(path.exists(), "apt-get installed no {CHROMIUM}");
    path
}

/// A page that fetches `{api}/me`, with `Authorization: Bearer {token}`
/// when a token is given, and writes the outcome into `#outcome`:
/// `status=… body=…`, or `error=<name>: <message>` when the fetch fails.
fn page(api: &str, token: Option<&str>) -> String {
    let token = token.map_or_else(|| "null".to_owned(), |token| format!("'{token}'"));
    format!(
        r#"<!doctype html>
<html><body><pre id="outcome">pending</pre><script>
const token = {token};
const outcome = document.getElementById('outcome');
fetch('{api}/me', {{ headers: token ? {{ Authorization: 'Bearer ' + token }} : {{}} }})
  .then(async (response) => {{
    outcome.textContent = 'status=' + response.status + ' body=' + await response.text();
  }})
  .catch((error) => {{
    outcome.textContent = 'error=' + error.name + ': ' + error.message;
  }});
</script></body></html>"#
    )
}

/// A server on its own loopback port (its own origin) answering
/// `/with-token` and `/without-token` with the two pages calling `api`.
fn serve_pages(listener: tokio::net::TcpListener, api: &str, token: &str) {
    let (with, without) = (page(api, Some(token)), page(api, None));
    let app = Router::new()
        .route("/with-token", get(move || async move { Html(with) }))
        .route("/without-token", get(move || async move { Html(without) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
}

/// What `#outcome` reads once headless Chromium has loaded `url` and run
/// its script.
async fn outcome_in_browser(chromium: &Path, url: &str) -> String {
    let profile = std::env::temp_dir().join(random_id("ensure-user-chromium"));
    let run = tokio::process::Command::new(chromium)
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--dump-dom",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .expect("Chromium finished within 90 s")
        .expect("Chromium starts");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "Chromium failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let start = dom
        .find(r#"<pre id="outcome">"#)
        .unwrap_or_else(|| panic!("the page's #outcome in the dumped DOM:\n{dom}"));
    let rest = &dom[start + r#"<pre id="outcome">"#.len()..];
    rest[..rest.find("</pre>").unwrap()]
        .replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// From the allowed origin, the page reads its user's local id with the
/// token (after a preflight the quickstart answers without one) and the
/// JSON `401 missing_token` without it; from an origin not listed, the
/// browser blocks the fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_reads_its_user_and_its_refusal() {
    let chromium = chromium();
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let allowed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stranger = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin =
        |listener: &tokio::net::TcpListener| -> SocketAddr { listener.local_addr().unwrap() };
    let (allowed_origin, stranger_origin) = (origin(&allowed), origin(&stranger));

    let database = std::env::temp_dir().join(format!("ensure-user-browser-{}.db", random_id("db")));
    let binary = example_binary("quickstart").await;
    let env = [
        ("CLERK_JWKS_URL", jwks.url()),
        ("CLERK_ISSUER", ISSUER.to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
        ("CORS_ALLOWED_ORIGINS", format!("http://{allowed_origin}")),
    ];
    let example = Example::start(&binary, &env, "listening on").await;
    let api = example.url();
    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 300);

    serve_pages(allowed, &api, &token);
    serve_pages(stranger, &api, &token);

    // No token: the layer's `401`, readable because it carries the CORS
    // headers.
    let outcome =
        outcome_in_browser(&chromium, &format!("http://{allowed_origin}/without-token")).await;
    let body = outcome
        .strip_prefix("status=401 body=")
        .unwrap_or_else(|| panic!("the page read the refusal: {outcome}"));
    let refusal: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(refusal["error"], "missing_token", "{refusal}");

    // The token in `Authorization`: a preflight first, answered by CORS
    // without a token, then the request itself.
    let outcome =
        outcome_in_browser(&chromium, &format!("http://{allowed_origin}/with-token")).await;
    let body = outcome
        .strip_prefix("status=200 body=")
        .unwrap_or_else(|| panic!("the page read its user: {outcome}"));
    let me: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(me["id"], 1, "{me}");
    assert_eq!(me["clerk_id"], user.as_str(), "{me}");

    // The same page with the token, from an origin not listed: the browser
    // blocks the call, and the page sees only a failed fetch.
    let outcome =
        outcome_in_browser(&chromium, &format!("http://{stranger_origin}/with-token")).await;
    assert!(
        outcome.starts_with("error=TypeError"),
        "an origin not listed cannot call the API: {outcome}"
    );

    drop(example);
    let _ = std::fs::remove_file(&database);
}
