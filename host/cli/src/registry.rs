//! `tack registry serve | token | ls | search | show`.

use crate::Globals;
use crate::dist::Dist;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tack_registry::{AuthConfig, Registry, Role};

/// `tack registry …`.
#[derive(Subcommand)]
pub(crate) enum RegistryCommand {
    /// Serve an OCI registry (distribution spec v1.1, token auth, browse API).
    Serve(ServeArgs),
    /// Manage registry tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// List the packages of a registry.
    Ls(ListArgs),
    /// Search packages by text (name, description, tool names).
    Search(SearchArgs),
    /// Show a package: versions, tools with their schemas, capabilities, signer.
    Show(ShowArgs),
}

/// `tack registry token …`.
#[derive(Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a token with a role on a namespace; prints the secret once, on stdout.
    Create(TokenCreateArgs),
    /// List tokens (ids, namespaces, roles; never secrets).
    Ls(DataArgs),
}

#[derive(Args)]
pub(crate) struct DataArgs {
    /// Registry data directory [default: $TACK_REGISTRY_DATA or ~/.local/share/tack/registry].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

impl DataArgs {
    fn dir(&self) -> Result<PathBuf, Failure> {
        self.data
            .clone()
            .or_else(|| std::env::var_os("TACK_REGISTRY_DATA").map(PathBuf::from))
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".local/share/tack/registry"))
            })
            .ok_or_else(|| {
                Failure::new(EXIT_USAGE, "no registry data directory")
                    .help("pass --data DIR or set TACK_REGISTRY_DATA")
            })
    }
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:5050", value_name = "ADDR")]
    listen: SocketAddr,
    /// Refuse pulls without a token (by default anyone may pull).
    #[arg(long)]
    no_anonymous_pull: bool,
    /// Turn access control off entirely: anyone may push and delete. Loopback only.
    #[arg(long)]
    no_auth: bool,
    /// Token endpoint URL to advertise [default: http://<Host header>/token].
    #[arg(long, value_name = "URL")]
    realm: Option<String>,
    /// Connections served at once (more wait in the listen backlog).
    #[arg(long, default_value_t = 1024, value_name = "N")]
    connections: usize,
    /// Time a client has to send a request's headers (`10s`, `500ms`).
    #[arg(long, default_value = "10s", value_name = "DURATION")]
    header_timeout: tack_capability::HumanDuration,
}

#[derive(Args)]
pub(crate) struct TokenCreateArgs {
    #[command(flatten)]
    data: DataArgs,
    /// The namespace (first component of repository names), or `*` for all.
    #[arg(long)]
    namespace: String,
    /// pull, push or admin.
    #[arg(long)]
    role: Role,
    /// A note to tell tokens apart.
    #[arg(long)]
    description: Option<String>,
}

#[derive(Args)]
pub(crate) struct RemoteArgs {
    /// Registry host[:port] [default: $TACK_REGISTRY or the configuration's default-registry].
    #[arg(long, value_name = "HOST")]
    registry: Option<String>,
    /// Print the browse API's JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    remote: RemoteArgs,
    /// Only this kind: tool, skill, model, policy or code-runner.
    #[arg(long)]
    kind: Option<String>,
}

#[derive(Args)]
pub(crate) struct SearchArgs {
    /// Text to find in names, descriptions and tool names.
    query: String,
    #[command(flatten)]
    remote: RemoteArgs,
    /// Only this kind: tool, skill, model, policy or code-runner.
    #[arg(long)]
    kind: Option<String>,
}

#[derive(Args)]
pub(crate) struct ShowArgs {
    /// Package name (repository), e.g. `tack/jq`.
    name: String,
    /// One version only.
    version: Option<String>,
    #[command(flatten)]
    remote: RemoteArgs,
}

pub(crate) async fn run(cmd: RegistryCommand, g: &Globals) -> Result<ExitCode, Failure> {
    match cmd {
        RegistryCommand::Serve(a) => serve(a).await,
        RegistryCommand::Token(TokenCommand::Create(a)) => token_create(a),
        RegistryCommand::Token(TokenCommand::Ls(a)) => token_ls(a),
        RegistryCommand::Ls(a) => {
            let query = kind_query(a.kind.as_deref())?;
            list(g, &a.remote, query).await
        }
        RegistryCommand::Search(a) => {
            let mut query = kind_query(a.kind.as_deref())?;
            query.push(("q".into(), a.query.clone()));
            list(g, &a.remote, query).await
        }
        RegistryCommand::Show(a) => show(g, a).await,
    }
}

