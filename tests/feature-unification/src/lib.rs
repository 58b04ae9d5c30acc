//! ensure-user in a build where jsonwebtoken has both of its crypto backends
//! (`rust_crypto` and `aws_lc_rs`) and no provider installed.
//!
//! Cargo unifies a crate's features across the whole dependency graph, so an
//! app that depends on ensure-user gets this build as soon as anything in it
//! asks jsonwebtoken for the other backend. jsonwebtoken then cannot choose a
//! default provider and panics on every signature check. The tests show that
//! the hazard is real in this build, and that the layer verifies tokens in it
//! all the same. Run them with `cargo test -p ensure-user-feature-unification`.

#[cfg(test)]
mod tests {
    use std::{convert::Infallible, panic};

    use bytes::Bytes;
    use ensure_user::{
        Config, EnsureUserLayer, KeySource, LocalUser, Principal,
        store::SqliteUserStore,
        testing::{SigningKey, random_id},
    };
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use jsonwebtoken::{Algorithm, DecodingKey};
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    use tower::{Layer, ServiceExt, service_fn};

    const ISSUER: &str = "https://clerk.feature-unification.example";

    #[test]
    fn jsonwebtoken_panics_on_verify_in_this_build() {
        let key = SigningKey::generate("ins_test");
        let token = key.session_token(ISSUER, &random_id("user"), 60);
        let (signed, signature) = token.rsplit_once('.').expect("three segments");
        let jwk = key.jwk();
        let decoding_key = DecodingKey::from_rsa_components(
            jwk["n"].as_str().expect("n"),
            jwk["e"].as_str().expect("e"),
        )
        .expect("RSA components");
        let outcome = panic::catch_unwind(|| {
            jsonwebtoken::crypto::verify(
                signature,
                signed.as_bytes(),
                &decoding_key,
                Algorithm::RS256,
            )
        });
        let payload = outcome.expect_err("jsonwebtoken verified: this is not the hazardous build");
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        assert!(message.contains("CryptoProvider"), "{message}");
    }

    #[tokio::test]
    async fn the_layer_verifies_a_token_in_this_build() {
        let key = SigningKey::generate("ins_test");
        let config = Config::new(ISSUER, KeySource::pem(&key.public_key_pem()).expect("PEM"));
        let store = SqliteUserStore::new(
            SqlitePoolOptions::new()
                .connect_with(
                    SqliteConnectOptions::new()
                        .filename(std::env::temp_dir().join(format!("{}.db", random_id("db"))))
                        .create_if_missing(true),
                )
                .await
                .expect("SQLite"),
        );
        store.migrate().await.expect("migrations");
        let service = EnsureUserLayer::new(config, store).layer(service_fn(
            |request: Request<Full<Bytes>>| async move {
                let user: LocalUser = request
                    .extensions()
                    .get::<Principal>()
                    .and_then(Principal::user)
                    .expect("a local user");
                Ok::<_, Infallible>(Response::new(Full::from(user.id().to_string())))
            },
        ));

        let user = random_id("user");
        let request = Request::get("/me")
            .header(
                "authorization",
                format!("Bearer {}", key.session_token(ISSUER, &user, 60)),
            )
            .body(Full::default())
            .expect("request");
        let response = service.oneshot(request).await.expect("infallible");
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let local_id = String::from_utf8_lossy(&body);
        assert_eq!(status, StatusCode::OK, "{local_id}");
        assert!(
            local_id.parse::<i64>().is_ok_and(|id| id > 0),
            "local id: {local_id}"
        );
    }
}
