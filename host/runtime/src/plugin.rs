//! Loaded plugins and the sandboxes their calls run in.

use crate::bindings::ToolPluginIndices;
use crate::cache::CacheOutcome;
use crate::clock::{CallMonotonicClock, FrozenWallClock};
use crate::egress::{Credential, EgressBinding, EgressEvent, EgressHooks};
use crate::error::{ArgumentError, CallError};
use crate::inspect::WorldInfo;
use crate::output::CappedPipe;
use crate::plain::{PlainTools, SkippedExport};
use crate::runtime::Runtime;
use crate::state::{MemoryLimiter, SandboxState};
use crate::types::{CallContext, Content, LogRecord, ToolDescriptor, ToolError};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tack_capability::{Capabilities, CapabilityError, Grant, Manifest, Mode};
use tokio::sync::{OnceCell, Semaphore};
use wasmtime::component::{Instance, InstancePre, ResourceTable};
use wasmtime::{Store, Trap};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};
use wasmtime_wasi_http::WasiHttpCtx;

/// Bytes of stdout and of stderr kept per call.
const MAX_STDIO: usize = 64 * 1024;
/// Time allowed for `list-tools`.
const LIST_TOOLS_TIMEOUT: Duration = Duration::from_secs(5);

/// A loaded component. Cheap to clone.
#[derive(Clone)]
pub struct Plugin {
    pub(crate) inner: Arc<PluginInner>,
    pub(crate) cache: CacheOutcome,
}

