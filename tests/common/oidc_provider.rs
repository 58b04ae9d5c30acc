//! A real OpenID Provider on loopback: panva's `oidc-provider` run by Node
//! (`tests/oidc-provider/server.mjs`), for the tests of access tokens from
//! any OpenID Connect issuer. Discovery, the JWKS and the token endpoint are
//! the provider's own; the tokens are minted by its models, signed with keys
//! it generated at start (one per algorithm in [`ALGORITHMS`]).
//!
//! Needs `node` and `npm` on `PATH` (`ENSURE_USER_TEST_NODE` and
//! `ENSURE_USER_TEST_NPM` override them). The first start in a checkout runs
//! `npm ci` in `tests/oidc-provider`; the npm registry must be reachable
//! then, never afterwards. A missing Node, a failed install or a server that
//! does not come up fails the test, with what Node printed.

use std::{
    fs::File,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex, OnceLock},
    time::{Duration, Instant},
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, ChildStdin},
};

/// The algorithms the provider signs with, one key each.
pub const ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The client whose `client_credentials` grant [`OidcProvider::client_credentials`]
/// uses: the `sub` and `client_id` of machine tokens.
pub const MACHINE_CLIENT_ID: &str = "ensure-user-machine";
const MACHINE_CLIENT_SECRET: &str = "ensure-user-machine-secret";

/// The client user tokens from [`OidcProvider::access_token`] are issued to
/// (their `client_id`).
pub const USER_CLIENT_ID: &str = "ensure-user-app";

/// How long the server may take to come up: six RSA keys on a loaded
/// two-core machine take seconds.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A user's access token to mint: [`Mint::new`], then the setters.
#[derive(Clone, Debug)]
pub struct Mint {
    /// `sub`.
    pub subject: String,
    /// `aud`: the resource server.
    pub audience: String,
    /// The JWS algorithm, one of [`ALGORITHMS`].
    pub alg: String,
    /// `scope`, space-separated.
    pub scope: String,
    /// Claims added to the payload (an object), through the provider's
    /// `extraTokenClaims`.
    pub claims: Value,
    /// Seconds from `iat` to `exp`.
    pub ttl_seconds: u64,
}

impl Mint {
    /// A token for `subject` at `audience`: RS256, scope `openid`, no extra
    /// claims, valid for 300 s.
    pub fn new(subject: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            audience: audience.into(),
            alg: "RS256".to_owned(),
            scope: "openid".to_owned(),
            claims: json!({}),
            ttl_seconds: 300,
        }
    }

    /// Signed with `alg`.
    pub fn alg(mut self, alg: &str) -> Self {
        alg.clone_into(&mut self.alg);
        self
    }

    /// With `scope`.
    pub fn scope(mut self, scope: &str) -> Self {
        scope.clone_into(&mut self.scope);
        self
    }

    /// With the extra claim `name` (custom or namespaced, e.g.
    /// `https://example.com/roles`).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims
            .as_object_mut()
            .expect("the extra claims are an object")
            .insert(name.to_owned(), value.into());
        self
    }

    /// With every claim of `claims` (an object) added.
    pub fn claims(mut self, claims: Value) -> Self {
        let Value::Object(claims) = claims else {
            panic!("the extra claims are an object: {claims}");
        };
        for (name, value) in claims {
            self = self.claim(&name, value);
        }
        self
    }

    /// Valid for `seconds`.
    pub fn ttl_seconds(mut self, seconds: u64) -> Self {
        self.ttl_seconds = seconds;
        self
    }
}

