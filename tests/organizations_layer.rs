//! Organizations through the layer on the bundled stores, on real
//! PostgreSQL and SQLite: version 1 and version 2 tokens get their rows, a
//! herd of new members of one new organization makes one organization row
//! and one membership each, every organization webhook applies in any
//! order and any number of times, deletions stay deleted through every
//! path, and (on PostgreSQL) a deletion or a role change applied through
//! one instance reaches another instance's caches.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::{Json, Router, routing::get};
use common::{
    Backend, ISSUER, JwksServer, Store, bearer,
    instances::{Deployment, PROPAGATION_LIMIT},
    on_both_stores,
    organizations::{membership, organization},
    read, svix,
};
use ensure_user::{
    EnsureUserLayer, LocalOrganization, LocalUser,
    store::OrganizationSync,
    testing::{SigningKey, random_id, session_claims},
    webhook::WebhookReceiver,
};
use http::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

on_both_stores!(
    worker_threads = 4;
    v1_and_v2_tokens_get_their_rows,
    new_members_of_a_new_organization_get_one_row_each,
    every_organization_webhook_in_any_order_and_no_resurrection,
    a_late_retry_of_a_membership_deletion_keeps_the_membership_rejoined_since,
);

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
async fn layer_on(store: &Store) -> (Router, SigningKey, JwksServer) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer =
        EnsureUserLayer::new(jwks.config(), store.clone()).with_organizations(store.clone());
    (app(layer), key, jwks)
}

/// The layer with organizations and the webhook receiver beside it, both
/// on `store`.
async fn layer_and_receiver_on(store: &Store) -> (Router, SigningKey, JwksServer) {
    let key = SigningKey::generate("ins_test");
    let jwks = JwksServer::start(&[&key]).await;
    let layer =
        EnsureUserLayer::new(jwks.config(), store.clone()).with_organizations(store.clone());
    let receiver = WebhookReceiver::new(svix::verifier(), store.clone(), layer.evictor())
        .with_organizations(store.clone());
    let app = app(layer).merge(receiver.into_router(svix::PATH));
    (app, key, jwks)
}

