//! The quickstart: an axum server with `GET /me` behind `EnsureUserLayer`,
//! organizations included.
//!
//! - `GET /me`: the local user, and the active organization (`null` when
//!   the token names none).
//! - `GET /org/admin`: only for the role `org:admin` of the active
//!   organization (else `403`).
//! - `GET /org/billing`: only with the permission `org:billing:manage`.
//! - `GET /whoami`: any accepted credential — a session, an API key, an
//!   OAuth access token, a machine token — and what it proved.
//! - `GET /reports`: only for a credential granting the scope `reports:read`.
//!
//! ```sh
//! cargo run --example quickstart
//! ```
//!
//! Configured from the environment:
//!
//! - `DATABASE_URL`: default `sqlite://ensure-user-quickstart.db` in the working
//!   directory; a `postgres://` URL works when built with `--features postgres`.
//! - `CLERK_PUBLISHABLE_KEY`; or `CLERK_ISSUER` with `CLERK_JWKS_URL`,
//!   `CLERK_JWT_KEY` (PEM) or `CLERK_SECRET_KEY`; `CLERK_AUTHORIZED_PARTIES`
//!   (comma-separated).
//! - `ENSURE_USER_ACCEPTS_TOKEN`: the kinds of credential accepted, `any`
//!   (the default here) or a comma-separated list of `session_token`,
//!   `api_key`, `m2m_token`, `oauth_token`. Opaque API keys, OAuth and
//!   machine tokens are verified with `CLERK_SECRET_KEY` (and
//!   `CLERK_MACHINE_SECRET_KEY`) at `CLERK_API_URL`, in development mode too.
//! - `BIND_ADDR`: default `127.0.0.1:3000`.
//! - `OIDC_ISSUERS`: comma-separated URLs of OpenID Connect issuers whose
//!   RFC 9068 access tokens are accepted too (or alone, when no Clerk
//!   instance is configured), found by discovery; `OIDC_AUDIENCE`: the
//!   audience they must name. `GET /me` answers such a user with `issuer`
//!   and `subject` instead of `clerk_id`.
//! - `CLERK_WEBHOOK_SECRET`: when set, Clerk's webhooks are received at
//!   `POST /webhooks/clerk`.
//! - `CORS_ALLOWED_ORIGINS`: comma-separated origins of front ends served
//!   elsewhere (`https://app.example.com,http://localhost:5173`) that may
//!   call the API from a browser with an `Authorization` header; unset, no
//!   CORS headers are sent.
//!
//! The app is served the way it would be in production: around the routes,
//! from the outside in, request traces with the `Authorization` and
//! `Cookie` headers marked sensitive, CORS (outside the layer, so a
//! preflight needs no token and a `401` is readable by the page), and a
//! request timeout; the webhook route has a body limit. `/healthz`, the
//! webhook route and the development JWKS stay outside the layer.
//!
//! On PostgreSQL it also hears deletions applied by other instances on the
//! same database, so several copies can run side by side.
//!
//! With neither a Clerk instance nor `OIDC_ISSUERS` configured it runs in
//! development mode: it makes a key
//! pair, serves its JWKS itself, and prints `curl` lines with fresh tokens:
//! a session without an organization, one as the admin of a new
//! organization, an OAuth access token and a machine token.

use std::{env, error::Error, net::SocketAddr, time::Duration};

use axum::{
    Json, Router,
    http::{
        HeaderValue, Method, StatusCode,
        header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, RETRY_AFTER, WWW_AUTHENTICATE},
    },
    response::{IntoResponse, Response},
    routing::get,
};
use ensure_user::{
    Config, Guard, KeySource, LocalId, LocalOrganization, LocalUser, Principal, Running, Setup,
    credential::{AcceptedTokens, TokenType},
    eviction::EvictionSource,
    oidc::Issuer,
    store::{OrganizationStore, OrganizationSync, SqliteUserStore, UserStore, UserSync},
    testing,
    webhook::{InvalidSecret, WebhookVerifier},
};
use serde::Serialize;
use tokio::net::TcpListener;
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    sensitive_headers::SetSensitiveRequestHeadersLayer,
    timeout::TimeoutLayer,
    trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer},
};
use tracing::Level;

