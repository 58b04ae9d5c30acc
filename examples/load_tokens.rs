//! Mints what the quickstart load test needs: a key pair's public half as
//! PEM (for `CLERK_JWT_KEY`) and one session token per user.
//!
//! ```sh
//! cargo run --release --example load_tokens -- <dir> <users> [issuer]
//! ```
//!
//! Writes `<dir>/public.pem` and `<dir>/tokens.txt` (one token a line, each
//! for a distinct new user, valid for one hour).

use std::{env, error::Error, fs, path::PathBuf};

use ensure_user::testing::{SigningKey, random_id};

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = env::args().skip(1);
    let usage = "usage: load_tokens <dir> <users> [issuer]";
    let dir = PathBuf::from(args.next().ok_or(usage)?);
    let users: usize = args.next().ok_or(usage)?.parse()?;
    let issuer = args
        .next()
        .unwrap_or_else(|| "https://load.ensure-user.test".to_owned());
    let key = SigningKey::generate("ins_load");
    fs::create_dir_all(&dir)?;
    fs::write(dir.join("public.pem"), key.public_key_pem())?;
    let tokens: Vec<String> = (0..users)
        .map(|_| key.session_token(&issuer, &random_id("user"), 3600))
        .collect();
    fs::write(dir.join("tokens.txt"), tokens.join("\n") + "\n")?;
    Ok(())
}
