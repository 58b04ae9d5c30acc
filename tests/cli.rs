//! The `ensure-user` command, the built binary: `migrate` and `backfill`
//! from a fake Backend API on loopback into SQLite and PostgreSQL, users,
//! organizations and memberships; failures exit non-zero; the secret key is
//! never shown.

mod common;

use common::{
    clerk_api::{FakeClerk, Faults, SECRET, fake_organizations, fake_users},
    *,
};
use ensure_user::testing::random_id;

/// Runs the `ensure-user` binary with `args` and `env` (nothing else from
/// the environment that it reads); returns its exit code and all it printed.
async fn ensure_user(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensure-user"));
    command.args(args);
    for name in ["DATABASE_URL", "CLERK_SECRET_KEY", "CLERK_API_URL"] {
        command.env_remove(name);
    }
    command.env("RUST_LOG", "trace").envs(env.iter().copied());
    let output = command.output().await.unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The number after `label:` on a summary line.
fn count_of(stdout: &str, label: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{label}:")))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` in {stdout}"))
}

fn sqlite_url() -> String {
    let path = std::env::temp_dir().join(format!("ensure-user-cli-{}.db", random_id("db")));
    format!("sqlite:{}", path.display())
}

#[tokio::test]
async fn cli_backfills_and_never_shows_the_secret() {
    let fake = FakeClerk::start(fake_users(1200)).await;
    fake.set_faults(Faults {
        rate_limit_every: Some(4),
        fail_every: Some(5),
        ..Faults::default()
    });
    let database = sqlite_url();
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    let mut printed = String::new();

    let (code, out, err) = ensure_user(&["migrate"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill", "--dry-run"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("dry run: nothing was written"), "{out}");
    assert_eq!(count_of(&out, "created"), 1200);
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill", "--page-size", "300"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 1200, "{out}");
    assert!(
        err.contains("backfill: 0/1200 users (0%)"),
        "a plain progress line: {err}"
    );
    assert!(
        err.contains("trying again"),
        "the retries are logged: {err}"
    );
    printed += &(out + &err);

    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let summary: Vec<u64> = ["created", "updated", "unchanged", "skipped", "failed"]
        .iter()
        .map(|label| count_of(&out, label))
        .collect();
    assert_eq!(summary, [0, 0, 1200, 0, 0]);
    printed += &(out + &err);

    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let (rows, emails): (i64, i64) = sqlx::query_as("SELECT COUNT(*), COUNT(email) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    let with_email = fake
        .users()
        .iter()
        .filter(|user| user.email.is_some())
        .count();
    assert_eq!((rows, emails), (1200, with_email as i64));
    assert!(
        !printed.contains(SECRET),
        "the secret key was printed:\n{printed}"
    );
    assert!(
        !printed.contains(&SECRET[8..]),
        "part of the secret key was printed"
    );
}

#[tokio::test]
async fn cli_failures_exit_non_zero_and_never_show_the_secret() {
    let fake = FakeClerk::start(fake_users(50)).await;
    let database = sqlite_url();
    let api = fake.url();
    let with_key = |secret| {
        [
            ("DATABASE_URL", database.as_str()),
            ("CLERK_SECRET_KEY", secret),
            ("CLERK_API_URL", api.as_str()),
        ]
    };
    let good = with_key(SECRET);
    assert_eq!(ensure_user(&["migrate"], &good).await.0, 0);
    let mut printed = String::new();

    // A refused key.
    let wrong = with_key("sk_test_WRONG0but0still0secret");
    let (code, out, err) = ensure_user(&["backfill"], &wrong).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused the secret key"), "{err}");
    assert!(!format!("{out}{err}").contains("WRONG0but0still0secret"));

    // The API down: retried, then a non-zero exit.
    fake.set_faults(Faults {
        down: true,
        ..Faults::default()
    });
    let (code, out, err) = ensure_user(&["backfill"], &good).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("error: reading from the Backend API failed"),
        "{err}"
    );
    printed += &(out + &err);

    // The key as a flag, with a database that cannot be opened.
    let (code, out, err) = ensure_user(
        &[
            "backfill",
            "--secret-key",
            SECRET,
            "--database-url",
            "mysql://nowhere",
        ],
        &[("CLERK_API_URL", api.as_str())],
    )
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("DATABASE_URL must start with"), "{err}");
    printed += &(out + &err);

    // Help shows which variables are read, never their values.
    let (code, out, err) = ensure_user(&["backfill", "--help"], &good).await;
    assert_eq!(code, 0);
    assert!(out.contains("CLERK_SECRET_KEY"), "{out}");
    printed += &(out + &err);

    assert!(
        !printed.contains(SECRET),
        "the secret key was printed:\n{printed}"
    );
}

#[tokio::test]
async fn cli_backfills_postgres() {
    let fake = FakeClerk::start(fake_users(700)).await;
    let pool = postgres_pool().await;
    let schema: String = sqlx::query_scalar("SELECT current_schema()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let database = format!("{}?options=-c%20search_path%3D{schema}", postgres_url());
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    let (code, out, err) = ensure_user(&["migrate"], &env).await;
    assert_eq!(
        (code, out.trim()),
        (0, "migrations applied (PostgreSQL)"),
        "{err}"
    );
    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 700);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 700);
    assert!(!format!("{out}{err}").contains(SECRET));
}