const DEV_TOKEN_TTL_SECONDS: i64 = 3600;

/// How long a request may take before it is answered `503`: longer than
/// the layer's own store timeout (3 s) and key fetch timeout (5 s), so
/// those answer first with their `503` and `Retry-After`.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest webhook delivery accepted, as the receiver's own limit.
const WEBHOOK_BODY_LIMIT: usize = ensure_user::webhook::DEFAULT_BODY_LIMIT;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ensure_user=debug".into()),
        )
        .init();

    let bind = env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = TcpListener::bind(&bind).await?;
    let addr = reachable(listener.local_addr()?);

    let issuers = oidc_issuers_from_env();
    let (config, dev_key) = if clerk_configured() {
        let mut config = Config::from_env()?;
        for issuer in issuers {
            config = config.with_issuer(issuer)?;
        }
        (config, None)
    } else if !issuers.is_empty() {
        (with_backend_api(Config::for_issuers(issuers)?), None)
    } else {
        let key = testing::SigningKey::generate("ins_quickstart_dev");
        let issuer = format!("http://{addr}");
        let jwks = KeySource::jwks_url(format!("{issuer}/.well-known/jwks.json"));
        (with_backend_api(Config::new(issuer, jwks)), Some(key))
    };
    let accepted: AcceptedTokens = env::var("ENSURE_USER_ACCEPTS_TOKEN")
        .unwrap_or_else(|_| "any".to_owned())
        .parse()
        .map_err(|error| format!("ENSURE_USER_ACCEPTS_TOKEN: {error}"))?;
    let config = config.with_accepted_tokens(accepted);

    let database_url = env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://ensure-user-quickstart.db?mode=rwc".to_owned());
    let webhooks = match WebhookVerifier::from_env() {
        Ok(verifier) => Some(verifier),
        Err(InvalidSecret::NotSet) => None,
        Err(error) => return Err(error.into()),
    };
    let cors = cors_from_env()?;
    let running = start(&database_url, config.clone(), webhooks).await?;

    let mut app = Router::new()
        .route("/me", get(me))
        .route("/whoami", get(whoami))
        .route(
            "/reports",
            get(|| async { Json(serde_json::json!({ "ok": true })) })
                .route_layer(Guard::scope("reports:read")),
        )
        .route("/org/admin", get(org).route_layer(Guard::role("org:admin")))
        .route(
            "/org/billing",
            get(org).route_layer(Guard::permission("org:billing:manage")),
        )
        .layer(running.layer())
        .route("/healthz", get(|| async { "ok" }))
        // After `.layer`: svix sends no session token. Its body limit is
        // the receiver's own, stated where the rest of the stack is.
        .merge(
            running
                .webhook_router("/webhooks/clerk")
                .layer(RequestBodyLimitLayer::new(WEBHOOK_BODY_LIMIT)),
        );
    if let Some(key) = &dev_key {
        let jwks = testing::SigningKey::jwks(&[key]);
        app = app.route(
            "/.well-known/jwks.json",
            get(move || async move { Json(jwks) }),
        );
        print_dev_banner(addr, config.issuer(), key);
        print_opaque_note(&config);
    }
    let app = production_stack(app, cors);
    let mut accepted_issuers: Vec<&str> = config.oidc_issuers().collect();
    if config.accepts_clerk() {
        accepted_issuers.insert(0, config.issuer());
    }
    println!(
        "ensure-user quickstart listening on http://{addr} (issuers {})",
        accepted_issuers.join(", ")
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    running.shutdown().await;
    Ok(())
}