async fn serve(a: ServeArgs) -> Result<ExitCode, Failure> {
    if a.no_auth && !a.listen.ip().is_loopback() {
        return Err(Failure::new(
            EXIT_USAGE,
            format!(
                "--no-auth lets anyone who can connect push and delete, so it listens on \
                 loopback only, not {}",
                a.listen
            ),
        )
        .help("listen on 127.0.0.1 (or ::1), or drop --no-auth and create tokens with `tack registry token create`"));
    }
    if a.connections == 0 || a.header_timeout.0.is_zero() {
        return Err(Failure::new(
            EXIT_USAGE,
            "--connections and --header-timeout must be more than 0",
        ));
    }
    let dir = a.data.dir()?;
    let store = tack_registry_store::Store::open(&dir).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot open registry data {}: {e}", dir.display()),
        )
    })?;
    let mut auth = if a.no_auth {
        AuthConfig::disabled()
    } else {
        AuthConfig::tokens_in(&dir, !a.no_anonymous_pull)
    };
    auth.realm = a.realm;
    let registry = Registry::new(store, auth)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot index the registry: {e}")))?;
    let listener = tokio::net::TcpListener::bind(a.listen).await.map_err(|e| {
        Failure::new(EXIT_UNUSABLE, format!("cannot listen on {}: {e}", a.listen))
            .help("pick another address with --listen, e.g. --listen 127.0.0.1:0")
    })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Failure::internal(e.to_string()))?;
    println!(
        "tack registry listening on http://{addr} (data in {})",
        dir.display()
    );
    if a.no_auth {
        eprintln!("warning: access control is off: anyone who can connect may push and delete");
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let limits = tack_serve::Limits {
        connections: a.connections,
        header_timeout: a.header_timeout.0,
    };
    tack_registry::serve(listener, registry, limits)
        .await
        .map_err(|e| Failure::internal(format!("the registry stopped: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

fn token_create(a: TokenCreateArgs) -> Result<ExitCode, Failure> {
    let dir = a.data.dir()?;
    let (secret, record) =
        tack_registry::auth::create_token(&dir, &a.namespace, a.role, a.description)
            .map_err(|e| Failure::new(EXIT_USAGE, e.to_string()))?;
    eprintln!(
        "created token {} with role {} on namespace `{}`; it is shown once:",
        record.id, record.role, record.namespace
    );
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

fn token_ls(a: DataArgs) -> Result<ExitCode, Failure> {
    let dir = a.dir()?;
    let records = tack_registry::auth::read_tokens(&tack_registry::auth::tokens_path(&dir))
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
    println!("{:<18} {:<20} {:<6} DESCRIPTION", "ID", "NAMESPACE", "ROLE");
    for r in records {
        println!(
            "{:<18} {:<20} {:<6} {}",
            r.id,
            r.namespace,
            r.role.to_string(),
            r.description.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_query(kind: Option<&str>) -> Result<Vec<(String, String)>, Failure> {
    match kind {
        Some(k) => {
            k.parse::<tack_artifact::Kind>()
                .map_err(|e| Failure::new(EXIT_USAGE, e))?;
            Ok(vec![("kind".into(), k.to_string())])
        }
        None => Ok(Vec::new()),
    }
}

/// GET a browse API path on the registry, with the configured credentials.
async fn browse(
    g: &Globals,
    remote: &RemoteArgs,
    path: &str,
    query: &[(String, String)],
) -> Result<Value, Failure> {
    let dist = Dist::load(g)?;
    let host = remote
        .registry
        .clone()
        .or_else(|| dist.default_registry())
        .ok_or_else(|| {
            Failure::new(EXIT_USAGE, "no registry given")
                .help("pass --registry HOST:PORT, set TACK_REGISTRY, or set default-registry in the host configuration")
        })?;
    let scheme = if dist.config.insecure(&host) {
        "http"
    } else {
        "https"
    };
    let url = format!("{scheme}://{host}/api/v1/{path}");
    tack_distribution::client::install_crypto();
    let mut req = reqwest::Client::new().get(&url).query(query);
    if let Some((user, secret)) = dist
        .config
        .credentials(&host)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.0))?
    {
        req = req.basic_auth(user, Some(secret));
    }
    let resp = req.send().await.map_err(|e| {
        Failure::new(
            crate::dist::EXIT_ARTIFACT,
            format!("cannot reach {url}: {e}"),
        )
        .help("check that the registry runs (`tack registry serve`) and the address is right")
    })?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body
            .pointer("/errors/0/message")
            .and_then(Value::as_str)
            .unwrap_or("no details")
            .to_string();
        return Err(Failure::new(
            crate::dist::EXIT_ARTIFACT,
            format!("{url}: {status}: {message}"),
        ));
    }
    Ok(body)
}

async fn list(
    g: &Globals,
    remote: &RemoteArgs,
    mut query: Vec<(String, String)>,
) -> Result<ExitCode, Failure> {
    let mut packages = Vec::new();
    loop {
        let page = browse(g, remote, "packages", &query).await?;
        packages.extend(page["packages"].as_array().cloned().unwrap_or_default());
        let last = packages
            .last()
            .and_then(|p| p["name"].as_str())
            .map(str::to_string);
        match (page["next"].is_string(), last) {
            (true, Some(last)) => {
                query.retain(|(k, _)| k != "last");
                query.push(("last".into(), last));
            }
            _ => break,
        }
    }
    if remote.json {
        println!("{}", serde_json::to_string_pretty(&packages).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    if packages.is_empty() {
        println!("no packages");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<28} {:<7} {:<10} {:<22} TOOLS",
        "NAME", "KIND", "LATEST", "SIGNER"
    );
    for p in &packages {
        let signer = p["signer"]
            .as_str()
            .map(|s| format!("{}…", &s[..s.len().min(19)]))
            .unwrap_or_else(|| "unsigned".into());
        let tools: Vec<&str> = p["tools"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        println!(
            "{:<28} {:<7} {:<10} {:<22} {}",
            p["name"].as_str().unwrap_or(""),
            p["kind"].as_str().unwrap_or(""),
            p["latest"].as_str().unwrap_or(""),
            signer,
            tools.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(g: &Globals, a: ShowArgs) -> Result<ExitCode, Failure> {
    let path = match &a.version {
        Some(v) => format!("packages/{}/versions/{v}", a.name),
        None => format!("packages/{}", a.name),
    };
    let doc = browse(g, &a.remote, &path, &[]).await?;
    if a.remote.json {
        println!("{}", serde_json::to_string_pretty(&doc).expect("json"));
        return Ok(ExitCode::SUCCESS);
    }
    let versions: Vec<Value> = match &a.version {
        Some(_) => vec![doc.clone()],
        None => doc["versions"].as_array().cloned().unwrap_or_default(),
    };
    println!("{}", a.name);
    if let Some(d) = doc["description"].as_str().filter(|d| !d.is_empty()) {
        println!("  {d}");
    }
    for v in &versions {
        println!();
        println!(
            "{} {}  ({}, {} bytes)",
            v["kind"].as_str().unwrap_or(""),
            v["version"].as_str().unwrap_or(""),
            v["digest"].as_str().unwrap_or(""),
            v["size"]
        );
        let sig = &v["signature"];
        match sig["signer"].as_str() {
            Some(s) => println!("  signed by {s}"),
            None => println!("  unsigned"),
        }
        if let Some(c) = v["created"].as_str() {
            println!("  created   {c}");
        }
        if let Some(exports) = v.pointer("/world/exports").and_then(Value::as_array) {
            let e: Vec<&str> = exports.iter().filter_map(Value::as_str).collect();
            println!("  exports   {}", e.join(", "));
        }
        if let Some(imports) = v.pointer("/world/imports").and_then(Value::as_array) {
            println!("  imports   {} interfaces", imports.len());
        }
        for t in v["tools"].as_array().into_iter().flatten() {
            println!(
                "  tool {}: {}",
                t["name"].as_str().unwrap_or(""),
                t["description"].as_str().unwrap_or("")
            );
            println!(
                "    schema {}",
                serde_json::to_string(&t["input-schema"]).expect("json")
            );
        }
        if !v["capabilities"].is_null() {
            println!(
                "  capabilities {}",
                serde_json::to_string(&v["capabilities"]["capabilities"]).expect("json")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
