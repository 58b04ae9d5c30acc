//! Organizations through the layer on the bundled stores, on real
//! PostgreSQL and SQLite: version 1 and version 2 tokens get their rows, a
//! herd of new members of one new organization makes one organization row
//! and one membership each, and (on PostgreSQL) a deletion or a role change
//! applied through one instance reaches another instance's caches.

mod common;
#[macro_use]
#[path = "common/organizations.rs"]
mod organizations;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{Json, Router, routing::get};
use common::{ISSUER, JwksServer, bearer, postgres_store, read};
use ensure_user::{
    EnsureUserLayer, LocalOrganization, LocalUser,
    store::{
        MembershipClaim, MembershipResolution, OrganizationResolution, OrganizationStore,
        OrganizationSync, PgUserStore, StoreError,
    },
    testing::{SigningKey, random_id, session_claims},
};
use http::StatusCode;
use organizations::{Db, Store, membership};
use serde_json::{Value, json};
use sqlx::postgres::PgPoolOptions;
use tower::ServiceExt;

on_both_backends!(
    v1_and_v2_tokens_get_their_rows,
    new_members_of_a_new_organization_get_one_row_each,
);

/// How soon another instance must act on a change.
const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);

/// `/org` needs a user and their active organization, and answers the
/// local ids and the token's organization and role.
fn app(layer: EnsureUserLayer) -> Router {
    Router::new()
        .route(
            "/org",
            get(|user: LocalUser, org: LocalOrganization| async move {
                Json(json!({
                    "user": user.id(), "org": org.id(), "membership": org.membership_id(),
                    "clerk_id": org.clerk_id(), "role": org.role(),
                }))
            }),
        )
        .layer(layer)
}

/// A layer with organizations on `store`, and the keys of its tokens.
async fn layer_on<S: Store>(store: &S) -> (Router, SigningKey, JwksServer) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer =
        EnsureUserLayer::new(jwks.config(), store.clone()).with_organizations(store.clone());
    (app(layer), key, jwks)
}

/// Version 1 claims: `org_id`, `org_role`, `org_slug`, `org_permissions`.
fn v1_token(key: &SigningKey, user: &str, organization: &str, role: &str) -> String {
    let mut claims = session_claims(ISSUER, user, 60);
    claims.as_object_mut().unwrap().remove("v");
    claims["org_id"] = json!(organization);
    claims["org_role"] = json!(role);
    claims["org_slug"] = json!("acme");
    claims["org_permissions"] = json!([]);
    key.sign(&claims)
}

/// Version 2 claims (as `session_claims` makes them): the organization
/// claim `o`, whose role has no `org:` prefix.
fn v2_token(key: &SigningKey, user: &str, organization: &str, role: &str) -> String {
    let mut claims = session_claims(ISSUER, user, 60);
    assert_eq!(claims["v"], 2);
    claims["o"] = json!({ "id": organization, "rol": role, "slg": "acme" });
    key.sign(&claims)
}