/// `event` of `kind` with `data`, delivered as svix signs it at
/// `timestamp` (seconds); returns the outcome code, asserting a `200`.
async fn deliver(app: &Router, kind: &str, data: Value, timestamp: i64) -> String {
    let event =
        json!({ "object": "event", "type": kind, "data": data, "timestamp": timestamp * 1000 });
    let request = svix::signed_with(svix::SECRET, timestamp, event.to_string().as_bytes());
    let (status, body) = read(app.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {body}");
    body["outcome"].as_str().unwrap_or_default().to_owned()
}

/// `event` of `kind` with `data`, whose envelope says it happened at
/// `occurred_ms`, delivered as svix signs a retry of it now; returns the
/// outcome code, asserting a `200`.
async fn redeliver(app: &Router, kind: &str, data: Value, occurred_ms: i64) -> String {
    let event = json!({ "object": "event", "type": kind, "data": data, "timestamp": occurred_ms });
    let request = svix::signed_with(svix::SECRET, svix::now(), event.to_string().as_bytes());
    let (status, body) = read(app.clone().oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{kind}: {body}");
    body["outcome"].as_str().unwrap_or_default().to_owned()
}

/// An organization object as the webhooks carry it.
fn organization_data(id: &str, name: &str, updated_at: i64) -> Value {
    serde_json::to_value(organization(id, name, updated_at)).unwrap()
}

/// A membership object as the webhooks carry it.
fn membership_data(organization: &str, user: &str, role: &str, updated_at: i64) -> Value {
    json!({
        "object": "organization_membership", "id": format!("orgmem_{updated_at}"),
        "role": role, "role_name": "Role", "permissions": [], "public_metadata": {},
        "organization": organization_data(organization, "Snapshot", 1),
        "public_user_data": {"user_id": user, "first_name": "Jane", "last_name": null,
            "profile_image_url": "", "image_url": "", "has_image": false,
            "identifier": "jane@example.com"},
        "created_at": 1_700_000_000_000_i64, "updated_at": updated_at
    })
}

/// A version 2 token issued at `iat` (seconds).
fn token_issued_at(key: &SigningKey, user: &str, organization: &str, iat: i64) -> String {
    let mut claims = session_claims(ISSUER, user, 60);
    claims["o"] = json!({ "id": organization, "rol": "admin", "slg": "acme" });
    claims["iat"] = json!(iat);
    key.sign(&claims)
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

async fn v1_and_v2_tokens_get_their_rows(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
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

async fn new_members_of_a_new_organization_get_one_row_each(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
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

async fn every_organization_webhook_in_any_order_and_no_resurrection(backend: Backend) {
    let store = Store::new(backend).await;
    let db = &store;
    let (app, key, _jwks) = layer_and_receiver_on(&store).await;
    let (o, u) = (random_id("org"), random_id("user"));
    let start = svix::now();

    // Out of order and twice: the newest state wins, whatever came first.
    let org_updated = organization_data(&o, "Acme Two", 2_000);
    let org_created = organization_data(&o, "Acme", 1_000);
    assert_eq!(
        deliver(&app, "organization.updated", org_updated.clone(), start).await,
        "created"
    );
    assert_eq!(
        deliver(&app, "organization.created", org_created, start).await,
        "stale"
    );
    assert_eq!(
        deliver(&app, "organization.updated", org_updated, start).await,
        "updated"
    );
    let names: Vec<_> = db
        .organizations()
        .await
        .into_iter()
        .map(|row| row.1)
        .collect();
    assert_eq!(names, [Some("Acme Two".to_owned())]);

    let promoted = membership_data(&o, &u, "org:admin", 20_000);
    let joined = membership_data(&o, &u, "org:member", 10_000);
    let kind = "organizationMembership";
    assert_eq!(
        deliver(&app, &format!("{kind}.updated"), promoted.clone(), start).await,
        "created"
    );
    assert_eq!(
        deliver(&app, &format!("{kind}.created"), joined, start).await,
        "stale"
    );
    assert_eq!(
        deliver(&app, &format!("{kind}.updated"), promoted.clone(), start).await,
        "updated"
    );
    assert_eq!(
        db.memberships().await,
        [(o.clone(), u.clone(), "org:admin".to_owned(), 20_000)]
    );

    // A membership deletion: neither a duplicate, a late event nor a token
    // issued before it brings the membership back; a token issued after it
    // (the user was invited back) does.
    let before = token_issued_at(&key, &u, &o, start);
    assert_eq!(org(&app, &before).await.0, StatusCode::OK);
    let deleted = start + 1;
    let kind_deleted = format!("{kind}.deleted");
    assert_eq!(
        deliver(&app, &kind_deleted, promoted.clone(), deleted).await,
        "deleted"
    );
    assert_eq!(
        deliver(&app, &kind_deleted, promoted.clone(), deleted).await,
        "tombstoned"
    );
    let late = membership_data(&o, &u, "org:member", deleted * 1000 - 1);
    assert_eq!(
        deliver(&app, &format!("{kind}.updated"), late, deleted).await,
        "tombstoned"
    );
    let (status, body) = org(&app, &before).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("membership_deleted"))
    );
    let still_valid = token_issued_at(&key, &u, &o, deleted);
    assert_eq!(
        org(&app, &still_valid).await.0,
        StatusCode::UNAUTHORIZED,
        "as old as the deletion"
    );
    assert_eq!(db.count("organization_memberships").await, 0);
    let after = token_issued_at(&key, &u, &o, deleted + 1);
    assert_eq!(org(&app, &after).await.0, StatusCode::OK, "invited back");
    assert_eq!(db.count("organization_memberships").await, 1);

    // An organization deletion takes its memberships, and nothing brings
    // either back: duplicates, late events, old or new tokens.
    let gone = deleted + 2;
    let org_gone = json!({ "object": "organization", "id": o, "deleted": true });
    assert_eq!(
        deliver(&app, "organization.deleted", org_gone.clone(), gone).await,
        "deleted"
    );
    assert_eq!(
        deliver(&app, "organization.deleted", org_gone, gone).await,
        "tombstoned"
    );
    assert_eq!(db.count("organization_memberships").await, 0);
    let late = organization_data(&o, "Acme Three", gone * 1000 + 5_000);
    assert_eq!(
        deliver(&app, "organization.updated", late, gone).await,
        "tombstoned"
    );
    let rejoined = membership_data(&o, &u, "org:member", gone * 1000 + 5_000);
    assert_eq!(
        deliver(&app, &format!("{kind}.created"), rejoined, gone).await,
        "tombstoned"
    );
    for token in [after, token_issued_at(&key, &u, &o, gone + 1)] {
        let (status, body) = org(&app, &token).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("organization_deleted"))
        );
    }
    assert_eq!(db.count("organizations").await, 0);
    assert_eq!(db.count("organization_memberships").await, 0);
}

/// A membership deletion retried late is dated by the deleted membership
/// and its event, not by the retry's signature: it removes nothing the user
/// re-joined with since, and neither refuses their tokens nor blocks later
/// changes of the new membership. The deletion still keeps the old
/// membership's own late events out.
async fn a_late_retry_of_a_membership_deletion_keeps_the_membership_rejoined_since(
    backend: Backend,
) {
    let store = Store::new(backend).await;
    let db = &store;
    let (app, key, _jwks) = layer_and_receiver_on(&store).await;
    let (o, u) = (random_id("org"), random_id("user"));
    let now = svix::now();
    let kind = "organizationMembership";
    let old = membership_data(&o, &u, "org:member", (now - 300) * 1000);
    assert_eq!(
        redeliver(
            &app,
            &format!("{kind}.created"),
            old.clone(),
            (now - 300) * 1000
        )
        .await,
        "created"
    );
    // The first attempt of the deletion (at now - 200) failed; the user was
    // invited back at now - 120, and signed in at now - 30.
    let rejoined = membership_data(&o, &u, "org:admin", (now - 120) * 1000);
    assert_eq!(
        redeliver(
            &app,
            &format!("{kind}.created"),
            rejoined,
            (now - 120) * 1000
        )
        .await,
        "updated"
    );
    let token = token_issued_at(&key, &u, &o, now - 30);
    assert_eq!(org(&app, &token).await.0, StatusCode::OK);

    // svix's retry of the old deletion, signed now.
    let outcome = redeliver(
        &app,
        &format!("{kind}.deleted"),
        old.clone(),
        (now - 200) * 1000,
    )
    .await;
    assert_ne!(outcome, "deleted", "the rejoined membership was removed");
    assert_eq!(
        db.memberships().await,
        [(
            o.clone(),
            u.clone(),
            "org:admin".to_owned(),
            (now - 120) * 1000
        )]
    );
    let (status, body) = org(&app, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["role"], "org:admin");

    // The old membership's own late update stays out; the new one's changes go in.
    let old_update = membership_data(&o, &u, "org:member", (now - 250) * 1000);
    assert_eq!(
        redeliver(
            &app,
            &format!("{kind}.updated"),
            old_update,
            (now - 250) * 1000
        )
        .await,
        "tombstoned"
    );
    let promoted = membership_data(&o, &u, "org:owner", (now - 10) * 1000);
    assert_eq!(
        redeliver(
            &app,
            &format!("{kind}.updated"),
            promoted,
            (now - 10) * 1000
        )
        .await,
        "updated"
    );
    assert_eq!(db.count("organization_memberships").await, 1);

    // An envelope timestamp in seconds, as some of Clerk's examples have it,
    // dates the deletion as well; a deletion after the latest change removes it.
    let latest = membership_data(&o, &u, "org:owner", (now - 10) * 1000);
    assert_eq!(
        redeliver(&app, &format!("{kind}.deleted"), latest, now - 5).await,
        "deleted"
    );
    assert_eq!(db.count("organization_memberships").await, 0);
}

/// Instance A applies deletions and a role change through its store; the
/// other instance, B, listening on its own connection, forgets what it
/// cached of them within a second: the deletions are refused, and the
/// changed membership is read from the store again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_reach_another_instance_within_a_second() {
    let d = Deployment::postgres().await;
    // A is the store alone, on the deployment's own pool.
    let a = &d.db;
    let instance = d.instance().routes(app).with_organizations().start().await;
    let (b, key) = (&instance.app, &d.key);
    let calls = || instance.membership_lookups();

    // A role change: B's cached membership is read again.
    let (organization, user) = (random_id("org"), random_id("user"));
    let token = v2_token(key, &user, &organization, "member");
    assert_eq!(org(b, &token).await.0, StatusCode::OK);
    assert_eq!(org(b, &token).await.0, StatusCode::OK);
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
        assert_eq!(org(b, &token).await.0, StatusCode::OK);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A membership deletion, then an organization deletion: refused on B.
    for (kind, code) in [
        ("membership", "membership_deleted"),
        ("organization", "organization_deleted"),
    ] {
        let (organization, user) = (random_id("org"), random_id("user"));
        let token = v1_token(key, &user, &organization, "org:member");
        assert_eq!(org(b, &token).await.0, StatusCode::OK);
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
            let (status, body) = org(b, &token).await;
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
