//! `tack token create | ls`: API tokens, written to the host's store.

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
    /// List API token names and roles.
    Ls(StorageArgs),
}

#[derive(Args)]
pub(crate) struct TokenArgs {
    /// The token's name (who or what uses it).
    name: String,
    /// admin, builder, approver or user.
    #[arg(long)]
    role: tack_engine::Role,
    #[command(flatten)]
    storage: StorageArgs,
}

pub(crate) async fn token(cmd: TokenCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        TokenCommand::Create(a) => {
            let store = open_store(&a.storage.url(g)?).await?;
            let token = tack_server::auth::create_token(&store, &a.name, a.role)
                .await
                .map_err(|e| Failure::new(EXIT_USAGE, e))?;
            println!("{token}");
            eprintln!(
                "token `{}` ({}) created; it is shown once: keep it in a secret store",
                a.name, a.role
            );
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Ls(s) => {
            let store = open_store(&s.url(g)?).await?;
            for (name, role) in store
                .api_tokens()
                .await
                .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?
            {
                println!("{name}\t{role}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