#[tokio::test]
async fn cli_walks_organizations_as_asked() {
    let users = fake_users(7);
    let fake = FakeClerk::start(users.clone()).await;
    fake.set_organizations(fake_organizations(12, 3, &users));
    let database = sqlite_url();
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    let (code, out, err) = ensure_user(&["migrate"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let count = |table: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!(
                "SELECT COUNT(*) FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };

    let (code, out, err) = ensure_user(
        &["backfill", "--walk", "organizations", "--page-size", "5"],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("organizations:"), "{out}");
    assert_eq!(count_of(&out, "created"), 12, "{out}");
    assert!(
        err.contains("backfill: 0 organizations, 0 organizations/s"),
        "a plain progress line: {err}"
    );
    assert_eq!(count("organizations").await, 12);
    assert_eq!(count("organization_memberships").await, 0);
    assert_eq!(count("users").await, 0);

    // By default, every walk: users, organizations (unchanged), memberships.
    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    let created: Vec<u64> = out
        .lines()
        .filter_map(|line| line.strip_prefix("created:"))
        .map(|rest| rest.trim().parse().unwrap())
        .collect();
    assert_eq!(created, [7, 0, 36], "{out}");
    assert!(out.contains("memberships:"), "{out}");
    assert_eq!(count("organization_memberships").await, 36);

    let (code, out, err) = ensure_user(&["backfill", "--walk", "teams"], &env).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("organizations"),
        "the choices are shown: {err}"
    );
    let (code, out, _) = ensure_user(&["backfill", "--help"], &env).await;
    assert_eq!(code, 0);
    assert!(out.contains("--walk"), "{out}");
}

/// Ctrl-C during a run: the command stops, says where the next run
/// resumes, prints what it wrote and exits 130; the next run starts after
/// the last page checkpointed (a page written since is found unchanged).
#[tokio::test]
async fn cli_interrupted_exits_130_and_the_next_run_resumes() {
    let fake = FakeClerk::start(fake_users(60)).await;
    // Two pages, then the API never answers: the run is still going.
    fake.set_faults(Faults {
        hang_after_pages: Some(2),
        ..Faults::default()
    });
    let database = sqlite_url();
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    assert_eq!(ensure_user(&["migrate"], &env).await.0, 0);
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();

    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ensure-user"));
    command
        .args(["backfill", "--page-size", "10"])
        .env_remove("DATABASE_URL")
        .env_remove("CLERK_SECRET_KEY")
        .env_remove("CLERK_API_URL")
        .envs(env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let child = command.spawn().unwrap();
    // The first page written and checkpointed; the second written while
    // the third is fetched, which never ends: its checkpoint waits for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let passed: Option<i64> = sqlx::query_scalar(
            "SELECT users_passed FROM ensure_user_backfill_state WHERE name = 'users'",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        if (passed, rows) == (Some(10), 20) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two pages not written in 30 s: {passed:?}, {rows} rows"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    // SAFETY: sends a signal to the child this test started and still owns.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0);
    let output = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("the command stops on Ctrl-C")
        .unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(130), "{out}{err}");
    assert!(
        err.contains("interrupted; the next run resumes after the last page written"),
        "{err}"
    );
    assert_eq!(
        count_of(&out, "created"),
        10,
        "the page checkpointed: {out}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 20, "what was written is kept");

    fake.set_faults(Faults::default());
    let before = fake.list_queries().len();
    let (code, out, err) = ensure_user(&["backfill", "--page-size", "10"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 40, "{out}");
    assert_eq!(count_of(&out, "unchanged"), 10, "{out}");
    let resumed = &fake.list_queries()[before];
    let last_written = &fake.ids()[9];
    assert!(
        resumed.contains(&format!("starting_after={last_written}")),
        "the next run starts after the last page written: {resumed}"
    );
}

/// On an instance without organizations (Clerk answers `403
/// organization_not_enabled_in_instance`), the default backfill writes the
/// users, says it skipped organizations and memberships, and succeeds; on
/// one with organizations and none, the walks run and write nothing; any
/// other refusal of the organizations still fails the run.
#[tokio::test]
async fn cli_backfills_users_where_organizations_are_not_enabled() {
    use axum::http::StatusCode;

    let fake = FakeClerk::start(fake_users(7)).await;
    let refuse_organizations = |status, code| {
        fake.set_faults(Faults {
            organizations_error: Some((status, code)),
            ..Faults::default()
        });
    };
    refuse_organizations(
        StatusCode::FORBIDDEN,
        "organization_not_enabled_in_instance",
    );
    let database = sqlite_url();
    let api = fake.url();
    let env = [
        ("DATABASE_URL", database.as_str()),
        ("CLERK_SECRET_KEY", SECRET),
        ("CLERK_API_URL", api.as_str()),
    ];
    assert_eq!(ensure_user(&["migrate"], &env).await.0, 0);
    let skipped =
        |walk| format!("{walk}: skipped (organizations are not enabled for this Clerk instance)");

    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(count_of(&out, "created"), 7, "{out}");
    assert!(out.contains(&skipped("organizations")), "{out}");
    assert!(out.contains(&skipped("memberships")), "{out}");
    let pool = sqlx::SqlitePool::connect(&database).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 7);

    // Asked for the memberships alone: skipped too.
    let (code, out, err) = ensure_user(&["backfill", "--walk", "memberships"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&skipped("memberships")), "{out}");

    // Organizations turned on, and none yet: walked, nothing written.
    fake.set_faults(Faults::default());
    let (code, out, err) = ensure_user(&["backfill"], &env).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("skipped ("), "{out}");
    assert!(
        out.contains("organizations:") && out.contains("memberships:"),
        "{out}"
    );

    // Any other refusal of the organizations fails the run, as before.
    for (status, code) in [
        (StatusCode::FORBIDDEN, "authorization_invalid"),
        (StatusCode::NOT_FOUND, "resource_not_found"),
    ] {
        refuse_organizations(status, code);
        let (exit, out, err) = ensure_user(&["backfill"], &env).await;
        assert_eq!(exit, 1, "{status} {code}: {out}{err}");
        assert!(err.contains(code), "{err}");
        assert!(!out.contains("skipped ("), "{out}");
    }
}
