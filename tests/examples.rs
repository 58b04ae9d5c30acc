//! Every stack the README names has an example, and a test that drives it:
//! the hyper example (no axum) and the quickstart's development mode, as
//! processes, over real HTTP.

mod common;

use common::{
    clerk_api::{self, FakeClerk},
    examples::*,
    *,
};
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
/// printed tokens tried on `/me`, `/org/admin`, `/org/billing`, `/whoami`
/// and `/reports`, and an API key verified by a Backend API on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_serves_users_and_organizations() {
    let database =
        std::env::temp_dir().join(format!("ensure-user-quickstart-{}.db", random_id("db")));
    let binary = example_binary("quickstart").await;
    let backend_api = FakeClerk::start(Vec::new()).await;
    let env = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
        ("CLERK_SECRET_KEY", clerk_api::SECRET.to_owned()),
        ("CLERK_API_URL", backend_api.url()),
    ];
    let example = Example::start(&binary, &env, "listening on").await;
    let tokens: Vec<String> = example
        .printed
        .iter()
        .filter_map(|line| line.split("Bearer ").nth(1))
        .map(|rest| rest.trim_end_matches('\'').to_owned())
        .collect();
    let [user_token, org_token, oauth_token, machine_token] = tokens.as_slice() else {
        panic!("four curl lines expected: {:?}", example.printed);
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

    // The OAuth access token: the same user, its scopes, the scoped route.
    let me: serde_json::Value = json(get("/me", oauth_token).await.unwrap()).await;
    assert_eq!(me["id"], 1, "the OAuth token's user is the session's: {me}");
    let whoami = json(get("/whoami", oauth_token).await.unwrap()).await;
    assert_eq!(whoami["token_type"], "oauth_token", "{whoami}");
    assert_eq!(whoami["user"]["id"], 1);
    assert_eq!(
        whoami["scopes"],
        serde_json::json!(["profile", "reports:read"])
    );
    assert_eq!(
        get("/reports", oauth_token).await.unwrap().status(),
        StatusCode::OK
    );
    let refused = get("/reports", user_token).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // The machine token: a principal, no user.
    let whoami = json(get("/whoami", machine_token).await.unwrap()).await;
    assert_eq!(whoami["token_type"], "m2m_token", "{whoami}");
    assert!(whoami["machine"].as_str().unwrap().starts_with("mch_"));
    assert!(
        whoami["user"].is_null() && whoami["org"].is_null(),
        "{whoami}"
    );
    let refused = get("/me", machine_token).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(json(refused).await["error"], "no_user");

    // An API key of the same user, verified by the Backend API.
    let user = me["clerk_id"].as_str().unwrap().to_owned();
    let api_key = random_id("ak");
    backend_api.add_api_key(&api_key, &user, &["reports:read"], "script");
    let me: serde_json::Value = json(get("/me", &api_key).await.unwrap()).await;
    assert_eq!(me["id"], 1, "the API key's user is the session's: {me}");
    let whoami = json(get("/whoami", &api_key).await.unwrap()).await;
    assert_eq!(whoami["token_type"], "api_key", "{whoami}");
    assert_eq!(
        get("/reports", &api_key).await.unwrap().status(),
        StatusCode::OK
    );
    drop(example);
    let _ = std::fs::remove_file(&database);
}

/// The quickstart with `OIDC_ISSUERS` beside a Clerk instance, as the
/// README's section on other identity providers has a new user run it: an
/// issuer's user gets `{"id", "issuer", "subject"}`, the same id again, and
/// Clerk's users keep `clerk_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_serves_an_issuers_users_beside_clerks() {
    let provider = oidc_provider::OidcProvider::start().await;
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let database =
        std::env::temp_dir().join(format!("ensure-user-quickstart-{}.db", random_id("db")));
    let binary = example_binary("quickstart").await;
    let api = "https://api.example.test";
    let env = [
        ("BIND_ADDR", "127.0.0.1:0".to_owned()),
        (
            "DATABASE_URL",
            format!("sqlite://{}?mode=rwc", database.display()),
        ),
        ("CLERK_ISSUER", ISSUER.to_owned()),
        ("CLERK_JWKS_URL", jwks.url()),
        ("OIDC_ISSUERS", provider.issuer().to_owned()),
        ("OIDC_AUDIENCE", api.to_owned()),
    ];
    let example = Example::start(&binary, &env, "listening on").await;
    let client = reqwest::Client::new();
    let me = |token: String| {
        client
            .get(format!("{}/me", example.url()))
            .bearer_auth(token)
            .send()
    };
    let mint = |alg: &str| oidc_provider::Mint::new("ada", api).alg(alg);
    let first = json(
        me(provider.access_token(&mint("ES256")).await)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        first,
        serde_json::json!({ "id": 1, "issuer": provider.issuer(), "subject": "ada", "org": null })
    );
    let again = json(
        me(provider.access_token(&mint("RS256")).await)
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again["id"], 1, "the same person, the same row: {again}");
    let clerk_user = random_id("user");
    let clerk = json(
        me(key.session_token(ISSUER, &clerk_user, 60))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(clerk["clerk_id"], clerk_user.as_str(), "{clerk}");
    assert_eq!(clerk["id"], 2);
    assert!(clerk.get("issuer").is_none(), "{clerk}");
    let elsewhere = provider
        .access_token(&oidc_provider::Mint::new(
            "ada",
            "https://other.example.test",
        ))
        .await;
    let refused = me(elsewhere).await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json(refused).await["error"], "invalid_audience");
    drop(example);
    let _ = std::fs::remove_file(&database);
}

async fn json(response: reqwest::Response) -> serde_json::Value {
    serde_json::from_str(&response.text().await.unwrap()).unwrap()
}
