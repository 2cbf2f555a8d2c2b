//! `tack verify`: check an artifact's signature against the trust policy or
//! given keys.

use crate::Globals;
use crate::dist::{self, Dist};
use crate::keygen::read_key_file;
use crate::report::{self, EXIT_UNUSABLE, Failure};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use tack_artifact::PublicKey;
use tack_distribution::TrustPolicy;

/// Arguments of `tack verify`.
#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The artifact to check.
    reference: String,
    /// Trust this public key (repeatable) instead of the configuration's trust policy.
    #[arg(long, value_name = "KEY.pub")]
    key: Vec<PathBuf>,
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
