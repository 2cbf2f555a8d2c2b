//! The process-wide runtime: engine, linker, caches, epoch ticker.

use crate::bindings::ToolPluginIndices;
use crate::bindings::code_world::CodeModePre;
use crate::bindings::model_world::ModelAdapterPre;
use crate::bindings::policy_world::PolicyPre;
use crate::cache::{CacheOutcome, CodeCache, sha256_hex};
use crate::code::CodeRunner;
use crate::egress::{Resolve, SystemResolver};
use crate::error::LoadError;
use crate::gate::PolicyComponent;
use crate::inspect::{read_manifest, world_info};
use crate::model::ModelAdapter;
use crate::plugin::{Exports, Plugin, PluginInner};
use crate::state::SandboxState;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use tack_capability::ByteSize;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How to build a [`Runtime`].
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Compiled-code cache (default: off; the CLI turns it on).
    pub cache: CodeCache,
    /// Use the pooling instance allocator (default: on). Off means plain mmap per instance.
    pub pooling: bool,
    /// Pool slots: instances that can exist at once across all plugins (default 128).
    pub max_instances: u32,
    /// Ceiling on any grant's memory limit, and the size of each pool memory slot (default 1 GiB).
    pub max_memory: ByteSize,
    /// Epoch tick: the granularity of wall-time limits (default 5 ms).
    pub epoch_tick: Duration,
    /// Compile with fuel metering so grants can set `fuel` (default off: metering costs ~60%).
    pub fuel: bool,
    /// Largest wasm stack per call (default 512 KiB).
    pub max_wasm_stack: usize,
    /// Bytes of each pool memory slot kept resident between instances (default
    /// 16 MiB): faster calls, at the price of up to `max_instances` times this in
    /// resident memory at the high-water mark.
    pub keep_resident: ByteSize,
    /// Resolver for outgoing guest HTTP (default: the system's).
    pub resolver: Arc<dyn Resolve>,
    /// Where guests' file operations run (default: [`FileIo::Auto`]).
    pub file_io: FileIo,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache: CodeCache::disabled(),
            pooling: true,
            max_instances: 128,
            max_memory: ByteSize::mib(1024),
            epoch_tick: Duration::from_millis(5),
            fuel: false,
            max_wasm_stack: 512 * 1024,
            keep_resident: ByteSize::mib(16),
            resolver: Arc::new(SystemResolver),
            file_io: FileIo::Auto,
        }
    }
}

/// Where a guest's file operations (in its granted directories) run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileIo {
    /// On the calling thread when every directory the call is granted is on a
    /// local disk filesystem ([`is_local_disk`]), else on tokio's blocking pool
    /// (the default).
    #[default]
    Auto,
    /// Always on tokio's blocking pool: each operation hops threads, so one that
    /// hangs (a network mount, a FIFO nobody writes to) stalls only its own call,
    /// which then times out.
    ThreadPool,
    /// Always on the calling thread: no thread hop per operation (an idle host
    /// answers a tool call that reads a file about three times sooner), but an
    /// operation that hangs stalls the worker thread and every session on it.
    Direct,
}

/// How long the runtime trusts what it found out about a granted directory's
/// filesystem (a mount that appears over it is seen within this time).
pub const LOCAL_DISK_TTL: Duration = Duration::from_secs(10);

impl FileIo {
    /// Whether a call granted `dirs` runs its file operations on the calling thread.
    pub fn direct_for<'a>(self, dirs: impl Iterator<Item = &'a Path>) -> bool {
        self.direct_for_with(dirs, is_local_disk)
    }

    /// [`direct_for`](Self::direct_for), asking `local` whether a directory is on
    /// a local disk.
    fn direct_for_with<'a>(
        self,
        mut dirs: impl Iterator<Item = &'a Path>,
        local: impl FnMut(&Path) -> bool,
    ) -> bool {
        match self {
            FileIo::Direct => true,
            FileIo::ThreadPool => false,
            FileIo::Auto => dirs.all(local),
        }
    }
}

