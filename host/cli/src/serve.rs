//! `tack serve`: the host (engine and sessions API) from a configuration file.

use crate::Globals;
use crate::dist::{Dist, RegistrySource};
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use crate::secret::StorageArgs;
use clap::Args;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use tack_engine::{Engine, EngineConfig, RetryPolicy};
use tack_runtime::{FileIo, Runtime, RuntimeConfig};
use tack_secrets::{MasterKey, Secrets};

/// `tack serve`.
#[derive(Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: the configuration's `listen`]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Storage URL [default: the configuration's `storage`].
    #[arg(long, value_name = "URL")]
    storage: Option<String>,
}

/// Open the store at `url`, or say how to fix the URL.
pub(crate) async fn open_store(url: &str) -> Result<tack_store::Store, Failure> {
    tack_store::Store::open(url).await.map_err(|e| {
        Failure::new(EXIT_UNUSABLE, e.to_string())
            .help("check `storage` in the host configuration (sqlite://PATH or postgres://…)")
    })
}

/// The host configuration `command` needs (`--config` or `TACK_CONFIG`).
pub(crate) fn host_config(g: &Globals, command: &str) -> Result<tack_config::HostConfig, Failure> {
    let Some(path) = &g.config else {
        return Err(Failure::new(
            EXIT_USAGE,
            format!("`{command}` needs a host configuration"),
        )
        .help("pass --config tack.toml (or set TACK_CONFIG); the format is in docs/agents.md"));
    };
    tack_config::HostConfig::load(path).map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))
}

/// Components from the configured registries, verified against the trust
/// policy, and the runtime that runs them.
pub(crate) fn components(
    host: &tack_config::HostConfig,
    g: &Globals,
) -> Result<(RegistrySource, Runtime), Failure> {
    let dist = Dist::load(g)?;
    let mut sources = dist.config.clone();
    sources.default_registry = dist.default_registry();
    let source = RegistrySource::new(dist.fetcher(g)?, sources);
    let runtime = Runtime::new(RuntimeConfig {
        cache: g.code_cache(),
        file_io: match host.guest_file_io {
            tack_config::GuestFileIo::Auto => FileIo::Auto,
            tack_config::GuestFileIo::ThreadPool => FileIo::ThreadPool,
            tack_config::GuestFileIo::Direct => FileIo::Direct,
        },
        ..RuntimeConfig::default()
    })
    .map_err(|e| Failure::internal(format!("cannot start the runtime: {e:#}")))?;
    Ok((source, runtime))
}

pub(crate) async fn serve(a: ServeArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let host = host_config(g, "tack serve")?;
    let url = match a.storage {
        Some(u) => u,
        None => StorageArgs::default().url(g)?,
    };
    let store = open_store(&url).await?;
    let secrets = match MasterKey::from_env() {
        Ok(key) => Some(Secrets::new(store.clone(), key)),
        Err(e) => {
            eprintln!("note: no secrets available to models ({e})");
            None
        }
    };
    let (source, runtime) = components(&host, g)?;
    let listen = a.listen.unwrap_or(host.listen);
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Failure::new(EXIT_UNUSABLE, format!("cannot listen on {listen}: {e}"))
            .help("pick another address with --listen or `listen` in the configuration")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::internal(e.to_string()))?;
    // Browsers come back here after a user authorizes tack with an upstream
    // server that takes each user's own token.
    let public = host
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let gateway = tack_mcp::Gateway::new(&host.mcp_servers, secrets.clone()).with_callback(&public);
    let engine = Engine::new(EngineConfig {
        tool_servers: Some(Arc::new(gateway)),
        host,
        runtime,
        store,
        secrets: secrets.clone(),
        components: Arc::new(source),
        retry: RetryPolicy::default(),
        clock: Arc::new(tack_engine::SystemClock),
    });
    let resumed = engine
        .resume()
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot resume sessions: {e}")))?;
    if resumed > 0 {
        eprintln!("resumed {resumed} session(s) from the log");
    }
    println!("tack listening on http://{addr}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    tack_server::serve(listener, tack_server::AppState::new(engine, secrets))
        .await
        .map_err(|e| Failure::internal(format!("the server stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}
