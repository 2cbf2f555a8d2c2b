//! `tack keygen`: a signing key pair; and reading key files, for `sign`,
//! `verify` and `publish --sign-key`.

use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::Args;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tack_artifact::SigningKey;

/// Arguments of `tack keygen`.
#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Writes PREFIX.key (private, mode 0600) and PREFIX.pub.
    #[arg(long, default_value = "tack", value_name = "PREFIX")]
    output: PathBuf,
}

/// The text of key file `path`.
pub(crate) fn read_key_file(path: &Path) -> Result<String, Failure> {
    std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            EXIT_UNUSABLE,
            format!("cannot read key {}: {e}", path.display()),
        )
        .help("create a key pair with `tack keygen`")
    })
}

/// The private key in file `path`.
pub(crate) fn signing_key(path: &Path) -> Result<SigningKey, Failure> {
    SigningKey::from_pem(&read_key_file(path)?)
        .map_err(|e| Failure::new(EXIT_UNUSABLE, format!("{}: {e}", path.display())))
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