/// `app` with tower-http's layers around it. Each `.layer` wraps what is
/// already there, so they are added from the innermost out:
///
/// 1. the request timeout, around every route (the layer included);
/// 2. CORS, outside the layer: a preflight `OPTIONS` is answered here
///    without a token, and the layer's `401`s, the timeout's `503`s and
///    the handlers' answers all leave with the CORS headers a page needs
///    to read them;
/// 3. request traces, outside CORS, so they log every request and the
///    status it really got;
/// 4. outermost, the `Authorization` and `Cookie` headers marked
///    sensitive before the traces see them: they print `Sensitive`, never
///    a token.
fn production_stack(app: Router, cors: Option<CorsLayer>) -> Router {
    let mut app = app.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        REQUEST_TIMEOUT,
    ));
    if let Some(cors) = cors {
        app = app.layer(cors);
    }
    app.layer(
        TraceLayer::new_for_http()
            .make_span_with(
                DefaultMakeSpan::new()
                    .level(Level::INFO)
                    .include_headers(true),
            )
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
    .layer(SetSensitiveRequestHeadersLayer::new([
        AUTHORIZATION,
        COOKIE,
    ]))
}

/// CORS for the origins in `CORS_ALLOWED_ORIGINS`, or none when unset or
/// empty.
///
/// A front end on another origin sends its token in the `Authorization`
/// header, so no credentials are allowed: the `__session` cookie is the
/// Clerk frontend's own, and allowing cookies cross-origin would only let
/// other origins ride on it. `WWW-Authenticate` and `Retry-After` are
/// exposed so the page can read why it was refused and when to retry.
fn cors_from_env() -> Result<Option<CorsLayer>, Box<dyn Error>> {
    let Ok(value) = env::var("CORS_ALLOWED_ORIGINS") else {
        return Ok(None);
    };
    let mut origins = Vec::new();
    for origin in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        // A browser sends `Origin` without a path or a trailing slash.
        let origin = origin.trim_end_matches('/');
        if origin == "*" || !origin.contains("://") {
            return Err(format!(
                "CORS_ALLOWED_ORIGINS: {origin:?} is not an origin like https://app.example.com"
            )
            .into());
        }
        origins.push(
            HeaderValue::from_str(origin)
                .map_err(|_| format!("CORS_ALLOWED_ORIGINS: {origin:?} is not a header value"))?,
        );
    }
    if origins.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST])
            // `Content-Type` too: a page posting JSON sends one that is
            // not on the browser's safe list.
            .allow_headers([AUTHORIZATION, CONTENT_TYPE])
            .expose_headers([WWW_AUTHENTICATE, RETRY_AFTER])
            .max_age(Duration::from_secs(600)),
    ))
}

/// What `GET /me` answers: `{"clerk_id":"user_…","id":1,"org":null}`.
/// `{"clerk_id", "id", "org"}` for Clerk's users; `{"id", "issuer",
/// "subject", "org"}` for an OpenID Connect issuer's.
#[derive(Serialize)]
struct Me<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    clerk_id: Option<&'a str>,
    id: LocalId,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    org: Option<Org<'a>>,
}

/// The active organization in `GET /me`.
#[derive(Serialize)]
struct Org<'a> {
    id: LocalId,
    clerk_id: &'a str,
    slug: Option<&'a str>,
    role: Option<&'a str>,
}

async fn me(user: LocalUser, organization: Option<LocalOrganization>) -> Response {
    // Serialised straight from the borrowed fields: no `Value` tree built.
    let issuer = user.issuer();
    Json(Me {
        clerk_id: issuer.is_none().then(|| user.clerk_id()),
        id: user.id(),
        issuer,
        subject: issuer.map(|_| user.subject()),
        org: organization.as_ref().map(|organization| Org {
            id: organization.id(),
            clerk_id: organization.clerk_id(),
            slug: organization.slug(),
            role: organization.role(),
        }),
    })
    .into_response()
}

/// What `GET /whoami` answers, for any accepted credential.
#[derive(Serialize)]
struct WhoAmI<'a> {
    token_type: TokenType,
    user: Option<Owner>,
    org: Option<Owner>,
    machine: Option<&'a str>,
    scopes: &'a [String],
}

/// A row and its Clerk id (or, for an OpenID Connect issuer's user, its
/// issuer and subject), in `GET /whoami`.
#[derive(Serialize)]
struct Owner {
    id: LocalId,
    #[serde(skip_serializing_if = "Option::is_none")]
    clerk_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<String>,
}

