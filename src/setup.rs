//! [`Setup`]: the layer, the webhook receiver and the eviction listener,
//! wired from one configuration — what every app with Clerk's webhooks
//! builds.

use crate::{
    config::Config,
    eviction::{EvictionListener, EvictionSource},
    layer::EnsureUserLayer,
    policy::Mode,
    store::{OrganizationStore, OrganizationSync, StoreError, UserStore, UserSync},
};
#[cfg(feature = "webhooks")]
use crate::{
    store::DynOrganizationSync,
    webhook::{WebhookHooks, WebhookReceiver, WebhookVerifier, hooks::DynWebhookHooks},
};
#[cfg(feature = "webhooks")]
use std::sync::Arc;

/// Builds what an app with Clerk needs around one store: the
/// [`EnsureUserLayer`], the webhook receiver (with the `webhooks` feature,
/// when given a verifier) evicting through the layer's
/// [`Evictor`](crate::eviction::Evictor), and, on PostgreSQL, the eviction
/// listener that hears other instances' deletions. A store of the app's own
/// wires the pieces by hand (see the README).
///
/// ```no_run
/// use axum::{Json, Router, routing::get};
/// use ensure_user::{Config, LocalUser, Setup, store::SqliteUserStore};
/// use ensure_user::webhook::WebhookVerifier;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let store = SqliteUserStore::new(sqlx::SqlitePool::connect("sqlite://app.db?mode=rwc").await?);
/// store.migrate().await?;
/// let running = Setup::new(Config::from_env()?, store)
///     .with_webhooks(WebhookVerifier::from_env()?) // CLERK_WEBHOOK_SECRET
///     .start()
///     .await?;
///
/// let app: Router = Router::new()
///     .route("/me", get(|user: LocalUser| async move { Json(user.id()) }))
///     .layer(running.layer())
///     .merge(running.webhook_router("/webhooks/clerk"));
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, app).await?;
/// running.shutdown().await;
/// # Ok(()) }
/// ```
#[must_use = "a setup does nothing until started"]
pub struct Setup<S> {
    layer: EnsureUserLayer,
    store: S,
    /// Whether the webhook receiver keeps organizations too.
    #[cfg(feature = "webhooks")]
    organizations: Option<Arc<dyn DynOrganizationSync>>,
    #[cfg(feature = "webhooks")]
    webhooks: Option<WebhookReceiverSettings>,
    /// The eviction listener's own connection, when not one like the store's.
    #[cfg(feature = "postgres")]
    listener_connection: Option<sqlx::postgres::PgConnectOptions>,
}

/// What the webhook receiver is built with.
#[cfg(feature = "webhooks")]
struct WebhookReceiverSettings {
    verifier: WebhookVerifier,
    hooks: Arc<dyn DynWebhookHooks>,
}