/// A running provider, stopped when dropped.
pub struct OidcProvider {
    process: Child,
    /// The server's stdin: it exits when this closes, so that even a test
    /// killed before `Drop` runs leaves no server behind.
    _stdin: ChildStdin,
    issuer: String,
    advertised_issuer: String,
    port: u16,
    stderr: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl OidcProvider {
    /// Starts a provider whose issuer is its loopback URL,
    /// `http://127.0.0.1:<port>`.
    pub async fn start() -> Self {
        Self::spawn(None).await
    }

    /// Starts a provider on loopback that calls itself `advertised`: the
    /// `issuer` of its discovery document and the `iss` of its tokens, while
    /// [`OidcProvider::issuer`] (where it serves) stays the loopback URL.
    pub async fn start_with_issuer_override(advertised: &str) -> Self {
        Self::spawn(Some(advertised)).await
    }

    /// The URL it serves on, `http://127.0.0.1:<port>`, no trailing slash:
    /// the issuer, unless started with an override.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The issuer its discovery document and its tokens name.
    pub fn advertised_issuer(&self) -> &str {
        &self.advertised_issuer
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `path` on the server, e.g. `/.well-known/openid-configuration`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// The discovery document.
    pub async fn discovery(&self) -> Value {
        self.get_json("/.well-known/openid-configuration").await
    }

    /// The JWKS, fetched from the `jwks_uri` of the discovery document.
    pub async fn jwks(&self) -> Value {
        let discovery = self.discovery().await;
        let jwks_uri = discovery["jwks_uri"]
            .as_str()
            .unwrap_or_else(|| panic!("the discovery document has a jwks_uri: {discovery}"));
        let response = self.http.get(jwks_uri).send().await.unwrap();
        self.json_of(response, jwks_uri).await
    }

    /// An RFC 9068 access token (`typ: at+jwt`) for a user, minted by the
    /// provider's `AccessToken` model for a `Grant` it saved, issued to
    /// [`USER_CLIENT_ID`].
    pub async fn access_token(&self, request: &Mint) -> String {
        let body = json!({
            "sub": request.subject,
            "aud": request.audience,
            "alg": request.alg,
            "scope": request.scope,
            "claims": request.claims,
            "ttl": request.ttl_seconds,
        });
        let answer = self.post_json("/test/mint", &body).await;
        string_field(&answer, "access_token")
    }

    /// An ID token (`typ: JWT`) for `subject`, minted by the provider's
    /// `IdToken` model for the client `audience`, signed with `alg`: what
    /// must be refused where an access token is required.
    pub async fn id_token(&self, subject: &str, audience: &str, alg: &str) -> String {
        let body = json!({ "sub": subject, "aud": audience, "alg": alg });
        let answer = self.post_json("/test/id_token", &body).await;
        string_field(&answer, "id_token")
    }

    /// A machine's access token from the real token endpoint: the
    /// `client_credentials` grant of [`MACHINE_CLIENT_ID`] for the resource
    /// `audience`, signed with `alg`. Its `sub` is the client id.
    pub async fn client_credentials(&self, audience: &str, alg: &str) -> String {
        let discovery = self.discovery().await;
        let token_endpoint = discovery["token_endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("the discovery document has a token_endpoint: {discovery}"));
        let form = [
            ("grant_type", "client_credentials"),
            ("resource", audience),
            ("scope", "read"),
            ("alg", alg),
        ];
        let body = form
            .iter()
            .map(|(name, value)| format!("{name}={}", form_encode(value)))
            .collect::<Vec<_>>()
            .join("&");
        let response = self
            .http
            .post(token_endpoint)
            .basic_auth(MACHINE_CLIENT_ID, Some(MACHINE_CLIENT_SECRET))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
        let answer = self.json_of(response, token_endpoint).await;
        string_field(&answer, "access_token")
    }

    /// New signing keys, new kids, one per algorithm: the provider signs
    /// with them from now on, and its JWKS serves them, and the old ones
    /// too when `keep_old`. Returns the kids the JWKS now serves.
    pub async fn rotate(&self, keep_old: bool) -> Vec<String> {
        let answer = self
            .post_json("/test/rotate", &json!({ "keep_old": keep_old }))
            .await;
        answer["kids"]
            .as_array()
            .unwrap_or_else(|| panic!("the rotation names the kids: {answer}"))
            .iter()
            .map(|kid| kid.as_str().unwrap().to_owned())
            .collect()
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    async fn spawn(issuer_override: Option<&str>) -> Self {
        let directory = server_directory();
        install_once(&directory).await;
        let node = std::env::var("ENSURE_USER_TEST_NODE").unwrap_or_else(|_| "node".to_owned());
        let mut command = tokio::process::Command::new(&node);
        command
            .arg("server.mjs")
            .current_dir(&directory)
            .env("PORT", "0")
            .env_remove("ISSUER_OVERRIDE")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(advertised) = issuer_override {
            command.env("ISSUER_OVERRIDE", advertised);
        }
        let mut process = command.spawn().unwrap_or_else(|error| {
            panic!(
                "the OpenID Provider needs Node.js: `{node}` did not start ({error}); \
                 install it (`apt-get install -y nodejs npm`) or set ENSURE_USER_TEST_NODE"
            )
        });
        let stdin = process.stdin.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_done = tokio::spawn(collect(process.stderr.take().unwrap(), stderr.clone()));
        let mut stdout = BufReader::new(process.stdout.take().unwrap()).lines();
        let started = Instant::now();
        let first = tokio::time::timeout(START_TIMEOUT, stdout.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            outcome => {
                let _ = process.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(5), stderr_done).await;
                panic!(
                    "the OpenID Provider (node {}/server.mjs) did not come up ({}):\n{}",
                    directory.display(),
                    match outcome {
                        Err(_) => format!("nothing printed in {START_TIMEOUT:?}"),
                        Ok(Ok(None)) => format!("it exited: {:?}", process.wait().await),
                        Ok(Err(error)) => format!("its stdout failed: {error}"),
                        Ok(Ok(Some(_))) => unreachable!(),
                    },
                    stderr.lock().unwrap()
                );
            }
        };
        // Later lines, if any, are read and dropped so that the pipe never
        // fills.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        let ready: Value = serde_json::from_str(&line).unwrap_or_else(|error| {
            panic!(
                "the OpenID Provider's first line is its address as JSON ({error}): {line}\n{}",
                stderr.lock().unwrap()
            )
        });
        let provider = Self {
            process,
            _stdin: stdin,
            issuer: string_field(&ready, "issuer"),
            advertised_issuer: string_field(&ready, "advertised_issuer"),
            port: ready["port"]
                .as_u64()
                .and_then(|port| port.try_into().ok())
                .unwrap(),
            stderr,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        };
        let health = provider.http.get(provider.url("/test/health")).send().await;
        assert!(
            health
                .as_ref()
                .is_ok_and(|response| response.status() == 200),
            "the OpenID Provider answers its health check: {health:?}\n{}",
            provider.stderr()
        );
        if std::env::var_os("ENSURE_USER_TEST_VERBOSE").is_some() {
            eprintln!(
                "OpenID Provider at {} up in {:?}",
                provider.issuer,
                started.elapsed()
            );
        }
        provider
    }

    async fn get_json(&self, path: &str) -> Value {
        let url = self.url(path);
        let response = self.http.get(&url).send().await.unwrap();
        self.json_of(response, &url).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Value {
        let url = self.url(path);
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        self.json_of(response, &url).await
    }

    /// The JSON body of a successful answer; anything else fails the test
    /// with the answer and the server's stderr.
    async fn json_of(&self, response: reqwest::Response, url: &str) -> Value {
        let status = response.status();
        let body = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{url} answered {status}: {}\nserver stderr:\n{}",
            String::from_utf8_lossy(&body),
            self.stderr()
        );
        serde_json::from_slice(&body).unwrap_or_else(|error| {
            panic!(
                "{url} answered JSON ({error}): {}",
                String::from_utf8_lossy(&body)
            )
        })
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        // By its PID; kill_on_drop reaps it. Closing stdin would end it too.
        let _ = self.process.start_kill();
    }
}

/// `tests/oidc-provider`.
fn server_directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider")
}