async fn whoami(principal: Principal) -> Response {
    Json(WhoAmI {
        token_type: principal.token_type(),
        user: principal.user().map(|user| Owner {
            id: user.id(),
            clerk_id: user.issuer().is_none().then(|| user.clerk_id().to_owned()),
            issuer: user.issuer().map(str::to_owned),
            subject: user.issuer().map(|_| user.subject().to_owned()),
        }),
        org: principal.organization().map(|organization| Owner {
            id: organization.id(),
            clerk_id: Some(organization.clerk_id().to_owned()),
            issuer: None,
            subject: None,
        }),
        machine: principal.machine(),
        scopes: principal.scopes(),
    })
    .into_response()
}

/// What the guarded routes answer once let through: `{"org":"org_…"}`.
async fn org(organization: LocalOrganization) -> Response {
    Json(serde_json::json!({ "org": organization.clerk_id() })).into_response()
}

/// The issuers of `OIDC_ISSUERS` (comma-separated URLs), each requiring
/// the audience `OIDC_AUDIENCE` when that is set.
fn oidc_issuers_from_env() -> Vec<Issuer> {
    let audience = env::var("OIDC_AUDIENCE")
        .ok()
        .filter(|audience| !audience.trim().is_empty());
    env::var("OIDC_ISSUERS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(|url| match &audience {
            Some(audience) => Issuer::new(url).with_audience(audience.trim()),
            None => Issuer::new(url),
        })
        .collect()
}

/// Whether a Clerk instance is configured: its publishable key, or its
/// issuer with a way to its keys. Otherwise the quickstart runs in
/// development mode (a secret key alone names no issuer, and still serves
/// there to verify opaque credentials).
fn clerk_configured() -> bool {
    let set = |name: &str| env::var(name).is_ok_and(|value| !value.trim().is_empty());
    set("CLERK_PUBLISHABLE_KEY")
        || (set("CLERK_ISSUER")
            && ["CLERK_JWKS_URL", "CLERK_JWT_KEY", "CLERK_SECRET_KEY"]
                .iter()
                .any(|name| set(name)))
}

/// `config` with the Backend API of `CLERK_API_URL`, `CLERK_SECRET_KEY`
/// and `CLERK_MACHINE_SECRET_KEY`, where set: development mode verifies
/// opaque credentials there too.
fn with_backend_api(mut config: Config) -> Config {
    let var = |name: &str| env::var(name).ok().filter(|value| !value.trim().is_empty());
    if let Some(url) = var("CLERK_API_URL") {
        config = config.with_api_url(url);
    }
    if let Some(key) = var("CLERK_SECRET_KEY") {
        config = config.with_secret_key(key);
    }
    if let Some(key) = var("CLERK_MACHINE_SECRET_KEY") {
        config = config.with_machine_secret_key(key);
    }
    config
}

/// The layer (resolving organizations), its eviction listener and, when a
/// signing secret is configured, the webhook receiver, over `store`.
async fn start_with<S>(
    config: Config,
    store: S,
    webhooks: Option<WebhookVerifier>,
) -> Result<Running, Box<dyn Error>>
where
    S: UserStore + UserSync + OrganizationStore + OrganizationSync + EvictionSource + Clone,
{
    let setup = Setup::new(config, store).with_organizations();
    let setup = match webhooks {
        Some(verifier) => setup.with_webhooks(verifier),
        None => setup,
    };
    Ok(setup.start().await?)
}

async fn start(
    url: &str,
    config: Config,
    webhooks: Option<WebhookVerifier>,
) -> Result<Running, Box<dyn Error>> {
    if url.starts_with("sqlite:") {
        // Write-ahead logging: readers do not wait for the writer, and a burst
        // of new users queues its inserts instead of some of them timing out.
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()?
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .acquire_timeout(Duration::from_secs(2))
            .connect_with(options)
            .await?;
        let store = SqliteUserStore::new(pool);
        store.migrate().await?;
        return start_with(config, store, webhooks).await;
    }
    if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        return start_postgres(url, config, webhooks).await;
    }
    Err(format!("DATABASE_URL must start with sqlite: or postgres:, got {url:?}").into())
}

