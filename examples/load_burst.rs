//! The sign-up burst's load client: every token of a file sent exactly once,
//! as `GET /me` with `Authorization: Bearer`, by concurrent workers over
//! keep-alive connections opened before the clock starts.
//!
//! ```sh
//! cargo run --release --example load_burst -- <base url> <tokens file> [concurrency] [sqlite url]
//! ```
//!
//! Each token (one a line, as `load_tokens` writes them) is a user the
//! server has never seen, so each request is that user's first: a token
//! verification, a read and an insert. Each worker takes the next token from
//! a shared index until none is left; the latency of each request is
//! recorded. Prints the new users per second, p50, p99 and max latency, and
//! every failed request's reason. With a `sqlite:` URL it then counts the
//! rows of that database's `users` table.
//!
//! Exits non-zero when any request failed, when the responses did not carry
//! one distinct local id per token, or when the table does not hold exactly
//! one row per token. The last line is for scripts:
//! `users=… concurrency=… seconds=… users_per_s=… p50_us=… p99_us=… max_us=… errors=… rows=…`.

use std::{
    env,
    error::Error,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http::{
    HeaderValue, Request, StatusCode,
    header::{AUTHORIZATION, HOST},
};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Barrier};

/// What one worker saw.
#[derive(Default)]
struct Outcome {
    /// The latency of every request that answered `200`.
    latencies: Vec<Duration>,
    /// The local id each `200` answered with.
    ids: Vec<i64>,
    /// Why each failed request failed.
    errors: Vec<String>,
}

/// The part of `GET /me`'s body the client checks.
#[derive(serde::Deserialize)]
struct Me {
    id: i64,
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = env::args().skip(1);
    let usage = "usage: load_burst <base url> <tokens file> [concurrency] [sqlite url]";
    let base = args.next().ok_or(usage)?;
    let tokens_file = args.next().ok_or(usage)?;
    let concurrency: usize = args.next().map_or(Ok(64), |value| value.parse())?;
    let sqlite_url = args.next();

    let authority = base
        .strip_prefix("http://")
        .ok_or("the base url must start with http://")?
        .trim_end_matches('/')
        .to_owned();
    // Built before the clock starts: the client only sends them.
    let headers: Vec<HeaderValue> = std::fs::read_to_string(&tokens_file)?
        .lines()
        .filter(|line| !line.is_empty())
        .map(|token| HeaderValue::from_str(&format!("Bearer {token}")))
        .collect::<Result<_, _>>()?;
    let users = headers.len();
    if users == 0 || concurrency == 0 {
        return Err("need at least one token and one worker".into());
    }

    // One thread, as wrk runs with `-t1` in the other load test: the client
    // shares the machine's cores with the server and the database.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (elapsed, outcome) = runtime.block_on(burst(&authority, headers, concurrency))?;

    let mut latencies = outcome.latencies;
    latencies.sort_unstable();
    let mut ids = outcome.ids;
    ids.sort_unstable();
    ids.dedup();
    let errors = outcome.errors;
    let rows = match &sqlite_url {
        Some(url) => Some(runtime.block_on(sqlite_rows(url))?),
        None => None,
    };

