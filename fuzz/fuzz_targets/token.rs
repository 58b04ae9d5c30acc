//! Arbitrary `Authorization` and `Cookie` bytes through the whole layer:
//! nothing may panic, and nothing may authenticate.
#![no_main]

use std::sync::LazyLock;

use bytes::Bytes;
use ensure_user::{
    Config, EnsureUserLayer, KeySource, LocalId,
    store::{Profile, Resolution, StoreError, UserStore},
    testing::SigningKey,
};
use http::{HeaderValue, Request, StatusCode};
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

struct OneUser;

impl UserStore for OneUser {
    async fn find_or_create(&self, _: &str, _: &Profile) -> Result<Resolution, StoreError> {
        Ok(Resolution::Existing(LocalId::Int(1)))
    }
}

struct Fixture {
    runtime: tokio::runtime::Runtime,
    layer: EnsureUserLayer,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let key = SigningKey::generate("ins_fuzz");
    let config = Config::new(
        "https://clerk.fuzz.example",
        KeySource::pem(&key.public_key_pem()).unwrap(),
    );
    Fixture {
        runtime: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
        layer: EnsureUserLayer::new(config, OneUser),
    }
});

fuzz_target!(|input: (&[u8], &[u8])| {
    let (authorization, cookie) = input;
    let mut request = Request::get("/").body(Full::new(Bytes::new())).unwrap();
    if let Ok(value) = HeaderValue::from_bytes(authorization) {
        request.headers_mut().insert("authorization", value);
    }
    if let Ok(value) = HeaderValue::from_bytes(cookie) {
        request.headers_mut().insert("cookie", value);
    }
    let mut service = ServiceBuilder::new()
        .layer(FIXTURE.layer.clone())
        .service(service_fn(|_request: Request<Full<Bytes>>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
        }));
    let status = FIXTURE.runtime.block_on(async {
        service
            .ready()
            .await
            .unwrap()
            .call(request)
            .await
            .unwrap()
            .status()
    });
    assert!(
        status == StatusCode::UNAUTHORIZED,
        "random bytes authenticated: {status}"
    );
});