/// Whether `path` is on a filesystem whose operations finish in bounded time (see
/// [`is_local_filesystem_type`]), as `statfs(2)` tells; `false` when it cannot be
/// checked.
pub fn is_local_disk(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|fs| is_local_filesystem_type(fs.f_type as u64))
}

/// Whether `statfs(2)`'s filesystem type `magic` is a local disk or memory
/// filesystem: ext2/3/4, XFS, Btrfs, F2FS, ZFS, bcachefs, tmpfs, ramfs or
/// overlayfs. Network and FUSE filesystems (which may hang) and pseudo
/// filesystems (`/proc`, `/sys`, `/dev`, whose files may block) are not.
pub fn is_local_filesystem_type(magic: u64) -> bool {
    // From linux/magic.h (ZFS's and bcachefs's from their own sources).
    const LOCAL: &[u64] = &[
        0xEF53,      // ext2, ext3, ext4
        0x5846_5342, // XFS
        0x9123_683E, // Btrfs
        0xF2F5_2010, // F2FS
        0x2FC1_2FC1, // ZFS
        0xCA45_1A4E, // bcachefs
        0x0102_1994, // tmpfs
        0x8584_58F6, // ramfs
        0x794C_7630, // overlayfs
    ];
    LOCAL.contains(&magic)
}

/// The process-wide plugin runtime. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<RuntimeInner>,
}

pub(crate) struct RuntimeInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<SandboxState>,
    pub(crate) config: RuntimeConfig,
    /// Loaded components by sha256, so a digest is compiled and pre-instantiated once.
    loaded: Mutex<HashMap<String, Weak<PluginInner>>>,
    /// [`is_local_disk`] by granted directory, and when it was asked.
    local_disk: Mutex<HashMap<PathBuf, (bool, Instant)>>,
    /// Instances model-adapter sessions may keep between calls: a quarter of
    /// `max_instances`, so that idle warm adapters never take the pool from calls.
    pub(crate) warm_slots: Arc<tokio::sync::Semaphore>,
}

impl Runtime {
    /// Build the engine and linker, and start the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let mut wasm = Config::new();
        wasm.epoch_interruption(true)
            .consume_fuel(config.fuel)
            .max_wasm_stack(config.max_wasm_stack)
            .async_stack_size(config.max_wasm_stack + 1024 * 1024)
            .memory_init_cow(true)
            // WIT's `list<T, N>` and `map<K, V>`, which plain exported
            // functions may take and return.
            .wasm_component_model_fixed_length_lists(true)
            .wasm_component_model_map(true)
            .wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
        // For profiling guests: `TACK_WASM_PERFMAP=1` writes /tmp/perf-<pid>.map,
        // so `perf report` names the guests' own functions.
        if std::env::var_os("TACK_WASM_PERFMAP").is_some() {
            wasm.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        if config.pooling {
            let n = config.max_instances;
            let mut pool = PoolingAllocationConfig::new();
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n * 2)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_memory_size(usize::try_from(config.max_memory.bytes())?)
                .max_memories_per_component(4)
                .max_tables_per_component(16)
                .max_core_instances_per_component(32)
                .max_component_instance_size(1 << 20)
                .max_core_instance_size(1 << 20)
                .table_elements(1 << 16);
            // Reset freed slots by rewriting only the pages an instance dirtied
            // (PAGEMAP_SCAN, Linux 6.7+) instead of unmapping them: the next call
            // then takes no page faults and no TLB shootdowns. Where the ioctl is
            // missing, wasmtime falls back to madvise.
            pool.linear_memory_keep_resident(usize::try_from(config.keep_resident.bytes())?)
                .table_keep_resident(1 << 16)
                .async_stack_keep_resident(128 << 10)
                .pagemap_scan(wasmtime::Enabled::Auto);
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm)?;

