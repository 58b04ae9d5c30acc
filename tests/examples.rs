//! Every stack the README names has an example, and a test that drives it:
//! the hyper example (no axum) as a process, over real HTTP.

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
