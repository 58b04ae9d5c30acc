//! An issuer's signing keys: found through its discovery document (once,
//! then kept), at a documented JWKS URL, or given. The key store below is
//! the one Clerk's keys use, with the same single-flight fetches, cooldown
//! and stale-on-outage rules.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use serde::Deserialize;

use super::issuer::{IssuerKeys, is_loopback};
use crate::{
    rejection::Rejection,
    token::{
        KeySource,
        keys::{KeyHealth, KeyStore, http_client, read_bounded},
        rules::KeyRules,
    },
};

/// Where an issuer's key store is, or will be once discovered.
pub(super) enum IssuerKeyStore {
    /// Built from the configuration.
    Ready(Arc<KeyStore>),
    /// Built from the discovery document's `jwks_uri`, on first need.
    Discovered(Box<Discovery>),
}

impl IssuerKeyStore {
    /// The key store of `keys` for `issuer`, fetched under `rules` (whose
    /// source is replaced).
    pub(super) fn new(issuer: &str, keys: &IssuerKeys, rules: KeyRules) -> Self {
        let with_source = |source| {
            Arc::new(KeyStore::new(&KeyRules {
                source,
                ..rules.clone()
            }))
        };
        match keys {
            IssuerKeys::Given(source) => Self::Ready(with_source(source.clone())),
            IssuerKeys::Jwks(url) => Self::Ready(with_source(KeySource::jwks_url(url))),
            IssuerKeys::Discovery => Self::Discovered(Box::new(Discovery::new(issuer, rules))),
        }
    }

    /// The key store, discovering it first if need be.
    pub(super) async fn get(&self) -> Result<&Arc<KeyStore>, Rejection> {
        match self {
            Self::Ready(store) => Ok(store),
            Self::Discovered(discovery) => discovery.key_store().await,
        }
    }

    /// What a readiness check learns: discovery is tried (at most once per
    /// cooldown) when it has not succeeded.
    pub(super) async fn health(&self) -> KeyHealth {
        match self.get().await {
            Ok(store) => store.health().await,
            Err(_) => KeyHealth {
                held: 0,
                age: None,
                last_fetch_failed: true,
            },
        }
    }
}

/// Discovery of one issuer: at most one request at a time, none within
/// the key cooldown after a failure, and the key store kept once found.
pub(super) struct Discovery {
    issuer: String,
    url: String,
    client: reqwest::Client,
    rules: KeyRules,
    found: OnceLock<Arc<KeyStore>>,
    /// The last failure: when it ended, and the refusal it gives.
    failed: tokio::sync::Mutex<Option<(Instant, Rejection)>>,
}

/// The part of a discovery document the layer reads.
#[derive(Deserialize)]
struct Document {
    issuer: String,
    jwks_uri: String,
}

impl Discovery {
    fn new(issuer: &str, rules: KeyRules) -> Self {
        let client = http_client(rules.fetch_timeout, "the discovery");
        Self {
            url: discovery_url(issuer),
            issuer: issuer.to_owned(),
            client,
            rules,
            found: OnceLock::new(),
            failed: tokio::sync::Mutex::new(None),
        }
    }

    async fn key_store(&self) -> Result<&Arc<KeyStore>, Rejection> {
        if let Some(store) = self.found.get() {
            return Ok(store);
        }
        let mut failed = self.failed.lock().await;
        if let Some(store) = self.found.get() {
            return Ok(store);
        }
        if let Some((at, rejection)) = *failed
            && at.elapsed() < self.rules.refetch_cooldown
        {
            return Err(rejection);
        }
        match self.discover().await {
            Ok(jwks_uri) => {
                tracing::debug!(target: "ensure_user::oidc", issuer = %self.issuer, %jwks_uri, "discovered");
                let rules = KeyRules {
                    source: KeySource::jwks_url(jwks_uri),
                    ..self.rules.clone()
                };
                *failed = None;
                Ok(self.found.get_or_init(|| Arc::new(KeyStore::new(&rules))))
            }
            Err((rejection, reason)) => {
                if rejection == Rejection::VerificationMisconfigured {
                    tracing::error!(target: "ensure_user::oidc", issuer = %self.issuer, url = %self.url, %reason, "discovery refused");
                } else {
                    tracing::warn!(target: "ensure_user::oidc", issuer = %self.issuer, url = %self.url, %reason, "discovery failed");
                }
                *failed = Some((Instant::now(), rejection));
                Err(rejection)
            }
        }
    }

    /// The `jwks_uri` of the issuer's discovery document, or the refusal
    /// and the reason: an outage is `keys_unavailable` (503); a document
    /// naming another issuer, or keys over plain http off loopback, is
    /// `verification_misconfigured` (500).
    async fn discover(&self) -> Result<String, (Rejection, String)> {
        let unavailable = |reason: String| (Rejection::KeysUnavailable, reason);
        let misconfigured = |reason: String| (Rejection::VerificationMisconfigured, reason);
        let response = self
            .client
            .get(&self.url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|error| unavailable(format!("request failed: {}", error.without_url())))?;
        if !response.status().is_success() {
            return Err(unavailable(format!("answered {}", response.status())));
        }
        let body = read_bounded(response, self.rules.max_body, "discovery document")
            .await
            .map_err(unavailable)?;
        let document: Document = serde_json::from_slice(&body)
            .map_err(|_| misconfigured("not a discovery document".to_owned()))?;
        if document.issuer != self.issuer {
            return Err(misconfigured(format!(
                "the document's issuer is `{}`, not the one configured; configure the issuer \
                 exactly as the provider spells it",
                document.issuer
            )));
        }
        let uri = document.jwks_uri;
        if !(uri.starts_with("https://") || uri.starts_with("http://") && is_loopback(&uri)) {
            return Err(misconfigured(format!("jwks_uri `{uri}` is not https://")));
        }
        Ok(uri)
    }
}

/// `<issuer>/.well-known/openid-configuration`, any trailing `/` of the
/// issuer removed first (OpenID Connect Discovery §4).
fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_appended_to_the_issuer() {
        assert_eq!(
            discovery_url("https://t.auth0.com/"),
            "https://t.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://kc/realms/x"),
            "https://kc/realms/x/.well-known/openid-configuration"
        );
    }
}