    let seconds = elapsed.as_secs_f64();
    let rate = latencies.len() as f64 / seconds;
    let micros = |d: Duration| d.as_micros();
    let (p50, p99, max) = if latencies.is_empty() {
        (0, 0, 0)
    } else {
        (
            micros(percentile(&latencies, 50)),
            micros(percentile(&latencies, 99)),
            micros(*latencies.last().expect("not empty")),
        )
    };
    for (index, error) in errors.iter().enumerate().take(20) {
        eprintln!(
            "request failed ({} of {}): {error}",
            index + 1,
            errors.len()
        );
    }
    let mut failed = !errors.is_empty();
    if ids.len() != users {
        eprintln!(
            "{users} tokens sent, but {} distinct local ids answered",
            ids.len()
        );
        failed = true;
    }
    if let Some(rows) = rows
        && rows != users as i64
    {
        eprintln!("{users} users, but the users table holds {rows} rows");
        failed = true;
    }
    eprintln!(
        "{users} new users in {seconds:.2} s at concurrency {concurrency}: {rate:.0} users/s, \
         p50 {p50} µs, p99 {p99} µs, max {max} µs, {} failed",
        errors.len()
    );
    println!(
        "users={users} concurrency={concurrency} seconds={seconds:.3} users_per_s={rate:.0} \
         p50_us={p50} p99_us={p99} max_us={max} errors={} rows={}",
        errors.len(),
        rows.map_or_else(|| "unchecked".to_owned(), |rows| rows.to_string()),
    );
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// Opens `concurrency` connections, then sends every token once; the time
/// from the first request to the last answer, and what the workers saw.
async fn burst(
    authority: &str,
    headers: Vec<HeaderValue>,
    concurrency: usize,
) -> Result<(Duration, Outcome), Box<dyn Error>> {
    let headers = Arc::new(headers);
    let next = Arc::new(AtomicUsize::new(0));
    let host = HeaderValue::from_str(authority)?;
    // The workers and this task start the clock together.
    let start = Arc::new(Barrier::new(concurrency + 1));
    let mut workers = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let sender = connect(authority).await?;
        let (headers, next, host, start) = (
            Arc::clone(&headers),
            Arc::clone(&next),
            host.clone(),
            Arc::clone(&start),
        );
        let authority = authority.to_owned();
        workers.push(tokio::spawn(async move {
            start.wait().await;
            work(sender, &authority, &host, &headers, &next).await
        }));
    }
    start.wait().await;
    let began = Instant::now();
    let mut outcome = Outcome::default();
    for worker in workers {
        let done = worker.await?;
        outcome.latencies.extend(done.latencies);
        outcome.ids.extend(done.ids);
        outcome.errors.extend(done.errors);
    }
    Ok((began.elapsed(), outcome))
}

/// One keep-alive connection, handshaken.
async fn connect(authority: &str) -> Result<SendRequest<Empty<Bytes>>, Box<dyn Error>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Takes the next token until none is left; a broken connection is counted
/// as a failure and replaced.
async fn work(
    mut sender: SendRequest<Empty<Bytes>>,
    authority: &str,
    host: &HeaderValue,
    headers: &[HeaderValue],
    next: &AtomicUsize,
) -> Outcome {
    let mut outcome = Outcome::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        let Some(authorization) = headers.get(index) else {
            return outcome;
        };
        let request = Request::get("/me")
            .header(HOST, host)
            .header(AUTHORIZATION, authorization)
            .body(Empty::new())
            .expect("a valid request");
        let sent = Instant::now();
        match send(&mut sender, request).await {
            Ok((StatusCode::OK, body)) => {
                let latency = sent.elapsed();
                match serde_json::from_slice::<Me>(&body) {
                    Ok(me) => {
                        outcome.latencies.push(latency);
                        outcome.ids.push(me.id);
                    }
                    Err(error) => outcome.errors.push(format!(
                        "token {index}: 200 with an unexpected body ({error}): {}",
                        String::from_utf8_lossy(&body)
                    )),
                }
            }
            Ok((status, body)) => outcome.errors.push(format!(
                "token {index}: {status}: {}",
                String::from_utf8_lossy(&body)
            )),
            Err(error) => {
                outcome.errors.push(format!("token {index}: {error}"));
                match connect(authority).await {
                    Ok(fresh) => sender = fresh,
                    Err(error) => {
                        outcome
                            .errors
                            .push(format!("reconnecting failed, worker stopped: {error}"));
                        return outcome;
                    }
                }
            }
        }
    }
}

/// Sends one request and reads its whole body.
async fn send(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> Result<(StatusCode, Bytes), Box<dyn Error + Send + Sync>> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The `p`-th percentile (nearest rank) of sorted latencies.
fn percentile(sorted: &[Duration], p: usize) -> Duration {
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank - 1]
}

/// How many rows the `users` table of a SQLite database holds.
async fn sqlite_rows(url: &str) -> Result<i64, Box<dyn Error>> {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(rows)
}
