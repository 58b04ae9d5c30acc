//! Several instances of one app on one database, as separate processes run
//! it: a [`Deployment`] (the database, the Clerk keys, and a pool of the
//! test's own) starts [`Instance`]s, each with its own pool, layer, caches,
//! eviction listener and webhook receiver. On PostgreSQL every listener
//! hears what any instance applied; on SQLite there is nothing to hear, and
//! an instance knows only what it applied itself or reads from the rows.
//!
//! This is the one multi-instance harness of the tests. An instance is
//! wired by hand by default (layer, listener, receiver, as `Setup` wires
//! them), which lets it count the store calls its caches let through; or
//! through `Setup` itself ([`InstanceBuilder::through_setup`]).

use std::time::{Duration, Instant};

use axum::{Router, body::Body};
use ensure_user::{
    Config, EnsureUserLayer, Readiness, Running, Setup,
    eviction::{EvictionListener, EvictionSource},
    store::{
        OrganizationStore, OrganizationSync, PgUserStore, SqliteUserStore, UserStore, UserSync,
        UserTable,
    },
    testing::{SigningKey, random_id, session_claims},
    webhook::WebhookReceiver,
};
use http::{Request, StatusCode};
use serde_json::{Value, json};
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::SqlitePoolOptions,
};
use tower::ServiceExt;

use super::{
    Backend, CountingStore, Counts, ISSUER, JwksServer, Store, bearer, postgres_url, proxy::Proxy,
    read, svix, user_deleted_event,
};

/// How soon every other instance must act on a change one instance applied.
pub const PROPAGATION_LIMIT: Duration = Duration::from_secs(1);

/// The instances' store timeout (and their pools' acquire timeout), when
/// their store reaches the database directly.
pub const STORE_TIMEOUT: Duration = Duration::from_secs(2);

/// The same when their store goes through a proxy a test may cut: short,
/// so that a request or a delivery fails soon while it is cut.
pub const STORE_TIMEOUT_THROUGH_PROXY: Duration = Duration::from_secs(1);

/// What the instances share: the database (one PostgreSQL schema, or one
/// SQLite file, with the bundled tables) and the Clerk keys.
pub struct Deployment {
    pub key: SigningKey,
    pub jwks: JwksServer,
    /// A pool of the test's own on the database, for looking and poking.
    pub db: Store,
}

/// A user served by some instances, and the token they were served with.
pub struct Served {
    pub user: String,
    pub session: String,
    /// A token of `user`'s session `session`, valid for 10 minutes.
    pub token: String,
}

impl Deployment {
    /// A deployment on a fresh schema or file of `backend`.
    pub async fn new(backend: Backend) -> Self {
        Self::on(Store::new(backend).await).await
    }

    /// A deployment on a fresh PostgreSQL schema.
    pub async fn postgres() -> Self {
        Self::new(Backend::Postgres).await
    }