pub(crate) struct PluginInner {
    runtime: Runtime,
    digest: String,
    manifest: Manifest,
    world: WorldInfo,
    pre: InstancePre<SandboxState>,
    exports: Exports,
    size: usize,
    tools: OnceCell<Vec<ToolDescriptor>>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

/// How a plugin offers its tools.
pub(crate) enum Exports {
    /// It exports `tack:plugin/tool` (an SDK plugin): it lists its tools and
    /// runs them by name.
    Contract(ToolPluginIndices),
    /// Its plain exported functions are its tools.
    Plain(PlainTools),
}

impl PluginInner {
    pub(crate) fn new(
        runtime: Runtime,
        digest: String,
        manifest: Manifest,
        world: WorldInfo,
        pre: InstancePre<SandboxState>,
        exports: Exports,
        size: usize,
    ) -> Self {
        let tools = match &exports {
            Exports::Contract(_) => OnceCell::new(),
            Exports::Plain(plain) => OnceCell::new_with(Some(
                plain.tools.iter().map(|t| t.descriptor.clone()).collect(),
            )),
        };
        PluginInner {
            runtime,
            digest,
            manifest,
            world,
            pre,
            exports,
            size,
            tools,
            validators: Mutex::default(),
        }
    }
}

impl Plugin {
    /// `sha256:<hex>` of the component bytes.
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.inner.digest)
    }

    /// Size of the component in bytes.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// The manifest embedded in the component (empty if none: then it gets nothing).
    pub fn manifest(&self) -> &Manifest {
        &self.inner.manifest
    }

    /// The component's WIT imports and exports.
    pub fn world(&self) -> &WorldInfo {
        &self.inner.world
    }

    /// For a component whose tools are its plain exported functions: which
    /// function each tool is (`package:name/interface#function`), by tool
    /// name. Empty for a plugin exporting `tack:plugin/tool`.
    pub fn tool_exports(&self) -> Vec<(&str, &str)> {
        match &self.inner.exports {
            Exports::Contract(_) => Vec::new(),
            Exports::Plain(p) => p
                .tools
                .iter()
                .map(|t| (t.descriptor.name.as_str(), t.export.as_str()))
                .collect(),
        }
    }

    /// Exported functions that are not offered as tools, and why.
    pub fn skipped_exports(&self) -> &[SkippedExport] {
        match &self.inner.exports {
            Exports::Contract(_) => &[],
            Exports::Plain(p) => &p.skipped,
        }
    }

    /// Whether native code came from the on-disk cache (or the in-memory one).
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }

    /// The tools the plugin offers. Asked once, in a sandbox with nothing granted,
    /// then cached.
    pub async fn tools(&self) -> Result<&[ToolDescriptor], CallError> {
        let tools = self
            .inner
            .tools
            .get_or_try_init(|| async {
                let mut policy = Capabilities::deny_all();
                policy.limits.timeout = LIST_TOOLS_TIMEOUT;
                let sandbox = Sandbox::new(self.clone(), policy);
                let (mut store, _pipes) = sandbox.store(LIST_TOOLS_TIMEOUT)?;
                let Exports::Contract(indices) = &self.inner.exports else {
                    unreachable!("a plain component's tools are known when it loads")
                };
                let indices = indices.clone();
                let result = sandbox
                    .run(&mut store, LIST_TOOLS_TIMEOUT, move |store, instance| {
                        Box::pin(async move {
                            let plugin = indices.load(&mut *store, &instance)?;
                            plugin.tack_plugin_tool().call_list_tools(store).await
                        })
                    })
                    .await;
                let raw = match result {
                    Ok(raw) => raw,
                    Err(e) => return Err(sandbox.classify(e, &store, &_pipes)),
                };
                let mut tools = Vec::with_capacity(raw.len());
                for d in raw {
                    let d = ToolDescriptor::from_wit(d).map_err(CallError::Contract)?;
                    if tools.iter().any(|t: &ToolDescriptor| t.name == d.name) {
                        return Err(CallError::Contract(format!(
                            "two tools are named `{}`",
                            d.name
                        )));
                    }
                    tools.push(d);
                }
                Ok(tools)
            })
            .await?;
        Ok(tools)
    }

    /// Bind the plugin to an operator grant: intersect it with the manifest.
    ///
    /// Environment values named without `=value` are read from this process's
    /// environment.
    pub fn sandbox(&self, grant: &Grant) -> Result<Sandbox, CapabilityError> {
        let policy = grant.resolve(&self.inner.manifest, |k| std::env::var(k).ok())?;
        self.sandbox_with_capabilities(policy)
    }

    /// Bind the plugin to capabilities already resolved.
    pub fn sandbox_with_capabilities(
        &self,
        policy: Capabilities,
    ) -> Result<Sandbox, CapabilityError> {
        let max = self.inner.runtime.config().max_memory;
        if policy.limits.memory > max {
            return Err(CapabilityError::Invalid {
                field: "limits.memory".into(),
                message: format!(
                    "{} is more than this runtime's ceiling of {max}",
                    policy.limits.memory
                ),
            });
        }
        if policy.limits.fuel.is_some() && !self.inner.runtime.config().fuel {
            return Err(CapabilityError::Invalid {
                field: "limits.fuel".into(),
                message:
                    "fuel limits need a runtime built with fuel metering (RuntimeConfig::fuel)"
                        .into(),
            });
        }
        Ok(Sandbox::new(self.clone(), policy))
    }

    fn validator(&self, tool: &ToolDescriptor) -> Result<Arc<jsonschema::Validator>, CallError> {
        let mut cache = self.inner.validators.lock().expect("validator cache lock");
        if let Some(v) = cache.get(&tool.name) {
            return Ok(v.clone());
        }
        let v = jsonschema::validator_for(&tool.input_schema).map_err(|e| {
            CallError::Contract(format!(
                "tool `{}` has an invalid input schema: {e}",
                tool.name
            ))
        })?;
        let v = Arc::new(v);
        cache.insert(tool.name.clone(), v.clone());
        Ok(v)
    }
}

