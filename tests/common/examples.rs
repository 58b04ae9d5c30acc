//! The crate's examples as processes: built by cargo, started with an
//! environment of the test's choosing, stopped when dropped.

use std::{
    path::PathBuf,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

/// The executable of example `name`, built with every feature.
pub async fn example_binary(name: &str) -> PathBuf {
    let output = tokio::process::Command::new(env!("CARGO"))
        .args(["build", "--example", name, "--all-features"])
        .arg("--message-format=json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "building the {name} example failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == name)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo names the {name} executable"))
}

/// A running example, killed when dropped.
pub struct Example {
    _process: tokio::process::Child,
    /// What it printed up to the line the start waited for.
    pub printed: Vec<String>,
    /// Every line on stdout and stderr so far, when started with
    /// [`Example::start_logged`].
    output: Arc<Mutex<Vec<String>>>,
}

impl Example {
    /// Starts `binary` with only `env` set of the Clerk variables, and waits
    /// (at most 30 s) for a line of its output containing `ready`.
    pub async fn start(binary: &PathBuf, env: &[(&str, String)], ready: &str) -> Self {
        Self::spawn(binary, env, ready, false).await
    }

    /// As [`Example::start`], and keeps reading stdout and stderr to the
    /// end, for [`Example::output`].
    pub async fn start_logged(binary: &PathBuf, env: &[(&str, String)], ready: &str) -> Self {
        Self::spawn(binary, env, ready, true).await
    }

    /// Everything the example wrote to stdout and stderr so far (started
    /// with [`Example::start_logged`]), one line each, the two streams
    /// interleaved in the order they were read.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().join("\n")
    }

    async fn spawn(binary: &PathBuf, env: &[(&str, String)], ready: &str, logged: bool) -> Self {
        let mut command = tokio::process::Command::new(binary);
        for name in [
            "CLERK_PUBLISHABLE_KEY",
            "CLERK_JWT_KEY",
            "CLERK_JWKS_URL",
            "CLERK_SECRET_KEY",
            "CLERK_ISSUER",
            "CLERK_AUTHORIZED_PARTIES",
            "CLERK_WEBHOOK_SECRET",
            "DATABASE_URL",
            "BIND_ADDR",
            "CORS_ALLOWED_ORIGINS",
            "RUST_LOG",
        ] {
            command.env_remove(name);
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut process = command
            .stdout(Stdio::piped())
            .stderr(if logged {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(stderr) = process.stderr.take() {
            tokio::spawn(collect(BufReader::new(stderr), output.clone()));
        }
        let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
        let mut printed = Vec::new();
        let waited = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                let done = line.contains(ready);
                output.lock().unwrap().push(line.clone());
                printed.push(line);
                if done {
                    return;
                }
            }
            panic!("the example ended before printing {ready:?}: {printed:?}");
        })
        .await;
        assert!(
            waited.is_ok(),
            "the example did not print {ready:?} in time"
        );
        if logged {
            tokio::spawn(collect(lines.into_inner(), output.clone()));
        }
        Self {
            _process: process,
            printed,
            output,
        }
    }

    /// The `http://…` address in the last line printed.
    pub fn url(&self) -> String {
        let line = self.printed.last().unwrap();
        let start = line.find("http://").unwrap();
        line[start..]
            .split_whitespace()
            .next()
            .unwrap()
            .trim_end_matches(['.', ',', ')'])
            .to_owned()
    }
}

/// Appends every line of `stream` to `output`, until it ends.
async fn collect(stream: impl AsyncBufRead + Unpin, output: Arc<Mutex<Vec<String>>>) {
    let mut lines = stream.lines();
    while let Ok(Some(line)) = lines.next_line().await {
        output.lock().unwrap().push(line);
    }
}
