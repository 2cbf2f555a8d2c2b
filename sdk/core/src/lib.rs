//! What every tack guest component needs whatever its world (tool plugin, model
//! adapter, policy): outgoing HTTP through the host, server-sent events, and the
//! embedded manifest.
//!
//! The `tack-sdk` crate re-exports both; model adapters and policies, which do not
//! export the tool world, depend on this crate and generate their own bindings.

// The HTTP client is made of WASI imports: it works in guests only, but
// compiles anywhere, so its unit tests run natively. The SSE parser is plain
// Rust, so the host (`tack run`) reads event streams with it too.
pub mod http;
pub mod sse;

/// Embed a manifest file (TOML, path relative to the crate root) in the component.
///
/// The manifest declares the capabilities the plugin needs; without one the plugin
/// gets none. Its format is documented in `docs/capabilities.md`.
#[macro_export]
macro_rules! manifest {
    ($path:literal) => {
        #[used]
        #[unsafe(link_section = "tack-manifest")]
        static __TACK_MANIFEST: [u8; include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/",
            $path
        ))
        .len()] = *include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path));
    };
}