/// The result of a call that ran.
#[derive(Debug, Clone, Serialize)]
pub struct CallOutcome {
    /// The tool's own answer: content, or the tool's structured error.
    /// Serialised as `{"content": [...]}` or `{"error": {...}}`.
    #[serde(serialize_with = "serialize_result")]
    pub result: Result<Vec<Content>, ToolError>,
    /// Log records the guest emitted.
    pub logs: Vec<LogRecord>,
    /// Log records dropped past the per-call cap.
    pub logs_dropped: u64,
    /// The guest's stdout (first 64 KiB).
    pub stdout: String,
    /// The guest's stderr (first 64 KiB).
    pub stderr: String,
    /// Bytes of stdout and stderr dropped past the cap.
    pub stdio_dropped: u64,
    /// Outgoing HTTP the guest attempted, allowed or not.
    pub egress: Vec<EgressEvent>,
    /// Wall time of the call, including instantiation (serialised as `elapsed_us`).
    #[serde(rename = "elapsed_us", serialize_with = "serialize_micros")]
    pub elapsed: Duration,
    /// Fuel consumed, if metering is on.
    pub fuel_used: Option<u64>,
}

fn serialize_micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn serialize_result<S: serde::Serializer>(
    r: &Result<Vec<Content>, ToolError>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut map = s.serialize_map(Some(1))?;
    match r {
        Ok(content) => map.serialize_entry("content", content)?,
        Err(error) => map.serialize_entry("error", error)?,
    }
    map.end()
}

/// A plugin bound to its capabilities; calls run here.
#[derive(Clone)]
pub struct Sandbox {
    plugin: Plugin,
    capabilities: Arc<Capabilities>,
    egress: EgressBinding,
    slots: Arc<Semaphore>,
}

/// What a call's guest wrote and sent, captured for its outcome.
pub(crate) struct Pipes {
    pub(crate) stdout: CappedPipe,
    pub(crate) stderr: CappedPipe,
    pub(crate) egress: Arc<Mutex<Vec<EgressEvent>>>,
}

type BoxFut<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<T>> + Send + 'a>>;

impl Sandbox {
    fn new(plugin: Plugin, policy: Capabilities) -> Self {
        let slots = Arc::new(Semaphore::new(policy.limits.max_concurrency as usize));
        Sandbox {
            egress: EgressBinding::new(policy.egress.clone()),
            capabilities: Arc::new(policy),
            plugin,
            slots,
        }
    }

    /// The same sandbox (sharing its slots) with credentials the host adds to the
    /// guest's outgoing requests to their hosts. The guest never sees them.
    pub fn with_credentials(&self, credentials: Vec<Credential>) -> Sandbox {
        Sandbox {
            egress: self.egress.with_credentials(credentials),
            ..self.clone()
        }
    }

    /// The same sandbox with another wall-time limit for its calls; it shares the
    /// concurrency slots of `self`, so the two together never exceed
    /// `max-concurrency`. The time a call waits for a slot counts against its limit.
    pub fn with_timeout(&self, timeout: Duration) -> Sandbox {
        let mut policy = (*self.capabilities).clone();
        policy.limits.timeout = timeout;
        Sandbox {
            plugin: self.plugin.clone(),
            capabilities: Arc::new(policy),
            egress: self.egress.clone(),
            slots: self.slots.clone(),
        }
    }

    /// Calls of this sandbox (and of its [`with_timeout`](Self::with_timeout)
    /// siblings) running now.
    pub fn running(&self) -> usize {
        self.capabilities.limits.max_concurrency as usize - self.slots.available_permits()
    }

    /// Keep-alive connections this sandbox (with its siblings of the same
    /// credentials) holds open and idle now, ready for the next request.
    pub fn idle_connections(&self) -> usize {
        self.egress.pool.idle_count()
    }

    /// The capabilities calls run with.
    pub fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    /// The plugin.
    pub fn plugin(&self) -> &Plugin {
        &self.plugin
    }