    /// A deployment on a new PostgreSQL schema named `schema` (created here,
    /// quoted: any name PostgreSQL takes).
    pub async fn on_schema(schema: &str) -> Self {
        let admin = PgPool::connect(&postgres_url()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE SCHEMA "{schema}""#)))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let options = postgres_url()
            .parse::<PgConnectOptions>()
            .unwrap()
            .options([("search_path", format!(r#""{schema}""#))]);
        let store = PgUserStore::new(pg_pool(&options, STORE_TIMEOUT).await);
        store.migrate().await.unwrap();
        Self::on(Store::Postgres(store)).await
    }

    async fn on(db: Store) -> Self {
        let key = SigningKey::generate("ins_test");
        let jwks = JwksServer::start(&[&key]).await;
        Self { key, jwks, db }
    }

    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The instances' configuration unless a test gives one: the keys, and
    /// [`STORE_TIMEOUT`].
    pub fn config(&self) -> Config {
        self.jwks.config().with_store_timeout(STORE_TIMEOUT)
    }

    /// How to connect to the PostgreSQL schema directly; panics on SQLite.
    pub fn postgres_options(&self) -> PgConnectOptions {
        PgConnectOptions::clone(&self.db.postgres_pool().connect_options())
    }

    /// How to connect to the PostgreSQL schema through `proxy`.
    pub fn through(&self, proxy: &Proxy) -> PgConnectOptions {
        self.postgres_options()
            .host("127.0.0.1")
            .port(proxy.addr.port())
    }

    /// A session token of `user`, valid for 10 minutes.
    pub fn token(&self, user: &str) -> String {
        self.key.session_token(ISSUER, user, 600)
    }

    /// A token of `user`'s session `session`, valid for 10 minutes.
    pub fn session_token(&self, user: &str, session: &str) -> String {
        let mut claims = session_claims(ISSUER, user, 600);
        claims["sid"] = json!(session);
        self.key.sign(&claims)
    }

    /// A new user that every one of `instances` has served, so that each
    /// holds them in its caches.
    pub async fn served_by(&self, instances: &[&Instance]) -> Served {
        let (user, session) = (random_id("user"), random_id("sess"));
        let token = self.session_token(&user, &session);
        for instance in instances {
            assert_eq!(instance.me(&token).await.0, StatusCode::OK);
        }
        Served {
            user,
            session,
            token,
        }
    }

    /// An instance to configure, then [`start`](InstanceBuilder::start).
    pub fn instance(&self) -> InstanceBuilder<'_> {
        InstanceBuilder {
            deployment: self,
            config: None,
            table: UserTable::default(),
            store_through: None,
            listener_on: None,
            routes: super::app::app,
            organizations: false,
            setup: false,
        }
    }

    /// `N` instances as [`instance`](Self::instance) makes them, started
    /// one after the other.
    pub async fn instances<const N: usize>(&self) -> [Instance; N] {
        let mut instances = Vec::with_capacity(N);
        for _ in 0..N {
            instances.push(self.instance().start().await);
        }
        instances
            .try_into()
            .unwrap_or_else(|_| unreachable!("N instances were started"))
    }

    /// Waits until every one of `instances` listens (see
    /// [`Instance::listening`]).
    pub async fn listening(&self, instances: &[&Instance], limit: Duration) {
        for instance in instances {
            instance.listening(limit).await;
        }
    }
}

/// How one instance is made: its configuration, its table mapping, how its
/// store and its listener reach the database, its routes, and how it is wired.
pub struct InstanceBuilder<'d> {
    deployment: &'d Deployment,
    config: Option<Config>,
    table: UserTable,
    store_through: Option<PgConnectOptions>,
    listener_on: Option<PgConnectOptions>,
    routes: fn(EnsureUserLayer) -> Router,
    organizations: bool,
    setup: bool,
}

impl InstanceBuilder<'_> {
    /// Verify tokens as `config` says (default: [`Deployment::config`],
    /// or with [`STORE_TIMEOUT_THROUGH_PROXY`] when the store goes through
    /// a proxy).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// Map the users table as `table` says (default: the bundled table).
    pub fn table(mut self, table: &UserTable) -> Self {
        self.table = table.clone();
        self
    }

    /// The store's pool (and, unless told otherwise, the listener) reaches
    /// PostgreSQL through `proxy`.
    pub fn store_through(mut self, proxy: &Proxy) -> Self {
        self.store_through = Some(self.deployment.through(proxy));
        self
    }

    /// The listener gets a connection of its own, through `proxy`; the
    /// store's pool is unchanged, and the listener still probes its
    /// channel through it (`listen_for_evictions_on`).
    pub fn listener_through(mut self, proxy: &Proxy) -> Self {
        self.listener_on = Some(self.deployment.through(proxy));
        self
    }

    /// The listener gets a connection of its own, straight to PostgreSQL,
    /// whatever the store's pool goes through.
    pub fn listener_direct(mut self) -> Self {
        self.listener_on = Some(self.deployment.postgres_options());
        self
    }

    /// The routes behind the layer (default: `common::app::app`, `GET /me`
    /// and `GET /maybe`); the webhook receiver is merged beside them.
    pub fn routes(mut self, routes: fn(EnsureUserLayer) -> Router) -> Self {
        self.routes = routes;
        self
    }

    /// The layer resolves organizations and memberships too, and the
    /// receiver applies their events.
    pub fn with_organizations(mut self) -> Self {
        self.organizations = true;
        self
    }

    /// Wire the instance with `Setup` (webhooks on) rather than by hand;
    /// such an instance counts no store calls, and cannot tell whether its
    /// listener runs.
    pub fn through_setup(mut self) -> Self {
        self.setup = true;
        self
    }

    /// Starts the instance: its pool, layer and listener (the listener's
    /// first `LISTEN` done, on PostgreSQL) and its receiver.
    pub async fn start(self) -> Instance {
        let through_proxy = self.store_through.is_some();
        let timeout = if through_proxy {
            STORE_TIMEOUT_THROUGH_PROXY
        } else {
            STORE_TIMEOUT
        };
        let config = self
            .config
            .clone()
            .unwrap_or_else(|| self.deployment.jwks.config().with_store_timeout(timeout));
        match &self.deployment.db {
            Store::Postgres(db) => {
                let options = self
                    .store_through
                    .clone()
                    .unwrap_or_else(|| PgConnectOptions::clone(&db.pool().connect_options()));
                let pool = pg_pool(&options, timeout).await;
                let store = PgUserStore::with_table(pool, &self.table);
                self.wire(config, store).await
            }
            Store::Sqlite(db) => {
                assert!(
                    self.store_through.is_none() && self.listener_on.is_none(),
                    "a proxy stands in front of PostgreSQL only"
                );
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(db.pool().connect_options().as_ref().clone())
                    .await
                    .unwrap();
                let store = SqliteUserStore::with_table(pool, &self.table);
                self.wire(config, store).await
            }
        }
    }

    async fn wire<S>(self, config: Config, store: S) -> Instance
    where
        S: UserStore + UserSync + OrganizationStore + OrganizationSync + EvictionSource + Clone,
    {
        if self.setup {
            let mut setup = Setup::new(config, store).with_webhooks(svix::verifier());
            if self.organizations {
                setup = setup.with_organizations();
            }
            if let Some(connection) = self.listener_on {
                setup = setup.with_eviction_listener_on(connection);
            }
            let running = setup.start().await.unwrap();
            let layer = running.layer();
            return Instance {
                app: (self.routes)(layer.clone()).merge(running.webhook_router(svix::PATH)),
                layer,
                listening: Some(Listening::Setup(running)),
                counts: None,
                backend: self.deployment.backend(),
            };
        }
        let counting = CountingStore::new(store.clone());
        let mut layer = EnsureUserLayer::new(config, counting.clone());
        let mut receiver = WebhookReceiver::new(svix::verifier(), store.clone(), layer.evictor());
        if self.organizations {
            layer = layer.with_organizations(counting.clone());
            receiver = receiver.with_organizations(store.clone());
        }
        let listener = match self.listener_on {
            Some(connection) => layer.listen_for_evictions_on(&store, connection).await,
            None => layer.listen_for_evictions(&store).await,
        }
        .unwrap();
        Instance {
            app: (self.routes)(layer.clone()).merge(receiver.into_router(svix::PATH)),
            layer,
            listening: Some(Listening::ByHand(listener)),
            counts: Some(counting.counts()),
            backend: self.deployment.backend(),
        }
    }
}

/// What keeps an instance's listener running.
enum Listening {
    ByHand(EvictionListener),
    Setup(Running),
}

/// One app process: its routes behind its layer, the webhook receiver at
/// [`svix::PATH`] beside them, and its eviction listener.
pub struct Instance {
    pub app: Router,
    pub layer: EnsureUserLayer,
    /// `None` once [`stop_listening`](Self::stop_listening) ran.
    listening: Option<Listening>,
    /// `None` when wired through `Setup`.
    counts: Option<Counts>,
    backend: Backend,
}

impl Instance {
    /// The status of `GET /me` with `token`, and the error code of a refusal.
    pub async fn me(&self, token: &str) -> (StatusCode, String) {
        let response = self.app.clone().oneshot(bearer(token)).await.unwrap();
        let (status, body) = read(response).await;
        (
            status,
            body["error"].as_str().unwrap_or_default().to_owned(),
        )
    }

    /// Sends `request`; the status and the code of the answer (a
    /// delivery's outcome, or a refusal's error).
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, String) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let (status, body) = read(response).await;
        let code = body["outcome"]
            .as_str()
            .or_else(|| body["error"].as_str())
            .unwrap_or_default()
            .to_owned();
        (status, code)
    }

