//! The quickstart's production stack, as a process over real HTTP: its
//! request traces never print a token, and CORS answers outside the layer
//! (a preflight needs no token, a refusal carries the CORS headers).

mod common;

use std::time::Duration;

use common::{examples::*, *};
use ensure_user::testing::{SigningKey, random_id};
use http::StatusCode;

/// The quickstart against a JWKS server of the test's, so that the tokens
/// are the test's own (development mode prints its tokens), with `env`
/// added.
async fn quickstart(jwks: &JwksServer, env: &[(&str, String)]) -> Quickstart {
    let database = std::env::temp_dir().join(format!(
        "ensure-user-production-stack-{}.db",
        random_id("db")
    ));
    let binary = example_binary("quickstart").await;
    let mut all = vec![
        ("CLERK_JWKS_URL", jwks.url()),
        ("CLERK_ISSUER", ISSUER.to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
    ];
    all.extend(env.iter().cloned());
    let example = Example::start_logged(&binary, &all, "listening on").await;
    Quickstart { example, database }
}

struct Quickstart {
    example: Example,
    database: std::path::PathBuf,
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.database.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `text` without its ANSI colour codes (`ESC [ … m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// At `RUST_LOG=trace`, a token sent in the `Authorization` header and one
/// sent in the `__session` cookie appear nowhere in what the quickstart
/// writes, while the request traces, with their headers, do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_log_every_request_and_never_a_token() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let quickstart = quickstart(&jwks, &[("RUST_LOG", "trace".to_owned())]).await;
    let url = quickstart.example.url();
    let client = reqwest::Client::new();
    let header_token = key.session_token(ISSUER, &random_id("user"), 60);
    let cookie_token = key.session_token(ISSUER, &random_id("user"), 60);

    let response = client
        .get(format!("{url}/me"))
        .bearer_auth(&header_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .get(format!("{url}/me"))
        .header(http::header::COOKIE, format!("__session={cookie_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "the cookie is read");

    // The trace's last line of a request is written before its response,
    // but read from the pipe a moment later.
    let finished = |output: &str| {
        output
            .lines()
            .filter(|line| line.contains("finished processing request"))
            .filter(|line| line.contains("uri=/me") && line.contains("status=200"))
            .count()
    };
    let mut output = String::new();
    for _ in 0..100 {
        output = plain(&quickstart.example.output());
        if finished(&output) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        finished(&output),
        2,
        "each request's trace line, once:\n{output}"
    );
    assert!(output.contains(" TRACE "), "RUST_LOG=trace took:\n{output}");
    for (sent, token) in [("header", &header_token), ("cookie", &cookie_token)] {
        let [_, claims, signature] = token.split('.').collect::<Vec<_>>()[..] else {
            panic!("a JWT: {token}");
        };
        for (part, needle) in [("claims", claims), ("signature", signature)] {
            let leaks: Vec<&str> = output.lines().filter(|l| l.contains(needle)).collect();
            assert!(
                leaks.is_empty(),
                "the {part} of the token sent in the {sent} were logged:\n{}",
                leaks.join("\n")
            );
        }
    }
    // The headers are traced, those two as `Sensitive`.
    assert!(
        output.contains(r#""authorization": Sensitive"#),
        "the Authorization header traced, redacted:\n{output}"
    );
    assert!(
        output.contains(r#""cookie": Sensitive"#),
        "the Cookie header traced, redacted:\n{output}"
    );
}

/// With `CORS_ALLOWED_ORIGINS`, a preflight is answered without a token,
/// and the layer's `401` carries the CORS headers as a `200` does; another
/// origin gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_preflights_and_refusals_outside_the_layer() {
    const ORIGIN: &str = "http://app.example.test";
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let quickstart = quickstart(
        &jwks,
        &[(
            "CORS_ALLOWED_ORIGINS",
            format!("{ORIGIN}, http://other.example.test/"),
        )],
    )
    .await;
    let url = format!("{}/me", quickstart.example.url());
    let client = reqwest::Client::new();
    let allowed_origin = |response: &reqwest::Response| {
        response
            .headers()
            .get("access-control-allow-origin")
            .map(|value| value.to_str().unwrap().to_owned())
    };

    let preflight = client
        .request(http::Method::OPTIONS, &url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), StatusCode::OK, "no token asked for");
    assert_eq!(allowed_origin(&preflight).as_deref(), Some(ORIGIN));
    let headers = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(headers.contains("authorization"), "{headers}");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-credentials")
            .is_none(),
        "no cookies cross-origin"
    );

    let refused = client
        .get(&url)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(allowed_origin(&refused).as_deref(), Some(ORIGIN));
    let exposed = refused.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(exposed.contains("www-authenticate"), "{exposed}");
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "missing_token");

    let token = key.session_token(ISSUER, &random_id("user"), 60);
    let served = client
        .get(&url)
        .header("origin", ORIGIN)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);
    assert_eq!(allowed_origin(&served).as_deref(), Some(ORIGIN));

    // The second origin of the list, its trailing slash dropped.
    let other = client
        .get(&url)
        .header("origin", "http://other.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        allowed_origin(&other).as_deref(),
        Some("http://other.example.test")
    );

    let stranger = client
        .get(&url)
        .header("origin", "http://elsewhere.example.test")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed_origin(&stranger), None, "an origin not listed");
}
