//! `tack secret set | ls | master-key`.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::{Args, Subcommand};
use std::io::Read;
use std::process::ExitCode;
use tack_secrets::{MasterKey, Secrets};

/// `tack secret …`.
#[derive(Subcommand)]
pub(crate) enum SecretCommand {
    /// Set (or rotate) a secret; the value is read from stdin, never from the command line.
    Set(SetArgs),
    /// List secret names and versions (values are never shown).
    Ls(StorageArgs),
    /// Print a new random master key (64 hex characters) for TACK_MASTER_KEY.
    MasterKey,
}

#[derive(Args, Default)]
pub(crate) struct StorageArgs {
    /// Storage URL [default: the host configuration's `storage`].
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
}

#[derive(Args)]
pub(crate) struct SetArgs {
    /// The secret's name, e.g. OPENAI_API_KEY.
    name: String,
    #[command(flatten)]
    storage: StorageArgs,
}

impl StorageArgs {
    pub(crate) fn url(&self, g: &Globals) -> Result<String, Failure> {
        if let Some(u) = &self.storage {
            return Ok(u.clone());
        }
        let Some(path) = &g.config else {
            return Err(Failure::new(
                EXIT_USAGE,
                "no storage: pass --storage URL or --config FILE",
            )
            .help("e.g. --storage sqlite://tack.db"));
        };
        let config = tack_config::HostConfig::load(path)
            .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
        // A relative SQLite path is relative to the configuration file.
        Ok(match config.storage.strip_prefix("sqlite://") {
            Some(p) if !p.starts_with('/') => {
                format!("sqlite://{}", config.base_dir.join(p).display())
            }
            _ => config.storage,
        })
    }

    /// The host's secrets, opened with the master key from the environment.
    pub(crate) async fn secrets(&self, g: &Globals) -> Result<Secrets, Failure> {
        let key = MasterKey::from_env().map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
        let store = tack_store::Store::open(&self.url(g)?)
            .await
            .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
        Ok(Secrets::new(store, key))
    }
}

pub(crate) async fn run(cmd: SecretCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        SecretCommand::MasterKey => {
            println!("{}", &*MasterKey::generate().to_hex());
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Ls(s) => {
            for (name, version) in s
                .secrets(g)
                .await?
                .list()
                .await
                .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?
            {
                println!("{name}\tv{version}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SecretCommand::Set(a) => {
            let secrets = a.storage.secrets(g).await?;
            let mut value = zeroize::Zeroizing::new(Vec::new());
            std::io::stdin()
                .read_to_end(&mut value)
                .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot read stdin: {e}")))?;
            // One trailing newline (from `echo` or a terminal) is not part of the value.
            if value.last() == Some(&b'\n') {
                value.pop();
                if value.last() == Some(&b'\r') {
                    value.pop();
                }
            }
            let version = secrets.set(&a.name, &value).await.map_err(|e| {
                let code = match e {
                    tack_secrets::SecretError::BadName(_) | tack_secrets::SecretError::Empty(_) => {
                        EXIT_USAGE
                    }
                    _ => EXIT_UNUSABLE,
                };
                Failure::new(code, e.to_string())
            })?;
            eprintln!("secret {} set (version {version})", a.name);
            Ok(ExitCode::SUCCESS)
        }
    }
}
