//! What a route refuses once the layer let a request through: a `Guard`
//! refuses `403 insufficient_scope` with its `WWW-Authenticate` challenge,
//! and `500 missing_layer` on a route without the layer; the
//! `LocalOrganization` extractor refuses `403 no_active_organization` (with
//! the same challenge) when the token names none.

mod common;

use axum::{Json, Router, body::Body, routing::get};
use common::{app::Fixture, *};
use ensure_user::{EnsureUserLayer, Guard, LocalOrganization, testing::random_id};
use http::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// `/admin` requires the role `org:admin`; `/org` requires an active
/// organization; `/maybe-org` takes one if there is one.
fn routes() -> Router {
    Router::new()
        .route(
            "/admin",
            get(|| async { "admins only" }).route_layer(Guard::role("org:admin")),
        )
        .route(
            "/org",
            get(|org: LocalOrganization| async move { Json(json!({ "org": org.clerk_id() })) }),
        )
        .route(
            "/maybe-org",
            get(|org: Option<LocalOrganization>| async move {
                Json(json!({ "org": org.as_ref().map(LocalOrganization::clerk_id) }))
            }),
        )
}

/// The app behind a layer that resolves organizations, on SQLite.
async fn app(f: &Fixture) -> Router {
    let store = sqlite_store().await;
    let layer = EnsureUserLayer::new(f.jwks.config(), store.clone()).with_organizations(store);
    routes().layer(layer)
}

/// A session token of a new user, active in `organization` with `role`
/// (version 2 claims), or in none.
fn token(f: &Fixture, organization: Option<(&str, &str)>) -> String {
    let mut claims = f.claims(&random_id("user"));
    if let Some((id, role)) = organization {
        claims["o"] = json!({ "id": id, "rol": role, "slg": "acme" });
    }
    f.token(&claims)
}

async fn get_with(app: &Router, path: &str, token: Option<&str>) -> Response<Body> {
    let mut request = Request::get(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    response.map(Body::new)
}

/// The status, the `WWW-Authenticate` and `Cache-Control` headers, and the body.
async fn answer(response: Response<Body>) -> (StatusCode, Option<String>, Option<String>, Value) {
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value: &http::HeaderValue| value.to_str().unwrap().to_owned())
    };
    let (challenge, cache) = (header("www-authenticate"), header("cache-control"));
    let (status, body) = read(response).await;
    (status, challenge, cache, body)
}

#[tokio::test]
async fn guard_refusal_carries_its_challenge() {
    let f = Fixture::new().await;
    let app = app(&f).await;
    let organization = random_id("org");

    let admin = token(&f, Some((&organization, "admin")));
    let (status, _, _, _) = answer(get_with(&app, "/admin", Some(&admin)).await).await;
    assert_eq!(status, StatusCode::OK);

    let member = token(&f, Some((&organization, "member")));
    let no_organization = token(&f, None);
    for refused in [member, no_organization] {
        let (status, challenge, cache, body) =
            answer(get_with(&app, "/admin", Some(&refused)).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::FORBIDDEN, Some("insufficient_scope")),
            "{body}"
        );
        assert_eq!(
            challenge.as_deref(),
            Some(r#"Bearer error="insufficient_scope""#)
        );
        assert_eq!(cache.as_deref(), Some("no-store"));
    }

    // No token at all: the layer refuses first, as for any route.
    let (status, challenge, _, body) = answer(get_with(&app, "/admin", None).await).await;
    assert_eq!(
        (status, challenge.as_deref(), body["error"].as_str()),
        (
            StatusCode::UNAUTHORIZED,
            Some("Bearer"),
            Some("missing_token")
        )
    );
}

#[tokio::test]
async fn guard_without_the_layer_is_a_500() {
    let f = Fixture::new().await;
    let admin = token(&f, Some((&random_id("org"), "admin")));
    // The routes, and no layer: a server bug, never a pass.
    let app = routes();
    for credentials in [Some(admin.as_str()), None] {
        let (status, challenge, cache, body) =
            answer(get_with(&app, "/admin", credentials).await).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::INTERNAL_SERVER_ERROR, Some("missing_layer")),
            "{body}"
        );
        assert_eq!(challenge, None);
        assert_eq!(cache.as_deref(), Some("no-store"));
    }
}

#[tokio::test]
async fn organization_extractor_refuses_a_token_without_one() {
    let f = Fixture::new().await;
    let app = app(&f).await;
    let none = token(&f, None);
    let (status, challenge, cache, body) = answer(get_with(&app, "/org", Some(&none)).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::FORBIDDEN, Some("no_active_organization")),
        "{body}"
    );
    assert_eq!(
        challenge.as_deref(),
        Some(r#"Bearer error="insufficient_scope""#)
    );
    assert_eq!(cache.as_deref(), Some("no-store"));

    // Where there may be none, the handler is called without one.
    let (status, _, _, body) = answer(get_with(&app, "/maybe-org", Some(&none)).await).await;
    assert_eq!((status, &body["org"]), (StatusCode::OK, &Value::Null));

    let organization = random_id("org");
    let member = token(&f, Some((&organization, "member")));
    let (status, _, _, body) = answer(get_with(&app, "/org", Some(&member)).await).await;
    assert_eq!(
        (status, body["org"].as_str()),
        (StatusCode::OK, Some(organization.as_str()))
    );
}