    /// Delivers `event`, signed now as svix signs it.
    pub async fn deliver(&self, event: &Value) -> (StatusCode, String) {
        self.send(svix::delivery(event)).await
    }

    /// Delivers `user.deleted` for `user`; the status of the answer.
    pub async fn delete(&self, user: &str) -> StatusCode {
        self.deliver(&user_deleted_event(user)).await.0
    }

    /// Waits until `token` is refused with `code`; returns the time since
    /// `since`. Panics on any other answer than that refusal or `200`, or
    /// if it is still served after `limit`.
    pub async fn refused(
        &self,
        token: &str,
        code: &str,
        since: Instant,
        limit: Duration,
    ) -> Duration {
        loop {
            match self.me(token).await {
                (StatusCode::UNAUTHORIZED, refused) if refused == code => return since.elapsed(),
                (StatusCode::OK, _) => {}
                other => panic!("unexpected answer: {other:?}"),
            }
            assert!(since.elapsed() < limit, "still served after {limit:?}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub async fn readiness(&self) -> Readiness {
        self.layer.readiness().await
    }

    /// Polls readiness until `wanted` holds; panics after `limit`.
    pub async fn wait_for(
        &self,
        wanted: impl Fn(&Readiness) -> bool,
        what: &str,
        limit: Duration,
    ) -> Readiness {
        let started = Instant::now();
        loop {
            let readiness = self.readiness().await;
            if wanted(&readiness) {
                return readiness;
            }
            assert!(
                started.elapsed() < limit,
                "not {what} after {limit:?}: {readiness:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until this instance listens: its listener started and not
    /// stopped (on PostgreSQL, when wired by hand, its task running), and
    /// its readiness ready: keys held, the store reachable, the listener
    /// not found deaf. Panics after `limit`.
    pub async fn listening(&self, limit: Duration) -> Readiness {
        assert!(self.listening.is_some(), "the listener was stopped");
        let started = Instant::now();
        if let Some(Listening::ByHand(listener)) = &self.listening
            && self.backend == Backend::Postgres
        {
            assert!(listener.is_running(), "the listener does not run");
        }
        let left = limit.saturating_sub(started.elapsed());
        self.wait_for(Readiness::is_ready, "listening", left).await
    }

    /// Whether the listener task runs (always `false` on SQLite); panics
    /// when wired through `Setup`, which does not tell.
    pub fn listener_running(&self) -> bool {
        match &self.listening {
            Some(Listening::ByHand(listener)) => listener.is_running(),
            Some(Listening::Setup(_)) => panic!("a Setup does not tell whether its listener runs"),
            None => false,
        }
    }

    /// Stops the listener and waits for it to end; the instance serves on,
    /// hearing nothing more.
    pub async fn stop_listening(&mut self) {
        match self.listening.take() {
            Some(Listening::ByHand(listener)) => listener.shutdown().await,
            Some(Listening::Setup(running)) => running.shutdown().await,
            None => {}
        }
    }

    /// Users this instance's caches let through to the store so far.
    pub fn user_lookups(&self) -> usize {
        self.counts().users()
    }

    /// Memberships this instance's caches let through to the store so far.
    pub fn membership_lookups(&self) -> usize {
        self.counts().memberships()
    }

    fn counts(&self) -> &Counts {
        self.counts
            .as_ref()
            .expect("an instance wired through Setup counts no store calls")
    }
}

/// A pool of four connections made with `options`, waiting at most
/// `acquire_timeout` for one.
async fn pg_pool(options: &PgConnectOptions, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(4)
        .acquire_timeout(acquire_timeout)
        .connect_with(options.clone())
        .await
        .unwrap()
}
