//! `ensure-user`: apply the bundled migrations, backfill users from Clerk.
//! Everything lives in [`ensure_user::cli`].

fn main() -> std::process::ExitCode {
    ensure_user::cli::main()
}
