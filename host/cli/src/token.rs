//! `tack token create | ls | revoke`: API tokens, written to the host's store.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use crate::secret::StorageArgs;
use crate::serve::open_store;
use clap::{Args, Subcommand};
use std::process::ExitCode;

/// `tack token …`.
#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create (or replace) an API token; prints the value once.
    Create(TokenArgs),
    /// List API token names, roles and expiry.
    Ls(StorageArgs),
    /// Revoke an API token: refused from the next request on.
    Revoke(RevokeArgs),
}

#[derive(Args)]
pub(crate) struct RevokeArgs {
    /// The token's name.
    name: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// The token's name (who or what uses it).
    name: String,
    /// admin, builder, approver or user.
    #[arg(long)]
    role: tack_engine::Role,
    /// Accept it for this long only (`90d`, `12h`); by default until revoked.
    #[arg(long, value_name = "DURATION")]
    expires: Option<tack_capability::HumanDuration>,
    #[command(flatten)]
    storage: StorageArgs,
}

pub(crate) async fn token(cmd: TokenCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        TokenCommand::Create(a) => {
            if a.expires.is_some_and(|d| d.0.is_zero()) {
                return Err(Failure::new(EXIT_USAGE, "--expires must be more than 0"));
            }
            let store = open_store(&a.storage.url(g)?).await?;
            let token =
                tack_server::auth::create_token(&store, &a.name, a.role, a.expires.map(|d| d.0))
                    .await
                    .map_err(|e| Failure::new(EXIT_USAGE, e))?;
            println!("{token}");
            let until = match a.expires {
                Some(d) => format!("for {d}"),
                None => "until revoked".into(),
            };
            eprintln!(
                "token `{}` ({}) created, valid {until}; it is shown once: keep it in a secret store",
                a.name, a.role
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Ls(s) => {
            let store = open_store(&s.url(g)?).await?;
            for t in store
                .api_tokens()
                .await
                .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?
            {
                let expiry = match t.expires_ms {
                    Some(ms) => format!("expires {}", rfc3339(ms)),
                    None => "no expiry".into(),
                };
                println!("{}\t{}\t{expiry}", t.name, t.role);
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Revoke(a) => {
            let store = open_store(&a.storage.url(g)?).await?;
            let revoked = store
                .revoke_api_token(&a.name)
                .await
                .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
            if !revoked {
                return Err(Failure::new(
                    EXIT_USAGE,
                    format!("there is no API token `{}`", a.name),
                )
                .help("list the tokens with `tack token ls`"));
            }
            eprintln!("token `{}` revoked", a.name);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `ms` since the Unix epoch as an RFC 3339 UTC time.
fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| format!("{ms} ms after 1970"))
}
