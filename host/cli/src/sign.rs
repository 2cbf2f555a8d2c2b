//! `tack sign`: sign an artifact already in a registry.

use crate::Globals;
use crate::dist::{self, Bars, Dist};
use crate::keygen::signing_key;
use crate::report::Failure;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `tack sign`.
#[derive(Args)]
pub(crate) struct SignArgs {
    /// The artifact to sign.
    reference: String,
    /// The private key (from `tack keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
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
