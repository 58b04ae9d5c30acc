//! `ensure-user`, the command line (feature `cli`): apply the bundled
//! migrations, backfill users from Clerk.
//!
//! ```text
//! ensure-user migrate                     # the bundled tables, idempotent
//! ensure-user backfill [--dry-run] [--restart] [--page-size N] [--walk users,organizations,memberships]
//! ```
//!
//! Both read `DATABASE_URL` (`postgres://…` or `sqlite:…`); `backfill` also
//! reads `CLERK_SECRET_KEY` and `CLERK_API_URL`. Flags of the same names
//! override them. Progress goes to stderr (a bar on a terminal, a line
//! every few seconds otherwise), the summary to stdout; the exit code is
//! `1` when the run stopped early or any user failed, `130` when it was
//! interrupted. `--walk` selects what is written (default: all three, in
//! that order); each keeps its own checkpoint. On an instance without
//! organizations, their walks are skipped and the summary says so. `RUST_LOG` sets what is logged (default: warnings).

mod database;
mod progress;

use std::{cell::RefCell, process::ExitCode, time::Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};

use database::Database;
use ensure_user::{
    backfill::{Backfill, BackfillError, Summary},
    clerk_api::{ClerkApi, DEFAULT_API_URL, MAX_PAGE_SIZE},
    store::{OrganizationBackfillStore, Walk},
};
use progress::Reporter;

/// Keeps an app's own users table in step with Clerk: applies the bundled
/// migrations, and writes every existing Clerk user, organization and
/// membership into the tables.
#[derive(Debug, Parser)]
#[command(name = "ensure-user", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the bundled tables (users, deletion tombstones, backfill
    /// checkpoint) where they do not exist yet.
    Migrate(DatabaseArgs),
    /// Writes every Clerk user, organization and membership into the
    /// tables. Safe to interrupt: the next run resumes after the last page
    /// written.
    Backfill(BackfillArgs),
}

#[derive(Debug, Args)]
struct DatabaseArgs {
    /// The database: postgres://… or sqlite:…
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
}

#[derive(Debug, Args)]
struct BackfillArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The instance's secret key. Prefer the variable: arguments are
    /// visible to other users of the machine.
    #[arg(long, env = "CLERK_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    /// The Backend API's base URL.
    #[arg(long, env = "CLERK_API_URL", hide_env_values = true, default_value = DEFAULT_API_URL)]
    api_url: String,
    /// Objects per page and per write.
    #[arg(long, default_value_t = MAX_PAGE_SIZE,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_SIZE)))]
    page_size: u32,
    /// Counts what would change and writes nothing.
    #[arg(long)]
    dry_run: bool,
    /// Starts each walk from its first object, ignoring where an earlier
    /// run stopped.
    #[arg(long)]
    restart: bool,
    /// What to write, comma-separated; always run in the order users,
    /// organizations, memberships.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "users,organizations,memberships"
    )]
    walk: Vec<WalkArg>,
}

/// A walk named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum WalkArg {
    /// Every user (`GET /v1/users`).
    Users,
    /// Every organization (`GET /v1/organizations`).
    Organizations,
    /// Every organization's memberships (`GET /v1/organizations/{id}/memberships`).
    Memberships,
}

impl From<WalkArg> for Walk {
    fn from(walk: WalkArg) -> Self {
        match walk {
            WalkArg::Users => Walk::Users,
            WalkArg::Organizations => Walk::Organizations,
            WalkArg::Memberships => Walk::Memberships,
        }
    }
}

/// Parses the arguments, runs the command, and returns its exit code.
fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let reporter = Reporter::for_stderr();
    init_logging(&reporter);
    runtime.block_on(async {
        let result = match cli.command {
            Command::Migrate(args) => migrate(args).await,
            Command::Backfill(args) => backfill(args, reporter).await,
        };
        result.unwrap_or_else(|error| {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        })
    })
}

/// Logs go to stderr, through the progress bar when there is one.
fn init_logging(reporter: &Reporter) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Fails only when a subscriber is set already, which is then kept.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(reporter.log_writer())
        .with_ansi(false)
        .try_init();
}

async fn migrate(args: DatabaseArgs) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let database = Database::connect(&args.database_url).await?;
    database.migrate().await?;
    println!("migrations applied ({})", database.kind());
    Ok(ExitCode::SUCCESS)
}