    /// Whether `arguments` fit `tool`'s input schema, without running anything
    /// (an approver's edited arguments are checked so before they are accepted).
    pub async fn check_arguments(
        &self,
        tool: &str,
        arguments: &serde_json::Value,
    ) -> Result<(), CallError> {
        let tools = self.plugin.tools().await?;
        let Some(desc) = tools.iter().find(|t| t.name == tool) else {
            return Err(CallError::UnknownTool {
                name: tool.to_string(),
                available: tools.iter().map(|t| t.name.clone()).collect(),
            });
        };
        self.check(desc, arguments)
    }

    fn check(&self, desc: &ToolDescriptor, value: &serde_json::Value) -> Result<(), CallError> {
        let validator = self.plugin.validator(desc)?;
        if validator.is_valid(value) {
            return Ok(());
        }
        let errors = validator
            .iter_errors(value)
            .map(|e| ArgumentError {
                pointer: e.instance_path().to_string(),
                message: e.to_string(),
            })
            .collect();
        Err(CallError::InvalidArguments {
            tool: desc.name.clone(),
            errors,
        })
    }

    /// Call `tool` with `arguments` (JSON text).
    ///
    /// The arguments are checked against the tool's input schema first; then a
    /// fresh instance runs the call under the policy's limits. `Ok` means the tool
    /// ran to completion (its answer may still be a [`ToolError`]); `Err` means the
    /// arguments were rejected or the sandbox stopped the guest.
    pub async fn call(
        &self,
        tool: &str,
        arguments: &str,
        ctx: &CallContext,
    ) -> Result<CallOutcome, CallError> {
        let start = Instant::now();
        let tools = self.plugin.tools().await?;
        let Some(desc) = tools.iter().find(|t| t.name == tool) else {
            return Err(CallError::UnknownTool {
                name: tool.to_string(),
                available: tools.iter().map(|t| t.name.clone()).collect(),
            });
        };
        let value: serde_json::Value = serde_json::from_str(arguments)
            .map_err(|e| CallError::ArgumentsNotJson(e.to_string()))?;
        self.check(desc, &value)?;

        let limits = self.capabilities.limits;
        let busy = || CallError::Busy {
            max: limits.max_concurrency,
            waited: limits.timeout,
        };
        // Fast path without a timer; wait (within the time limit) only when full.
        let _slot = match self.slots.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                match tokio::time::timeout(limits.timeout, self.slots.clone().acquire_owned()).await
                {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(busy()),
                }
            }
        };

        // Waiting for a slot counts against the call's time limit.
        let remaining = limits
            .timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        let (mut store, pipes) = self.store(remaining)?;
        let result = match &self.plugin.inner.exports {
            Exports::Contract(indices) => {
                let mut wit_ctx = ctx.to_wit();
                if wit_ctx.call_id.is_empty() {
                    wit_ctx.call_id = ulid::Ulid::generate().to_string();
                }
                let name = tool.to_string();
                let args = arguments.to_string();
                let indices = indices.clone();
                let result = self
                    .run(&mut store, remaining, move |store, instance| {
                        Box::pin(async move {
                            let plugin = indices.load(&mut *store, &instance)?;
                            plugin
                                .tack_plugin_tool()
                                .call_call_tool(store, &name, &args, &wit_ctx)
                                .await
                        })
                    })
                    .await;
                let raw = match result {
                    Ok(raw) => raw,
                    Err(e) => return Err(self.classify(e, &store, &pipes)),
                };
                let size: u64 = match &raw {
                    Ok(items) => items
                        .iter()
                        .map(|c| match c {
                            crate::bindings::tack::plugin::types::Content::Text(t)
                            | crate::bindings::tack::plugin::types::Content::Json(t) => {
                                t.len() as u64
                            }
                        })
                        .sum(),
                    Err(e) => e.message.len() as u64,
                };
                check_output(size, limits)?;
                match raw {
                    Ok(items) => Ok(items
                        .into_iter()
                        .map(Content::from_wit)
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(CallError::Contract)?),
                    Err(e) => Err(ToolError::from(e)),
                }
            }
            Exports::Plain(plain) => {
                let Some(pt) = plain.tools.iter().find(|t| t.descriptor.name == tool) else {
                    unreachable!("the tool was found in the plugin's list above")
                };
                let params = crate::plain::arguments(pt, &value).map_err(|e| {
                    CallError::InvalidArguments {
                        tool: tool.to_string(),
                        errors: vec![ArgumentError {
                            pointer: e.pointer,
                            message: e.message,
                        }],
                    }
                })?;
                let index = pt.index;
                let mut results =
                    vec![wasmtime::component::Val::Bool(false); usize::from(pt.result.is_some())];
                let result = self
                    .run(&mut store, remaining, |store, instance| {
                        Box::pin(async move {
                            let func = instance.get_func(&mut *store, index).ok_or_else(|| {
                                wasmtime::Error::msg("the exported function is missing")
                            })?;
                            func.call_async(&mut *store, &params, &mut results).await?;
                            Ok(results)
                        })
                    })
                    .await;
                let results = match result {
                    Ok(r) => r,
                    Err(e) => return Err(self.classify(e, &store, &pipes)),
                };
                let outcome = crate::plain::result_content(pt.result.as_ref(), results.first());
                let size = match &outcome {
                    Ok(Content::Text(t)) => t.len() as u64,
                    Ok(Content::Json(j)) => j.to_string().len() as u64,
                    Err(e) => e.message.len() as u64,
                };
                check_output(size, limits)?;
                outcome.map(|c| vec![c])
            }
        };
        let fuel_used = limits
            .fuel
            .and_then(|budget| store.get_fuel().ok().map(|left| budget - left));
        let (stdout, out_dropped) = pipes.stdout.take();
        let (stderr, err_dropped) = pipes.stderr.take();
        let state = store.data_mut();
        Ok(CallOutcome {
            result,
            logs: std::mem::take(&mut state.logs),
            logs_dropped: state.logs_dropped,
            stdout,
            stderr,
            stdio_dropped: out_dropped + err_dropped,
            egress: std::mem::take(&mut *pipes.egress.lock().expect("egress lock")),
            elapsed: start.elapsed(),
            fuel_used,
        })
    }

    /// A fresh store with exactly what the policy allows.
    fn store(&self, timeout: Duration) -> Result<(Store<SandboxState>, Pipes), CallError> {
        new_store(
            &self.plugin.inner.runtime,
            &self.capabilities,
            &self.egress,
            timeout,
        )
    }

    /// Instantiate and run `f` under the wall-time limit.
    async fn run<T>(
        &self,
        store: &mut Store<SandboxState>,
        timeout: Duration,
        f: impl for<'a> FnOnce(&'a mut Store<SandboxState>, Instance) -> BoxFut<'a, T> + Send,
    ) -> wasmtime::Result<T> {
        let pre = &self.plugin.inner.pre;
        let fut = async {
            let instance = pre.instantiate_async(&mut *store).await?;
            f(store, instance).await
        };
        match tokio::time::timeout(timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
        }
    }

    fn classify(
        &self,
        err: wasmtime::Error,
        store: &Store<SandboxState>,
        pipes: &Pipes,
    ) -> CallError {
        classify(err, store, pipes, &self.capabilities.limits)
    }
}