/// The status of `GET /org` and its body.
async fn org(app: &Router, token: &str) -> (StatusCode, Value) {
    let mut request = bearer(token);
    *request.uri_mut() = "/org".parse().unwrap();
    read(app.clone().oneshot(request).await.unwrap()).await
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

async fn v1_and_v2_tokens_get_their_rows<S: Store>(store: S, db: Db) {
    let (app, key, _jwks) = layer_on(&store).await;
    let organization = random_id("org");
    let (first, second) = (random_id("user"), random_id("user"));

    let (status, v1) = org(&app, &v1_token(&key, &first, &organization, "org:admin")).await;
    assert_eq!(status, StatusCode::OK, "{v1}");
    assert_eq!(v1["clerk_id"], organization.as_str());
    assert_eq!(v1["role"], "org:admin");
    let (status, v2) = org(&app, &v2_token(&key, &second, &organization, "member")).await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    assert_eq!(
        v2["role"], "org:member",
        "a version 2 role reads with its prefix"
    );
    assert_eq!(v1["org"], v2["org"], "one organization row for both");
    assert_ne!(v1["membership"], v2["membership"]);

    // A new token of the same user finds the same rows and writes nothing.
    let (status, again) = org(&app, &v2_token(&key, &first, &organization, "admin")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["membership"], v1["membership"]);
    assert_eq!(db.count("organizations").await, 1);
    let roles: Vec<(String, String)> = db
        .memberships()
        .await
        .into_iter()
        .map(|(_, user, role, _)| (user, role))
        .collect();
    let mut expected = vec![
        (first.clone(), "org:admin".to_owned()),
        (second.clone(), "org:member".to_owned()),
    ];
    expected.sort();
    assert_eq!(roles, expected, "roles stored normalised");
}

async fn new_members_of_a_new_organization_get_one_row_each<S: Store>(store: S, db: Db) {
    const MEMBERS: usize = 20;
    let (app, key, _jwks) = layer_on(&store).await;
    let organization = random_id("org");
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..MEMBERS {
        let user = random_id("user");
        let token = if n % 2 == 0 {
            v1_token(&key, &user, &organization, "org:member")
        } else {
            v2_token(&key, &user, &organization, "member")
        };
        let app = app.clone();
        requests.spawn(async move { org(&app, &token).await });
    }
    let mut organizations = Vec::new();
    let mut memberships = Vec::new();
    while let Some(answer) = requests.join_next().await {
        let (status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        organizations.push(body["org"].clone());
        memberships.push(body["membership"].to_string());
    }
    organizations.dedup();
    assert_eq!(organizations.len(), 1, "one organization for every member");
    memberships.sort();
    memberships.dedup();
    assert_eq!(memberships.len(), MEMBERS, "a membership each");
    assert_eq!(db.count("organizations").await, 1);
    assert_eq!(db.count("organization_memberships").await, MEMBERS as i64);
    assert_eq!(db.count("users").await, MEMBERS as i64);
}

/// The bundled store, counting the memberships the layer asks it for.
#[derive(Clone)]
struct CountingMemberships {
    inner: PgUserStore,
    calls: Arc<AtomicUsize>,
}

impl OrganizationStore for CountingMemberships {
    async fn find_or_create_organization(
        &self,
        clerk_id: &str,
        slug: Option<&str>,
    ) -> Result<OrganizationResolution, StoreError> {
        self.inner.find_or_create_organization(clerk_id, slug).await
    }

    async fn ensure_membership(
        &self,
        claim: &MembershipClaim<'_>,
    ) -> Result<MembershipResolution, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.ensure_membership(claim).await
    }
}

/// Instance A applies deletions and a role change through its store; the
/// other instance, B, listening on its own connection, forgets what it
/// cached of them within a second: the deletions are refused, and the
/// changed membership is read from the store again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_another_instance_within_a_second() {
    let a = postgres_store().await;
    let options = a.pool().connect_options().as_ref().clone();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await
        .unwrap();
    let b_store = PgUserStore::new(pool.clone());
    let counting = CountingMemberships {
        inner: b_store.clone(),
        calls: Arc::new(AtomicUsize::new(0)),
    };
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer = EnsureUserLayer::new(jwks.config(), b_store).with_organizations(counting.clone());
    let _listener = layer.listen_for_evictions(&pool).await.unwrap();
    let b = app(layer);
    let calls = || counting.calls.load(Ordering::SeqCst);

    // A role change: B's cached membership is read again.
    let (organization, user) = (random_id("org"), random_id("user"));
    let token = v2_token(&key, &user, &organization, "member");
    assert_eq!(org(&b, &token).await.0, StatusCode::OK);
    assert_eq!(org(&b, &token).await.0, StatusCode::OK);
    let before = calls();
    assert_eq!(before, 1, "the repeat request is served from the caches");
    let promoted = membership(&organization, &user, "org:admin", now_ms() + 60_000);
    a.upsert_membership(&promoted).await.unwrap();
    let started = Instant::now();
    while calls() == before {
        assert!(
            started.elapsed() < PROPAGATION_LIMIT,
            "role change not heard"
        );
        assert_eq!(org(&b, &token).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A membership deletion, then an organization deletion: refused on B.
    for (kind, code) in [
        ("membership", "membership_deleted"),
        ("organization", "organization_deleted"),
    ] {
        let (organization, user) = (random_id("org"), random_id("user"));
        let token = v1_token(&key, &user, &organization, "org:member");
        assert_eq!(org(&b, &token).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(5)).await;
        if kind == "membership" {
            a.delete_membership(&organization, &user, now_ms())
                .await
                .unwrap();
        } else {
            a.delete_organization(&organization, now_ms())
                .await
                .unwrap();
        }
        let started = Instant::now();
        loop {
            let (status, body) = org(&b, &token).await;
            if status == StatusCode::UNAUTHORIZED {
                assert_eq!(body["error"], code);
                break;
            }
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(
                started.elapsed() < PROPAGATION_LIMIT,
                "{kind} deletion not heard"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
