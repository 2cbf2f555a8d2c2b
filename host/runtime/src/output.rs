//! Capped capture of a guest's stdout and stderr.
//!
//! A guest may write as much as it likes; the host keeps the first `cap` bytes and
//! counts the rest, so a flood costs the host neither memory nor an error path.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

#[derive(Default)]
struct Inner {
    kept: Vec<u8>,
    dropped: u64,
}

/// A stdout/stderr sink that keeps at most `cap` bytes.
#[derive(Clone)]
pub(crate) struct CappedPipe {
    cap: usize,
    inner: Arc<Mutex<Inner>>,
}

impl CappedPipe {
    pub(crate) fn new(cap: usize) -> Self {
        CappedPipe {
            cap,
            inner: Arc::default(),
        }
    }

    /// What was kept (lossy UTF-8) and how many bytes were dropped.
    pub(crate) fn take(&self) -> (String, u64) {
        let mut inner = self.inner.lock().expect("pipe lock");
        let kept = std::mem::take(&mut inner.kept);
        (String::from_utf8_lossy(&kept).into_owned(), inner.dropped)
    }

    fn write(&self, buf: &[u8]) {
        let mut inner = self.inner.lock().expect("pipe lock");
        let room = self.cap.saturating_sub(inner.kept.len());
        let n = room.min(buf.len());
        inner.kept.extend_from_slice(&buf[..n]);
        inner.dropped += (buf.len() - n) as u64;
    }
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let p = CappedPipe::new(4);
        p.write(b"ab");
        p.write(b"cdef");
        p.write(b"g");
        assert_eq!(p.take(), ("abcd".to_string(), 3));
    }
}