/// Refuse a result larger than the call's output limit.
fn check_output(size: u64, limits: tack_capability::Limits) -> Result<(), CallError> {
    if size > limits.max_output.bytes() {
        return Err(CallError::OutputTooLarge {
            size,
            limit: limits.max_output,
        });
    }
    Ok(())
}

/// The panic line(s) from a Rust guest's stderr, or a generic note.
fn panic_message(stderr: &str) -> String {
    if let Some(pos) = stderr.find("panicked at ") {
        let rest = &stderr[pos..];
        let msg: Vec<&str> = rest.lines().take(2).collect();
        return msg.join(": ").replace(":\n", ": ");
    }
    let trimmed = stderr.trim();
    if trimmed.is_empty() {
        "the guest aborted (wasm `unreachable`) without a message".into()
    } else {
        trimmed.lines().last().unwrap_or(trimmed).to_string()
    }
}

/// A fresh store with exactly what `policy` allows, its epoch deadline set to `timeout`.
pub(crate) fn new_store(
    runtime: &Runtime,
    policy: &Capabilities,
    egress_binding: &EgressBinding,
    timeout: Duration,
) -> Result<(Store<SandboxState>, Pipes), CallError> {
    let stdout = CappedPipe::new(MAX_STDIO);
    let stderr = CappedPipe::new(MAX_STDIO);

    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .allow_blocking_current_thread(
            runtime.direct_file_io(policy.dirs.iter().map(|d| d.host.as_path())),
        )
        .monotonic_clock(CallMonotonicClock(Instant::now()));
    if !policy.wall_clock {
        wasi.wall_clock(FrozenWallClock);
    }
    for (k, v) in &policy.env {
        wasi.env(k, v);
    }
    for d in &policy.dirs {
        let perms = match d.mode {
            Mode::ReadOnly => FsPerms::ReadOnly,
            Mode::ReadWrite => FsPerms::ReadWrite,
        };
        wasi.preopened_dir(&d.host, &d.guest, perms).map_err(|e| {
            CallError::Setup(format!(
                "cannot open granted directory {}: {e}",
                d.host.display()
            ))
        })?;
    }

    let egress = Arc::new(Mutex::new(Vec::new()));
    let state = SandboxState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        hooks: EgressHooks {
            binding: egress_binding.clone(),
            resolver: runtime.config().resolver.clone(),
            events: egress.clone(),
        },
        limiter: MemoryLimiter::new(
            usize::try_from(policy.limits.memory.bytes()).unwrap_or(usize::MAX),
        ),
        logs: Vec::new(),
        logs_dropped: 0,
        deltas: None,
        code: None,
    };
    let mut store = Store::new(runtime.engine(), state);
    store.limiter(|s| &mut s.limiter);
    arm(runtime, &mut store, policy, timeout)?;
    Ok((
        store,
        Pipes {
            stdout,
            stderr,
            egress,
        },
    ))
}