async fn backfill(
    args: BackfillArgs,
    reporter: Reporter,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let api = ClerkApi::new(&args.secret_key)?.with_api_url(&args.api_url)?;
    let database = Database::connect(&args.database.database_url).await?;
    let walks: Vec<Walk> = args.walk.iter().map(|&walk| walk.into()).collect();
    let code = match database {
        Database::Postgres(store) => {
            run(configure(api, store, &args), &walks, reporter, args.dry_run).await
        }
        Database::Sqlite(store) => {
            run(configure(api, store, &args), &walks, reporter, args.dry_run).await
        }
    };
    Ok(code)
}

fn configure<S: OrganizationBackfillStore>(
    api: ClerkApi,
    store: S,
    args: &BackfillArgs,
) -> Backfill<S> {
    Backfill::new(api, store)
        .with_page_size(args.page_size)
        .dry_run(args.dry_run)
        .restart(args.restart)
}

/// Runs the `walks` of `backfill` until they end or Ctrl-C, then prints
/// what each did.
async fn run<S: OrganizationBackfillStore>(
    backfill: Backfill<S>,
    walks: &[Walk],
    mut reporter: Reporter,
    dry_run: bool,
) -> ExitCode {
    let started = Instant::now();
    // What each walk did so far, from its progress reports.
    let seen: RefCell<Vec<(Walk, Summary)>> = RefCell::new(Vec::new());
    let outcome = tokio::select! {
        result = backfill.run_walks(walks, |progress| {
            let mut seen = seen.borrow_mut();
            match seen.last_mut() {
                Some((walk, summary)) if *walk == progress.walk => *summary = progress.summary,
                _ => seen.push((progress.walk, progress.summary)),
            }
            reporter.update(progress);
        }) => Some(result),
        _ = tokio::signal::ctrl_c() => None,
    };
    reporter.finish();
    let interrupted = outcome.is_none();
    let outcome_complete = matches!(outcome, Some(Ok(_)));
    let (summaries, error) = match outcome {
        Some(Ok(summaries)) => (summaries, None),
        Some(Err(error)) => {
            let mut seen = seen.into_inner();
            if let Some((_, summary)) = seen.last_mut() {
                *summary = error.summary();
            }
            (seen, Some(error))
        }
        None => (seen.into_inner(), None),
    };
    if dry_run {
        println!("dry run: nothing was written");
    }
    for (walk, summary) in &summaries {
        print_summary(*walk, summary, started);
    }
    if outcome_complete {
        // A walk asked for and missing from a complete run was skipped:
        // organizations are not enabled for the instance.
        for walk in walks
            .iter()
            .filter(|walk| !summaries.iter().any(|(done, _)| done == *walk))
        {
            println!("{walk}: skipped (organizations are not enabled for this Clerk instance)");
        }
    }
    let failed: u64 = summaries.iter().map(|(_, summary)| summary.failed).sum();
    match (&error, interrupted) {
        (Some(error), _) => {
            eprintln!("error: {error}");
            if !dry_run {
                eprintln!("the next run resumes after the last page written");
            }
            if let BackfillError::Api { source, .. } = error
                && matches!(source.status(), Some(401 | 403))
            {
                eprintln!("check CLERK_SECRET_KEY and CLERK_API_URL");
            }
        }
        (None, true) => eprintln!("interrupted; the next run resumes after the last page written"),
        (None, false) if failed > 0 => eprintln!(
            "{failed} could not be written (see the warnings above); run again to retry them"
        ),
        (None, false) => {}
    }
    match (interrupted, error.is_some() || failed > 0) {
        (true, _) => ExitCode::from(130),
        (false, true) => ExitCode::FAILURE,
        (false, false) => ExitCode::SUCCESS,
    }
}

fn print_summary(walk: Walk, summary: &Summary, started: Instant) {
    if walk != Walk::Users {
        println!("{walk}:");
    }
    println!("created:   {}", summary.created);
    println!("updated:   {}", summary.updated);
    println!("unchanged: {}", summary.unchanged);
    println!("skipped:   {} (tombstoned)", summary.skipped);
    println!("failed:    {}", summary.failed);
    let seconds = started.elapsed().as_secs_f64();
    let rate = summary.total() as f64 / seconds.max(0.001);
    println!(
        "{} {walk} in {seconds:.1} s ({rate:.0} {walk}/s)",
        summary.total()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Cli::command().debug_assert();
    }
}