        let mut linker: Linker<SandboxState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        crate::bindings::tack::plugin::logging::add_to_linker::<SandboxState, HasSelf<SandboxState>>(
            &mut linker,
            |s| s,
        )?;
        crate::bindings::model_world::tack::plugin::model_stream::add_to_linker::<
            SandboxState,
            HasSelf<SandboxState>,
        >(&mut linker, |s| s)?;
        crate::bindings::code_world::tack::plugin::host_tools::add_to_linker::<
            SandboxState,
            HasSelf<SandboxState>,
        >(&mut linker, |s| s)?;

        spawn_epoch_ticker(&engine, config.epoch_tick);
        let warm_slots = Arc::new(tokio::sync::Semaphore::new(
            (config.max_instances as usize / 4).max(1),
        ));
        Ok(Runtime {
            inner: Arc::new(RuntimeInner {
                engine,
                linker,
                config,
                loaded: Mutex::default(),
                local_disk: Mutex::default(),
                warm_slots,
            }),
        })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The runtime's configuration.
    pub fn config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    /// Whether a call granted `dirs` runs its file operations on the calling
    /// thread, as [`FileIo::direct_for`] says, with each directory's filesystem
    /// asked at most once per [`LOCAL_DISK_TTL`] (a `statfs` per directory per
    /// call was ~0.4% of a loop step).
    pub(crate) fn direct_file_io<'a>(&self, dirs: impl Iterator<Item = &'a Path>) -> bool {
        let mut cache = self
            .inner
            .local_disk
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if cache.len() > 1024 {
            cache.clear();
        }
        self.inner
            .config
            .file_io
            .direct_for_with(dirs, |dir| match cache.get(dir) {
                Some(&(local, at)) if at.elapsed() < LOCAL_DISK_TTL => local,
                _ => {
                    let local = is_local_disk(dir);
                    cache.insert(dir.to_path_buf(), (local, Instant::now()));
                    local
                }
            })
    }

    /// Load a component from a file.
    pub fn load_file(&self, path: impl AsRef<Path>) -> Result<Plugin, LoadError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.load(&bytes)
    }

    /// Load a tool plugin from its bytes: check it, read its manifest, compile it
    /// (or load native code from the cache) and pre-instantiate it. A component
    /// that does not export `tack:plugin/tool` offers its plain exported
    /// functions as tools (see `plain.rs`).
    ///
    /// Loading the same bytes again returns the same plugin without recompiling.
    pub fn load(&self, bytes: &[u8]) -> Result<Plugin, LoadError> {
        let digest = sha256_hex(bytes);
        if let Some(inner) = self.lookup(&digest) {
            return Ok(Plugin {
                inner,
                cache: CacheOutcome::Memory,
            });
        }
        let c = self.compile(bytes, None, "tool plugin")?;
        let exports = if c.world.is_tool_plugin() {
            if let Some(name) = c.manifest.tools.keys().next() {
                return Err(LoadError::Incompatible(format!(
                    "the manifest's [tools.{name}] is for components whose tools are plain exported functions; a `tack:plugin/tool` plugin gives each tool's description and annotations in its tool list"
                )));
            }
            Exports::Contract(ToolPluginIndices::new(&c.pre).map_err(|e| {
                LoadError::Incompatible(format!("the component's `tack:plugin/tool` export does not match this host's contract: {e:#}"))
            })?)
        } else {
            Exports::Plain(crate::plain::plain_tools(
                bytes,
                c.pre.component(),
                &c.manifest,
            )?)
        };

        let inner = Arc::new(PluginInner::new(
            self.clone(),
            c.digest.clone(),
            c.manifest,
            c.world,
            c.pre,
            exports,
            bytes.len(),
        ));
        self.inner
            .loaded
            .lock()
            .expect("plugin cache lock")
            .insert(c.digest, Arc::downgrade(&inner));
        Ok(Plugin {
            inner,
            cache: c.cache,
        })
    }

    /// Load a model-adapter component (world `model-adapter`).
    pub fn load_model_adapter(&self, bytes: &[u8]) -> Result<ModelAdapter, LoadError> {
        let c = self.compile(bytes, Some("tack:plugin/model"), "model adapter")?;
        let pre = ModelAdapterPre::new(c.pre).map_err(|e| {
            LoadError::Incompatible(format!("the component's `tack:plugin/model` export does not match this host's contract: {e:#}"))
        })?;
        Ok(ModelAdapter::new(
            self.clone(),
            c.digest,
            c.manifest,
            c.world,
            pre,
        ))
    }

    /// Load a policy component (world `policy`).
    pub fn load_policy(&self, bytes: &[u8]) -> Result<PolicyComponent, LoadError> {
        let c = self.compile(
            bytes,
            Some("tack:plugin/approval-policy"),
            "policy component",
        )?;
        let pre = PolicyPre::new(c.pre).map_err(|e| {
            LoadError::Incompatible(format!("the component's `tack:plugin/approval-policy` export does not match this host's contract: {e:#}"))
        })?;
        Ok(PolicyComponent::new(
            self.clone(),
            c.digest,
            c.manifest,
            pre,
        ))
    }

    /// Load a code-runner component (world `code-mode`).
    pub fn load_code_runner(&self, bytes: &[u8]) -> Result<CodeRunner, LoadError> {
        let c = self.compile(bytes, Some("tack:plugin/code-runner"), "code runner")?;
        let pre = CodeModePre::new(c.pre).map_err(|e| {
            LoadError::Incompatible(format!("the component's `tack:plugin/code-runner` export does not match this host's contract: {e:#}"))
        })?;
        Ok(CodeRunner::new(self.clone(), c.digest, c.manifest, pre))
    }

    /// Check that `bytes` is a component (exporting `export`, if given), read
    /// its manifest, compile it (or take native code from the cache) and link
    /// it.
    fn compile(
        &self,
        bytes: &[u8],
        export: Option<&str>,
        what: &str,
    ) -> Result<Compiled, LoadError> {
        let digest = sha256_hex(bytes);
        if wasmparser::Parser::is_core_wasm(bytes) {
            return Err(LoadError::NotAComponent(
                "this is a core WebAssembly module, not a component; build for `wasm32-wasip2` (or wrap the module with `wasm-tools component new`)".into(),
            ));
        }
        if !wasmparser::Parser::is_component(bytes) {
            return Err(LoadError::NotAComponent(
                "this is not a WebAssembly component (bad magic number); pass the `.wasm` file that `cargo build --target wasm32-wasip2` produced".into(),
            ));
        }
        let world = world_info(bytes)
            .map_err(|e| LoadError::NotAComponent(format!("cannot decode the component: {e:#}")))?;
        if let Some(export) = export
            && !world.exports_interface(export)
        {
            return Err(LoadError::Incompatible(format!(
                "the component does not export `{export}`, so it is not a {what} (it exports: {})",
                if world.exports.is_empty() {
                    "nothing".to_string()
                } else {
                    world.exports.join(", ")
                }
            )));
        }
        let manifest = read_manifest(bytes)?.unwrap_or_default();
        let (component, cache) = self
            .inner
            .config
            .cache
            .load(&self.inner.engine, &digest, bytes)
            .map_err(|e| LoadError::Compile(format!("{e:#}")))?;
        let pre = self.inner.linker.instantiate_pre(&component).map_err(|e| {
            LoadError::Incompatible(format!(
                "the component needs an import tack does not provide: {e:#}"
            ))
        })?;
        Ok(Compiled {
            digest,
            manifest,
            world,
            pre,
            cache,
        })
    }

    fn lookup(&self, digest: &str) -> Option<Arc<PluginInner>> {
        let mut loaded = self.inner.loaded.lock().expect("plugin cache lock");
        loaded.retain(|_, w| w.strong_count() > 0);
        loaded.get(digest).and_then(Weak::upgrade)
    }
}

/// A checked, compiled and linked component, before its world's bindings.
struct Compiled {
    digest: String,
    manifest: tack_capability::Manifest,
    world: crate::inspect::WorldInfo,
    pre: wasmtime::component::InstancePre<SandboxState>,
    cache: CacheOutcome,
}

/// Advance the engine's epoch every `tick` until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine, tick: Duration) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("tack-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(tick);
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .expect("spawn the epoch ticker thread");
}
