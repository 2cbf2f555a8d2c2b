//! `tack publish`, `tack pull`, `tack keygen`, `tack sign`, `tack verify`.

use crate::Globals;
use crate::dist::{self, Bars, Dist};
use crate::report::{self, EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::Args;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tack_artifact::{PublicKey, SigningKey};
use tack_distribution::{FetchOptions, TrustPolicy};
use tack_runtime::{Runtime, RuntimeConfig};

/// Arguments of `tack publish`.
#[derive(Args)]
pub(crate) struct PublishArgs {
    /// A component (`.wasm`) or a skill directory (`SKILL.md`, optionally one `.wasm`).
    path: PathBuf,
    /// Where to publish: `[REGISTRY/]NAMESPACE/NAME@VERSION` (the version is a semver tag).
    reference: String,
    /// Sign the published manifest with this private key (from `tack keygen`).
    #[arg(long, value_name = "KEY")]
    sign_key: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tack pull`.
#[derive(Args)]
pub(crate) struct PullArgs {
    /// `[REGISTRY/]NAME@VERSION`, `:TAG` or `@sha256:DIGEST`.
    reference: String,
    /// Re-pin the reference in the lock file to what it resolves to now.
    #[arg(long)]
    update_lock: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `tack keygen`.
#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(long, default_value = "tack", value_name = "PREFIX")]
    output: PathBuf,
}

/// Arguments of `tack sign`.
#[derive(Args)]
pub(crate) struct SignArgs {
    /// The artifact to sign.
    reference: String,
    /// The private key (from `tack keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
}

/// Arguments of `tack verify`.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The artifact to check.
    reference: String,
    /// Trust this public key (repeatable) instead of the configuration's trust policy.
    #[arg(long, value_name = "KEY.pub")]
    key: Vec<PathBuf>,
}

fn read_key_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot read key {}: {e}", path.display()),
        )
        .help("create a key pair with `tack keygen`")
    })
}

fn signing_key(path: &Path) -> Result<SigningKey, Failure> {
    SigningKey::from_pem(&read_key_file(path)?)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("{}: {e}", path.display())))
}

pub(crate) async fn publish(args: PublishArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    tack_distribution::publish::version_of(&r).map_err(dist::failure)?;
    let key = args.sign_key.as_deref().map(signing_key).transpose()?;
    let runtime = Runtime::new(RuntimeConfig {
        cache: g.code_cache(),
        ..RuntimeConfig::default()
    })
    .map_err(|e| Failure::internal(format!("cannot start the runtime: {e:#}")))?;
    let artifact = tack_package::package(&runtime, &args.path)
        .await
        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
    let kind = artifact.config.tack.as_ref().map(|t| t.kind);
    let tools: Vec<String> = artifact
        .config
        .tack
        .iter()
        .flat_map(|t| t.tools.iter().map(|t| t.name.clone()))
        .collect();
    let published = tack_distribution::publish::publish(
        &dist.registries,
        &r,
        &artifact,
        key.as_ref(),
        &Bars::new(),
    )
    .await
    .map_err(dist::failure)?;
    if args.json {
        println!(
            "{}",
            json!({
                "reference": r.to_string(),
                "digest": published.digest,
                "size": published.size,
                "kind": kind,
                "tools": tools,
                "signer": published.signer,
            })
        );
    } else {
        println!("published {r}");
        println!("  digest  {}", published.digest);
        if let Some(k) = kind {
            println!("  kind    {k}");
        }
        if !tools.is_empty() {
            println!("  tools   {}", tools.join(", "));
        }
        match &published.signer {
            Some(s) => println!("  signed  {s}"),
            None => println!("  signed  no (sign later with `tack sign --key KEY {r}`)"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn pull(args: PullArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    let fetcher = dist.fetcher(g)?;
    let f = fetcher
        .fetch(
            &r,
            &FetchOptions {
                update_lock: args.update_lock,
            },
            &Bars::new(),
        )
        .await
        .map_err(dist::failure)?;
    let meta = tack_artifact::PackageMetadata::read(&f.manifest, &f.config);
    if args.json {
        println!(
            "{}",
            json!({
                "reference": r.to_string(),
                "digest": f.digest,
                "source": f.source,
                "kind": meta.as_ref().map(|m| m.kind),
                "tools": meta.as_ref().map(|m| m.tools.iter().map(|t| t.name.clone()).collect::<Vec<_>>()),
                "signature": f.signature,
            })
        );
    } else {
        println!("{r}");
        println!("  digest     {}", f.digest);
        println!(
            "  from       {}",
            serde_json::to_value(f.source)
                .unwrap()
                .as_str()
                .unwrap_or("")
        );
        if let Some(m) = &meta {
            println!("  kind       {}", m.kind);
            if !m.tools.is_empty() {
                let names: Vec<&str> = m.tools.iter().map(|t| t.name.as_str()).collect();
                println!("  tools      {}", names.join(", "));
            }
        }
        match &f.signature {
            Some(s) if s.trusted => println!("  signature  trusted, by {}", s.signer),
            Some(s) => println!(
                "  signature  by {} (not covered by the trust policy)",
                s.signer
            ),
            None => println!(
                "  signature  none (not required for namespace `{}`)",
                r.namespace()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn keygen(args: KeygenArgs) -> Result<ExitCode, Failure> {
    let private = args.output.with_extension("key");
    let public = args.output.with_extension("pub");
    for p in [&private, &public] {
        if p.exists() {
            return Err(Failure::new(
                EXIT_USAGE,
                format!("{} exists; refusing to overwrite a key", p.display()),
            )
            .help("pick another name with --output PREFIX, or move the old key away"));
        }
    }
    let key = SigningKey::generate();
    let write = |path: &Path, text: &str, mode: u32| -> std::io::Result<()> {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, mode);
        opts.open(path)?.write_all(text.as_bytes())
    };
    write(&private, &key.to_pem(), 0o600)
        .and_then(|()| write(&public, &key.public_key().to_pem(), 0o644))
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("cannot write the key pair: {e}")))?;
    println!("private key  {} (keep it secret)", private.display());
    println!("public key   {}", public.display());
    println!("fingerprint  {}", key.public_key().fingerprint());
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn sign(args: SignArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    let key = signing_key(&args.key)?;
    let (digest, signer) =
        tack_distribution::publish::sign(&dist.registries, &r, &key, &Bars::new())
            .await
            .map_err(dist::failure)?;
    println!("signed {r}");
    println!("  digest  {digest}");
    println!("  signer  {signer}");
    println!(
        "  stored  {}:{}",
        r.repository_url(),
        tack_artifact::signature_tag(&digest)
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn verify(args: VerifyArgs, g: &Globals) -> Result<ExitCode, Failure> {
    let dist = Dist::load(g)?;
    let r = dist.parse_ref(&args.reference)?;
    let trust = if args.key.is_empty() {
        dist.trust()?
    } else {
        let mut keys = Vec::new();
        for k in &args.key {
            keys.push(
                PublicKey::from_pem(&read_key_file(k)?)
                    .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("{}: {e}", k.display())))?,
            );
        }
        TrustPolicy::require(r.namespace(), keys)
    };
    let (digest, signer) = tack_distribution::publish::verify(&dist.registries, &r, &trust)
        .await
        .map_err(dist::failure)?;
    println!("verified {r}");
    println!("  digest  {digest}");
    println!("  signer  {signer} (trusted)");
    report::note("only the signature was checked; `tack pull` also checks every blob");
    Ok(ExitCode::SUCCESS)
}
