//! Every stack the README names has an example, and a test that drives it:
//! the hyper example (no axum) and the quickstart's development mode, as
//! processes, over real HTTP.

mod common;

use common::{examples::*, *};
use ensure_user::testing::{SigningKey, random_id};
use http::StatusCode;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hyper_example_serves_a_local_user() {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let database = std::env::temp_dir().join(format!("ensure-user-hyper-{}.db", random_id("db")));
    let binary = example_binary("hyper").await;
    let env = [
        ("CLERK_JWKS_URL", jwks.url()),
        ("CLERK_ISSUER", ISSUER.to_owned()),
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
    ];
    let example = Example::start(&binary, &env, "listening on").await;
    let client = reqwest::Client::new();
    let user = random_id("user");
    let token = key.session_token(ISSUER, &user, 60);

    for _ in 0..2 {
        let response = client
            .get(format!("{}/", example.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.text().await.unwrap(),
            format!("hello, local user 1 ({user})\n")
        );
    }
    let refused = client
        .get(format!("{}/", example.url()))
        .bearer_auth("not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body: serde_json::Value = serde_json::from_str(&refused.text().await.unwrap()).unwrap();
    assert_eq!(body["error"], "malformed_token");
    drop(example);
    let _ = std::fs::remove_file(&database);
}

/// The quickstart as a new user meets it: development mode on SQLite, its
/// printed tokens tried on `/me`, `/org/admin` and `/org/billing`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_serves_users_and_organizations() {
    let database =
        std::env::temp_dir().join(format!("ensure-user-quickstart-{}.db", random_id("db")));
    let binary = example_binary("quickstart").await;
    let env = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
    ];
    let example = Example::start(&binary, &env, "listening on").await;
    let tokens: Vec<String> = example
        .printed
        .iter()
        .filter_map(|line| line.split("Bearer ").nth(1))
        .map(|rest| rest.trim_end_matches('\'').to_owned())
        .collect();
    let [user_token, org_token] = tokens.as_slice() else {
        panic!("two curl lines expected: {:?}", example.printed);
    };
    let client = reqwest::Client::new();
    let get = |path: &str, token: &str| {
        client
            .get(format!("{}{path}", example.url()))
            .bearer_auth(token)
            .send()
    };

    let me: serde_json::Value = json(get("/me", user_token).await.unwrap()).await;
    assert_eq!(me["id"], 1);
    assert!(me["org"].is_null(), "{me}");
    for path in ["/org/admin", "/org/billing"] {
        let refused = get(path, user_token).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{path}");
        let body = json(refused).await;
        assert_eq!(body["error"], "insufficient_scope", "{path}");
    }

    let me: serde_json::Value = json(get("/me", org_token).await.unwrap()).await;
    assert_eq!(me["id"], 1, "the same user: {me}");
    assert_eq!(me["org"]["id"], 1);
    assert_eq!(me["org"]["slug"], "acme");
    assert_eq!(me["org"]["role"], "org:admin");
    let organization = me["org"]["clerk_id"].as_str().unwrap().to_owned();
    assert!(organization.starts_with("org_"), "{me}");
    for path in ["/org/admin", "/org/billing"] {
        let allowed = get(path, org_token).await.unwrap();
        assert_eq!(allowed.status(), StatusCode::OK, "{path}");
        let body = json(allowed).await;
        assert_eq!(body, serde_json::json!({ "org": organization }), "{path}");
    }
    drop(example);
    let _ = std::fs::remove_file(&database);
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}
