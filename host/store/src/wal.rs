//! Keeping an SQLite store's write-ahead log in check.
//!
//! Commits append pages to the WAL; a checkpoint copies them into the database,
//! and once one has copied every page, the next commit starts the WAL over from
//! its beginning. A passive checkpoint copies the pages present when it starts
//! while writes go on, so under steady writes it never catches the WAL's end and
//! the file would grow without bound. Checkpoints therefore run on their own
//! thread and connection every [`WalPolicy::checkpoint_every`], and when a commit
//! leaves more than [`WalPolicy::restart_after_frames`] pages in the WAL the
//! writer holds further writes (they queue; the host goes on) and wakes the
//! checkpointer, which copies everything and lets them go. The WAL is thus never
//! longer than the limit plus one group commit, however busy the machine.

use crate::db::Sqlite;
use std::cell::Cell;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How an SQLite store keeps its write-ahead log in check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalPolicy {
    /// How often a checkpoint copies the WAL into the database (default 500 ms).
    pub checkpoint_every: Duration,
    /// WAL size, in frames (one page each: 2 KiB in a database tack created),
    /// past which the writer holds writes until one checkpoint copied the whole
    /// WAL, so that the next write starts it over (default 32,768: 64 MiB).
    pub restart_after_frames: i64,
}

impl Default for WalPolicy {
    fn default() -> Self {
        WalPolicy {
            checkpoint_every: Duration::from_millis(500),
            restart_after_frames: 32_768,
        }
    }
}

thread_local! {
    /// Pages in the WAL after this thread's last commit (set by [`count_pages`]).
    static WAL_PAGES: Cell<i64> = const { Cell::new(0) };
}

/// SQLite's WAL hook: runs on the committing thread right after each commit.
fn count_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.with(|p| p.set(i64::from(pages)));
    Ok(())
}

/// Count the WAL's pages after every commit on `conn` (read with [`pages`]).
pub(crate) fn watch(conn: &rusqlite::Connection) {
    conn.wal_hook(Some(count_pages));
}

/// Forget the last commit's count (before a commit that may write nothing).
pub(crate) fn reset_pages() {
    WAL_PAGES.with(|p| p.set(0));
}

/// Pages in the WAL after the last commit on this thread.
pub(crate) fn pages() -> i64 {
    WAL_PAGES.with(Cell::get)
}

/// The writer's side: when to hold writes and whom to wake.
pub(crate) struct Restart {
    /// Pages past which the WAL must start over.
    pub(crate) after_pages: i64,
    wake: SyncSender<()>,
}

impl Restart {
    /// Ask the checkpointer to copy the whole WAL now (writes are held).
    pub(crate) fn wake(&self) {
        // A full channel means a wake-up is already on its way.
        let _ = self.wake.try_send(());
    }
}

/// The checkpointer's connection and wake-up channel, made before the store
/// starts (so a store that cannot checkpoint fails to open instead of holding
/// writes for a checkpointer that never comes).
pub(crate) struct Checkpointer {
    conn: rusqlite::Connection,
    policy: WalPolicy,
    woken: Receiver<()>,
    path: String,
}

/// A checkpointer for the database at `path`, and the writer's side of it.
pub(crate) fn checkpointer(
    path: &str,
    policy: WalPolicy,
) -> rusqlite::Result<(Checkpointer, Restart)> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let (wake, woken) = std::sync::mpsc::sync_channel(1);
    Ok((
        Checkpointer {
            conn,
            policy,
            woken,
            path: path.to_string(),
        },
        Restart {
            after_pages: policy.restart_after_frames,
            wake,
        },
    ))
}

impl Checkpointer {
    /// Checkpoint until the store (`owner`) is dropped, on a thread of its own.
    pub(crate) fn spawn(self, owner: Weak<Sqlite>) -> std::io::Result<()> {
        std::thread::Builder::new()
            .name("tack-store-checkpoint".into())
            .spawn(move || self.run(owner))
            .map(drop)
    }

    /// One passive checkpoint: (busy, frames in the WAL, frames copied).
    fn checkpoint(&self) -> rusqlite::Result<(i64, i64, i64)> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
    }

    fn run(self, owner: Weak<Sqlite>) {
        loop {
            let woken = match self.woken.recv_timeout(self.policy.checkpoint_every) {
                Ok(()) => true,
                Err(RecvTimeoutError::Timeout) => false,
                // The store is gone (the writer's side went with it).
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let Some(db) = owner.upgrade() else { break };
            self.once(&db, woken);
        }
        // Last one out: fold the WAL back so the file stands alone.
        let _ = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }

    /// A timed checkpoint, or (`woken`) the one the writer holds writes for.
    fn once(&self, db: &Arc<Sqlite>, woken: bool) {
        let result = if woken {
            // The writer already holds writes: copy everything, then let them go.
            let r = self.checkpoint();
            db.release_writes();
            r
        } else {
            match self.checkpoint() {
                Ok((_, frames, _)) if frames > self.policy.restart_after_frames => {
                    db.without_writes(|| self.checkpoint())
                }
                other => other,
            }
        };
        if let Err(e) = result {
            tracing::warn!("WAL checkpoint of {} failed: {e}", self.path);
        }
    }
}