/// Runs `npm ci` in `directory` unless its packages are installed, once per
/// test process, under a file lock so that test processes running at once
/// install it once and never see a half-installed `node_modules`.
async fn install_once(directory: &Path) {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let directory = directory.to_owned();
    let outcome = tokio::task::spawn_blocking(move || {
        INSTALLED.get_or_init(|| install_locked(&directory)).clone()
    })
    .await
    .unwrap();
    if let Err(message) = outcome {
        panic!("{message}");
    }
}

fn install_locked(directory: &Path) -> Result<(), String> {
    let lock_path = directory.join(".npm-install.lock");
    let lock =
        File::create(&lock_path).map_err(|error| format!("{}: {error}", lock_path.display()))?;
    // SAFETY: flock on a descriptor this function owns; it blocks until the
    // lock is ours and is released when `lock` is closed.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!(
            "locking {}: {}",
            lock_path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // npm writes its own lock file last: present, the install finished.
    let installed = directory.join("node_modules/.package-lock.json").exists()
        && directory
            .join("node_modules/oidc-provider/package.json")
            .exists();
    if installed {
        return Ok(());
    }
    let npm = std::env::var("ENSURE_USER_TEST_NPM").unwrap_or_else(|_| "npm".to_owned());
    let output = std::process::Command::new(&npm)
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(directory)
        .output()
        .map_err(|error| {
            format!(
                "the OpenID Provider needs npm to install its packages: `{npm}` did not start \
                 ({error}); install it (`apt-get install -y nodejs npm`) or set \
                 ENSURE_USER_TEST_NPM"
            )
        })?;
    if !output.status.success() {
        return Err(format!(
            "`npm ci` in {} failed ({}):\n{}\n{}",
            directory.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(())
}

/// Appends everything `stream` yields to `output`, until it ends.
async fn collect(mut stream: impl tokio::io::AsyncRead + Unpin, output: Arc<Mutex<String>>) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        output
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(&buffer[..read]));
    }
}

fn string_field(value: &Value, name: &str) -> String {
    value[name]
        .as_str()
        .unwrap_or_else(|| panic!("{name} is a string in {value}"))
        .to_owned()
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (byte as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// The header and payload of a JWT, decoded, unverified.
pub fn decode_jwt(token: &str) -> (Value, Value) {
    use base64::Engine as _;
    let mut parts = token.split('.');
    let mut part = || {
        let encoded = parts
            .next()
            .unwrap_or_else(|| panic!("a JWT has three parts: {token}"));
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded)
            .unwrap_or_else(|error| panic!("a JWT part is base64url ({error}): {token}"));
        serde_json::from_slice::<Value>(&bytes).unwrap()
    };
    let header = part();
    let payload = part();
    assert_eq!(
        token.split('.').count(),
        3,
        "a JWS has three parts: {token}"
    );
    (header, payload)
}