#[cfg(feature = "postgres")]
async fn start_postgres(
    url: &str,
    config: Config,
    webhooks: Option<WebhookVerifier>,
) -> Result<Running, Box<dyn Error>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(2))
        .connect(url)
        .await?;
    let store = ensure_user::store::PgUserStore::new(pool);
    store.migrate().await?;
    start_with(config, store, webhooks).await
}

#[cfg(not(feature = "postgres"))]
async fn start_postgres(
    _url: &str,
    _config: Config,
    _webhooks: Option<WebhookVerifier>,
) -> Result<Running, Box<dyn Error>> {
    Err(
        "a postgres:// DATABASE_URL needs: cargo run --example quickstart --features postgres"
            .into(),
    )
}

/// The address a client can reach: an unspecified bind (0.0.0.0 / ::) becomes loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

fn print_dev_banner(addr: SocketAddr, issuer: &str, key: &testing::SigningKey) {
    let user = testing::random_id("user");
    let token = key.session_token(issuer, &user, DEV_TOKEN_TTL_SECONDS);
    let organization = testing::random_id("org");
    let org_token = key.sign(&organization_admin_claims(issuer, &user, &organization));
    let oauth = key.oauth_token(
        issuer,
        &user,
        "quickstart_client",
        &["profile", "reports:read"],
        DEV_TOKEN_TTL_SECONDS,
    );
    let machine = testing::random_id("mch");
    let machine_token = key.machine_token(issuer, &machine, &[], DEV_TOKEN_TTL_SECONDS);
    println!(
        "\n== ensure-user quickstart: DEVELOPMENT MODE ==\n\
         No Clerk instance is configured, so this server made a throwaway key pair and\n\
         serves its JWKS at http://{addr}/.well-known/jwks.json. Never run this mode\n\
         in production: set CLERK_PUBLISHABLE_KEY (or CLERK_ISSUER with CLERK_JWKS_URL,\n\
         CLERK_JWT_KEY or CLERK_SECRET_KEY).\n\n\
         A token for the new user {user}, valid for one hour:\n\n\
         curl -i http://{addr}/me -H 'Authorization: Bearer {token}'\n\n\
         The same user as admin of the new organization {organization} (slug acme),\n\
         with the permission org:billing:manage; try it on /org/admin and /org/billing too:\n\n\
         curl -i http://{addr}/me -H 'Authorization: Bearer {org_token}'\n\n\
         An OAuth access token of the same user, granting reports:read; the same id on\n\
         /me, and /whoami and /reports answer it:\n\n\
         curl -i http://{addr}/whoami -H 'Authorization: Bearer {oauth}'\n\n\
         A machine token of the machine {machine}: /whoami answers it, /me refuses it\n\
         (403 no_user; a machine has no row):\n\n\
         curl -i http://{addr}/whoami -H 'Authorization: Bearer {machine_token}'\n"
    );
}

/// How API keys and opaque tokens would be verified in development mode.
fn print_opaque_note(config: &Config) {
    if env::var("CLERK_SECRET_KEY").is_ok_and(|key| !key.trim().is_empty()) {
        println!(
            "API keys (ak_...) and opaque OAuth and machine tokens are verified by the\n\
             Backend API at {} with CLERK_SECRET_KEY.\n",
            config.api_url()
        );
    } else {
        println!(
            "API keys (ak_...) and opaque OAuth and machine tokens need CLERK_SECRET_KEY\n\
             (and CLERK_API_URL for a Backend API other than Clerk's); they are\n\
             refused 500 verification_misconfigured until it is set.\n"
        );
    }
}

/// Session claims (version 2) naming `organization` as active, with the
/// role `org:admin` and the permission `org:billing:manage`: the feature
/// `billing` in `fea`, and bit 0 of its `fpm` entry selecting `manage`.
fn organization_admin_claims(issuer: &str, user: &str, organization: &str) -> serde_json::Value {
    let mut claims = testing::session_claims(issuer, user, DEV_TOKEN_TTL_SECONDS);
    claims["o"] = serde_json::json!({
        "id": organization,
        "slg": "acme",
        "rol": "admin",
        "per": "manage,read",
        "fpm": "1",
    });
    claims["fea"] = "o:billing".into();
    claims
}
