//! `EnsureUserLayer` on a plain hyper server, without axum.
//!
//! ```sh
//! CLERK_PUBLISHABLE_KEY=pk_test_… cargo run --example hyper
//! ```
//!
//! The handler reads the [`Principal`] the layer put into the request
//! extensions, and the [`LocalUser`] it holds. Also
//! read: `DATABASE_URL` (default `sqlite://ensure-user-hyper.db?mode=rwc`)
//! and `BIND_ADDR` (default `127.0.0.1:3001`).

use std::{convert::Infallible, env, error::Error};

use bytes::Bytes;
use ensure_user::{Config, EnsureUserLayer, LocalUser, Principal, store::SqliteUserStore};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;

async fn hello(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The layer runs first, so a Principal is always there; it holds a
    // LocalUser when the credential is a user's.
    let user: Option<LocalUser> = request
        .extensions()
        .get::<Principal>()
        .and_then(Principal::user);
    let text = match user {
        Some(user) => format!("hello, local user {} ({})\n", user.id(), user.clerk_id()),
        None => "no user\n".to_owned(),
    };
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let database_url = env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://ensure-user-hyper.db?mode=rwc".to_owned());
    let pool = sqlx::SqlitePool::connect(&database_url).await?;
    let store = SqliteUserStore::new(pool);
    store.migrate().await?;
    let layer = EnsureUserLayer::new(Config::from_env()?, store);
    let service = ServiceBuilder::new().layer(layer).service_fn(hello);

    let bind = env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let listener = TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection error: {error}");
            }
        });
    }
}
