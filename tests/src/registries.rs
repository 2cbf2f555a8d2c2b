//! Registries for the tests: tack's own (in-process, on loopback) and, from
//! `tack-test-support`, Debian's `docker-registry` and the other peers.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use tack_distribution::config::RegistryConfig;
use tack_distribution::{DistributionConfig, Registries};
use tack_registry::{AuthConfig, Registry, Role};
pub use tack_test_support::{
    DockerRegistry, Postgres, files_under, free_port, wait_for_port, which,
};

/// A host's connection to registry `host`, with `token` (written to a file in `dir`)
/// as its credential, the way a host configuration gives it.
pub fn host_registries(host: &str, token: Option<&str>, dir: &Path) -> Registries {
    let mut config = DistributionConfig::default();
    let mut rc = RegistryConfig::default();
    if let Some(t) = token {
        let path = dir.join(format!("token-{}", host.replace(':', "_")));
        std::fs::write(&path, t).expect("write token file");
        rc.token_file = Some(path);
    }
    config.registries.insert(host.to_string(), rc);
    Registries::new(config)
}

/// tack's registry, served on a background thread until dropped.
pub struct TackRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The data directory (store and tokens).
    pub data: PathBuf,
    _dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TackRegistry {
    /// Start a registry with token auth (anonymous pull as given) in a new directory.
    pub fn start(anonymous_pull: bool) -> TackRegistry {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().to_path_buf();
        let mut r = TackRegistry::start_in(&data, Some(anonymous_pull));
        r._dir = Some(dir);
        r
    }

    /// Start a registry over `data` (kept after drop); `None` turns auth off.
    pub fn start_in(data: &Path, anonymous_pull: Option<bool>) -> TackRegistry {
        let store = tack_registry_store::Store::open(data).expect("open store");
        let auth = match anonymous_pull {
            Some(anon) => AuthConfig::tokens_in(data, anon),
            None => AuthConfig::disabled(),
        };
        let registry = Registry::new(store, auth).expect("index");
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    _ = tack_registry::serve(listener, registry, Default::default()) => {}
                    _ = stopped => {}
                }
            });
        });
        TackRegistry {
            host: addr.to_string(),
            data: data.to_path_buf(),
            _dir: None,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A new registry token with `role` on `namespace`.
    pub fn token(&self, namespace: &str, role: Role) -> String {
        tack_registry::auth::create_token(&self.data, namespace, role, None)
            .expect("create token")
            .0
    }

    /// `http://<host>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.host)
    }
}

impl Drop for TackRegistry {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
