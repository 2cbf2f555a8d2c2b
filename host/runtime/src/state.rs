//! The data of one call's `Store`: everything the guest can reach, and nothing else.

use crate::bindings::tack::plugin::logging;
use crate::egress::EgressHooks;
use crate::types::{LogLevel, LogRecord};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Most log records one call may emit; later ones are counted and dropped.
pub(crate) const MAX_LOG_RECORDS: usize = 256;
/// Longest log message kept, in bytes.
pub(crate) const MAX_LOG_MESSAGE: usize = 4096;

/// Store data for one call.
pub(crate) struct SandboxState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    pub(crate) http: WasiHttpCtx,
    pub(crate) hooks: EgressHooks,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) logs: Vec<LogRecord>,
    pub(crate) logs_dropped: u64,
    /// Where a model adapter's streamed text goes (model calls only).
    pub(crate) deltas: Option<crate::model::DeltaSink>,
    /// A program's tool calls (code runs only).
    pub(crate) code: Option<crate::code::CodeCalls>,
}

impl WasiView for SandboxState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for SandboxState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl logging::Host for SandboxState {
    fn log(&mut self, level: logging::Level, mut message: String) {
        if self.logs.len() >= MAX_LOG_RECORDS {
            self.logs_dropped += 1;
            return;
        }
        if message.len() > MAX_LOG_MESSAGE {
            let mut end = MAX_LOG_MESSAGE;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
            message.push('…');
        }
        let level = match level {
            logging::Level::Trace => LogLevel::Trace,
            logging::Level::Debug => LogLevel::Debug,
            logging::Level::Info => LogLevel::Info,
            logging::Level::Warn => LogLevel::Warn,
            logging::Level::Error => LogLevel::Error,
        };
        self.logs.push(LogRecord { level, message });
    }
}

impl crate::bindings::model_world::tack::plugin::model_stream::Host for SandboxState {
    fn text_delta(&mut self, text: String) {
        if let Some(sink) = &self.deltas {
            sink(&text);
        }
    }
}

/// Caps the total linear memory of a store: a `memory.grow` past the cap traps,
/// and `hit` says so, so the call is reported as stopped at its memory limit.
pub(crate) struct MemoryLimiter {
    pub(crate) limit: usize,
    pub(crate) total: usize,
    pub(crate) hit: bool,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: usize) -> Self {
        MemoryLimiter {
            limit,
            total: 0,
            hit: false,
        }
    }
}

/// Most table elements per table (function pointers; Rust guests use a few thousand).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.total - current.min(self.total) + desired;
        if next > self.limit {
            // Trap rather than fail the growth: a guest whose language recovers
            // from a failed allocation (Python's MemoryError, a JS engine's
            // exception) would otherwise turn the limit into its own error.
            // Stopping the call makes the limit the same in every language.
            self.hit = true;
            return Err(wasmtime::format_err!(
                "memory limit of {} bytes reached",
                self.limit
            ));
        }
        self.total = next;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        64
    }

    fn memories(&self) -> usize {
        8
    }

    fn tables(&self) -> usize {
        64
    }
}