impl<S> Setup<S>
where
    S: UserStore + UserSync + EvictionSource + Clone,
{
    /// A setup verifying tokens as `config` says and keeping users in `store`.
    pub fn new(config: Config, store: S) -> Self {
        Self {
            layer: EnsureUserLayer::new(config, store.clone()),
            store,
            #[cfg(feature = "webhooks")]
            organizations: None,
            #[cfg(feature = "webhooks")]
            webhooks: None,
            #[cfg(feature = "postgres")]
            listener_connection: None,
        }
    }

    /// Also receive Clerk's webhooks, checked with `verifier`. Without it,
    /// [`Running::webhook_router`] is empty.
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn with_webhooks(mut self, verifier: WebhookVerifier) -> Self {
        self.webhooks = Some(WebhookReceiverSettings {
            verifier,
            hooks: Arc::new(()),
        });
        self
    }

    /// Run `hooks` after each webhook delivery is applied (see
    /// [`WebhookHooks`]). Needs [`with_webhooks`](Self::with_webhooks).
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn with_webhook_hooks(mut self, hooks: impl WebhookHooks) -> Self {
        if let Some(settings) = &mut self.webhooks {
            settings.hooks = Arc::new(hooks);
        }
        self
    }

    /// What the layer does with a request without a token. Default [`Mode::Required`].
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.layer = self.layer.with_mode(mode);
        self
    }

    /// Fill a new user's profile in from the Backend API (see
    /// [`ProfileFetch`](crate::ProfileFetch)).
    #[cfg(feature = "clerk-api")]
    #[cfg_attr(docsrs, doc(cfg(feature = "clerk-api")))]
    pub fn with_profile_fetch(mut self, fetch: crate::profile_fetch::ProfileFetch) -> Self {
        self.layer = self.layer.with_profile_fetch(fetch);
        self
    }

    /// Give the eviction listener a connection of its own, made with
    /// `connection` (a direct or session-mode URL of the same database and
    /// schema), while the store's pool goes through a transaction-mode
    /// pooler, where `LISTEN` hears nothing. See
    /// [`EnsureUserLayer::listen_for_evictions_on`]. Default: the listener
    /// connects like the store's pool. Not used on SQLite.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub fn with_eviction_listener_on(
        mut self,
        connection: sqlx::postgres::PgConnectOptions,
    ) -> Self {
        self.listener_connection = Some(connection);
        self
    }

    /// Checks the store's schema, starts the eviction listener (on
    /// PostgreSQL; on SQLite, reads the ended sessions once) and builds the
    /// webhook receiver.
    ///
    /// Fails when the database lacks a table, column or unique constraint
    /// the store needs ([`StoreError::Schema`], naming it and the fix: see
    /// [`UserStore::check_schema`], and
    /// [`OrganizationStore::check_organization_schema`] after
    /// [`with_organizations`](Self::with_organizations)), or when the
    /// listener's first `LISTEN`, or that first read, does.
    pub async fn start(self) -> Result<Running, StoreError> {
        self.layer.check_schema().await?;
        #[cfg(feature = "postgres")]
        let listener = match self.listener_connection {
            Some(connection) => {
                self.layer
                    .listen_for_evictions_on(&self.store, connection)
                    .await?
            }
            None => self.layer.listen_for_evictions(&self.store).await?,
        };
        #[cfg(not(feature = "postgres"))]
        let listener = self.layer.listen_for_evictions(&self.store).await?;
        #[cfg(feature = "webhooks")]
        let webhooks = self.webhooks.map(|settings| {
            let receiver =
                WebhookReceiver::new(settings.verifier, self.store, self.layer.evictor())
                    .with_shared_hooks(settings.hooks);
            match self.organizations {
                Some(store) => receiver.with_shared_organizations(store),
                None => receiver,
            }
        });
        Ok(Running {
            layer: self.layer,
            #[cfg(feature = "webhooks")]
            webhooks,
            listener,
        })
    }
}

impl<S> Setup<S>
where
    S: UserStore + UserSync + OrganizationStore + OrganizationSync + EvictionSource + Clone,
{
    /// Also resolve each token's active organization and membership (see
    /// [`EnsureUserLayer::with_organizations`]), and have the webhook
    /// receiver keep them in step. Call it before
    /// [`with_mode`](Self::with_mode) or `with_profile_fetch` (feature
    /// `clerk-api`).
    pub fn with_organizations(mut self) -> Self {
        self.layer = self.layer.with_organizations(self.store.clone());
        #[cfg(feature = "webhooks")]
        {
            self.organizations = Some(Arc::new(self.store.clone()));
        }
        self
    }
}

impl<S> std::fmt::Debug for Setup<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setup")
            .field("layer", &self.layer)
            .finish_non_exhaustive()
    }
}

/// What [`Setup::start`] started: hand out the layer and the webhook
/// router, and shut it down when the server stops.
#[derive(Debug)]
pub struct Running {
    layer: EnsureUserLayer,
    #[cfg(feature = "webhooks")]
    webhooks: Option<WebhookReceiver>,
    listener: EvictionListener,
}

impl Running {
    /// The layer to put in front of the routes that need a user.
    pub fn layer(&self) -> EnsureUserLayer {
        self.layer.clone()
    }

    /// The webhook receiver, when the setup was given a verifier.
    #[cfg(feature = "webhooks")]
    #[cfg_attr(docsrs, doc(cfg(feature = "webhooks")))]
    pub fn webhooks(&self) -> Option<&WebhookReceiver> {
        self.webhooks.as_ref()
    }

    /// An axum router answering Clerk's deliveries at `POST path`, to merge
    /// after the app's `.layer(…)` (svix sends no session token); empty when
    /// the setup has no webhooks.
    #[cfg(all(feature = "axum", feature = "webhooks"))]
    #[cfg_attr(docsrs, doc(cfg(all(feature = "axum", feature = "webhooks"))))]
    pub fn webhook_router<St>(&self, path: &str) -> axum::Router<St>
    where
        St: Clone + Send + Sync + 'static,
    {
        match &self.webhooks {
            Some(receiver) => receiver.clone().into_router(path),
            None => axum::Router::new(),
        }
    }

    /// Stops the eviction listener and waits for it to end.
    pub async fn shutdown(self) {
        self.listener.shutdown().await;
    }
}