/// Give `store` one call's time limit and fuel (before each call, for a store
/// that serves several).
pub(crate) fn arm(
    runtime: &Runtime,
    store: &mut Store<SandboxState>,
    policy: &Capabilities,
    timeout: Duration,
) -> Result<(), CallError> {
    let tick = runtime.config().epoch_tick.as_nanos().max(1);
    let ticks = timeout.as_nanos().div_ceil(tick) + 1;
    store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
    if runtime.config().fuel {
        // A metering engine needs fuel in every store; without a budget the
        // wall-time limit is the only bound.
        store
            .set_fuel(policy.limits.fuel.unwrap_or(u64::MAX))
            .map_err(|e| CallError::Setup(format!("cannot set fuel: {e}")))?;
    }
    Ok(())
}

/// Turn a trap or host error into the specific [`CallError`].
pub(crate) fn classify(
    err: wasmtime::Error,
    store: &Store<SandboxState>,
    pipes: &Pipes,
    limits: &tack_capability::Limits,
) -> CallError {
    if store.data().limiter.hit {
        return CallError::MemoryLimit {
            limit: limits.memory,
        };
    }
    if let Some(e) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return CallError::AtCapacity(e.to_string());
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallError::Timeout {
            limit: limits.timeout,
        },
        Some(Trap::StackOverflow) => CallError::StackOverflow,
        Some(Trap::OutOfFuel) => CallError::FuelExhausted {
            limit: limits.fuel.unwrap_or(0),
        },
        Some(Trap::UnreachableCodeReached) => {
            let (stderr, _) = pipes.stderr.take();
            CallError::Panic {
                message: panic_message(&stderr),
            }
        }
        Some(trap) => CallError::Trap(trap.to_string()),
        None => CallError::Trap(format!("{err:#}")),
    }
}
