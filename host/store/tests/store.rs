//! The same behaviour on SQLite and on a real PostgreSQL started on loopback.

use serde_json::json;
use tack_store::{Appended, Claim, NewEvent, SessionStatus, Store, StoreError, WalPolicy};
use tack_test_support::Postgres;

async fn exercise(store: Store) {
    // Agents are versioned; an unchanged spec is not a new version.
    let v1 = store
        .put_agent("refunds", &json!({"model": "demo"}))
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(
        store
            .put_agent("refunds", &json!({"model": "demo"}))
            .await
            .unwrap()
            .version,
        1
    );
    let v2 = store
        .put_agent("refunds", &json!({"model": "other"}))
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    store.put_agent("another", &json!({})).await.unwrap();
    // The first to claim a name owns it; a later claim changes nothing, and an
    // admin's transfer does.
    assert_eq!(store.agent_owner("refunds").await.unwrap(), None);
    let owner = store.claim_agent("refunds", "bo").await.unwrap();
    assert_eq!(owner.as_deref(), Some("bo"));
    let owner = store.claim_agent("refunds", "eve").await.unwrap();
    assert_eq!(owner.as_deref(), Some("bo"), "a name is claimed once");
    assert!(store.set_agent_owner("refunds", "cy").await.unwrap());
    assert_eq!(
        store.agent_owner("refunds").await.unwrap(),
        Some(Some("cy".to_string()))
    );
    assert!(!store.set_agent_owner("unregistered", "cy").await.unwrap());
    assert_eq!(
        store.agent("refunds", None).await.unwrap().unwrap().spec,
        json!({"model": "other"})
    );
    assert_eq!(
        store.agent("refunds", Some(1)).await.unwrap().unwrap().spec,
        json!({"model": "demo"})
    );
    assert!(store.agent("refunds", Some(9)).await.unwrap().is_none());
    let versions: Vec<u32> = store
        .agent_versions("refunds")
        .await
        .unwrap()
        .iter()
        .map(|a| a.version)
        .collect();
    assert_eq!(versions, [1, 2]);
    let latest: Vec<(String, u32)> = store
        .agents()
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.name, a.version))
        .collect();
    assert_eq!(
        latest,
        [("another".to_string(), 1), ("refunds".to_string(), 2)]
    );

    // Sessions and their event logs.
    let s = store.create_session("refunds", 2).await.unwrap();
    let other = store.create_session("refunds", 1).await.unwrap();
    store
        .set_status(&s.id, SessionStatus::Running)
        .await
        .unwrap();
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().status,
        SessionStatus::Running
    );
    assert_eq!(
        store
            .sessions_with_status(SessionStatus::Running)
            .await
            .unwrap()
            .len(),
        1
    );
    let listed: Vec<String> = store
        .sessions(None, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [other.id.clone(), s.id.clone()], "newest first");
    assert!(store.set_status("nope", SessionStatus::Idle).await.is_err());

    let mut ids = Vec::new();
    for i in 0..5 {
        let e = store.append(&s.id, "note", &json!({"i": i})).await.unwrap();
        assert_eq!(e.seq, i + 1);
        ids.push(e.id);
    }
    store
        .append(&other.id, "note", &json!({"other": true}))
        .await
        .unwrap();
    let page = store.events(&s.id, 2, 2).await.unwrap();
    assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(page[0].data, json!({"i": 2}));
    assert_eq!(store.event_seq(&s.id, &ids[3]).await.unwrap(), Some(4));
    assert_eq!(
        store.event_seq(&other.id, &ids[3]).await.unwrap(),
        None,
        "ids are per session"
    );
    assert!(
        store
            .append("no-such-session", "x", &json!({}))
            .await
            .is_err()
    );

    // An event and the status it implies land together.
    let e = store
        .append_with_status(
            &s.id,
            "status_changed",
            &json!({"status": "running"}),
            None,
            Some(SessionStatus::Running),
        )
        .await
        .unwrap();
    assert_eq!(
        store.events(&s.id, e.seq - 1, 10).await.unwrap()[0].id,
        e.id
    );
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().status,
        SessionStatus::Running
    );
    assert!(
        store
            .append_with_status(
                "no-such-session",
                "x",
                &json!({}),
                None,
                Some(SessionStatus::Idle)
            )
            .await
            .is_err()
    );

    // Tool calls are claimed once.
    assert_eq!(store.claim_call(&s.id, "call-1").await.unwrap(), Claim::New);
    assert_eq!(
        store.claim_call(&s.id, "call-1").await.unwrap(),
        Claim::Unfinished
    );
    store
        .finish_call(&s.id, "call-1", &json!({"refund_id": "rf_1"}))
        .await
        .unwrap();
    assert_eq!(
        store.claim_call(&s.id, "call-1").await.unwrap(),
        Claim::Done(json!({"refund_id": "rf_1"}))
    );
    assert_eq!(
        store.claim_call(&other.id, "call-1").await.unwrap(),
        Claim::New
    );

    // A batch: consecutive seqs, the status and the call's record in the same
    // transaction; a batch for a missing session writes nothing at all.
    assert_eq!(store.claim_call(&s.id, "call-2").await.unwrap(), Claim::New);
    let before = store.events(&s.id, 0, 1000).await.unwrap().len() as u64;
    let (a, b) = (json!({"n": 1}), json!({"n": 2, "secret": "[redacted]"}));
    let whole = json!({"n": 2, "secret": "hunter22"});
    let (a_text, b_text, whole_text) = (a.to_string(), b.to_string(), whole.to_string());
    let batch = [
        NewEvent {
            kind: "tool_result",
            data: &a_text,
            private: None,
        },
        NewEvent {
            kind: "status_changed",
            data: &b_text,
            private: Some(&whole_text),
        },
    ];
    let record = json!({"ok": true});
    let written = store
        .append_batch(
            &s.id,
            &batch,
            Some(SessionStatus::Idle),
            Some(("call-2", &record)),
        )
        .await
        .unwrap();
    assert_eq!(
        written.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![before + 1, before + 2]
    );
    let stored = store.events(&s.id, before, 10).await.unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|e| Appended {
                id: e.id.clone(),
                seq: e.seq,
                created_ms: e.created_ms
            })
            .collect::<Vec<_>>(),
        written,
        "where append_batch says the events landed is where they are"
    );
    assert_eq!(
        stored
            .iter()
            .map(|e| (e.kind.as_str(), &e.data))
            .collect::<Vec<_>>(),
        vec![("tool_result", &a), ("status_changed", &b)]
    );
    assert_eq!(stored[0].private, None);
    assert_eq!(stored[1].private, Some(whole.clone()));
    assert_eq!(
        store.session(&s.id).await.unwrap().unwrap().status,
        SessionStatus::Idle
    );
    assert_eq!(
        store.claim_call(&s.id, "call-2").await.unwrap(),
        Claim::Done(record.clone())
    );
    assert!(matches!(
        store
            .append_batch(
                "no-such-session",
                &batch,
                Some(SessionStatus::Idle),
                Some(("call-2", &record))
            )
            .await,
        Err(StoreError::NoSession(_))
    ));
    assert!(
        store
            .append_batch(&s.id, &[], Some(SessionStatus::Running), None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.events(&s.id, 0, 1000).await.unwrap().len() as u64,
        before + 2
    );

    // A session created with its first event: both there, with the status.
    let hello = json!({"text": "hello"}).to_string();
    let first = NewEvent {
        kind: "user_message",
        data: &hello,
        private: None,
    };
    let (created, at) = store
        .create_session_with("a", 1, "ann", first, SessionStatus::Queued)
        .await
        .unwrap();
    assert_eq!(at.seq, 1);
    assert_eq!(created.status, SessionStatus::Queued);
    assert_eq!(store.session(&created.id).await.unwrap().unwrap(), created);
    assert_eq!(created.owner.as_deref(), Some("ann"));
    // A user's listing holds its own sessions only.
    let own: Vec<String> = (store.sessions(None, 10, Some("ann")).await.unwrap())
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(own, std::slice::from_ref(&created.id));
    assert!(
        store
            .sessions(None, 10, Some("bob"))
            .await
            .unwrap()
            .is_empty()
    );
    let log = store.events(&created.id, 0, 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].id.as_str(), log[0].kind.as_str()),
        (at.id.as_str(), "user_message")
    );
    assert_eq!(log[0].data, json!({"text": "hello"}));
}

/// Two handles (two hosts) appending to one session at once: every event lands,
/// sequence numbers are unique and without gaps.
async fn concurrent_appends(a: Store, b: Store) {
    let s = a.create_session("x", 1).await.unwrap();
    let (ra, rb) = tokio::join!(
        async {
            for i in 0..25 {
                a.append(&s.id, "a", &json!(i)).await.unwrap();
            }
        },
        async {
            for i in 0..25 {
                b.append(&s.id, "b", &json!(i)).await.unwrap();
            }
        }
    );
    let _ = (ra, rb);
    let events = a.events(&s.id, 0, 1000).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<u64>>()
    );
}

/// Many writers at once on one handle (SQLite commits them in groups): each
/// write's answer matches what was stored, a failing write fails alone, and a
/// key claimed by several at once is new for exactly one.
async fn writes_at_once(store: Store) {
    let s = store.create_session("x", 1).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        let id = s.id.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for i in 0..10 {
                mine.push(store.append(&id, "w", &json!([w, i])).await.unwrap());
            }
            let missing = store.append("no-such-session", "w", &json!(w)).await;
            let claim = store.claim_call(&id, "same-key").await.unwrap();
            (mine, missing.is_err(), claim)
        }));
    }
    let mut appended = Vec::new();
    let mut new_claims = 0;
    for t in tasks {
        let (mine, missing_failed, claim) = t.await.unwrap();
        assert!(missing_failed, "an append to a missing session fails");
        appended.extend(mine);
        new_claims += usize::from(claim == Claim::New);
    }
    assert_eq!(new_claims, 1, "one claim wins");
    let stored = store.events(&s.id, 0, 1000).await.unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=160).collect::<Vec<u64>>()
    );
    for e in &appended {
        let there = &stored[e.seq as usize - 1];
        assert_eq!(
            (&there.id, &there.data),
            (&e.id, &e.data),
            "answer = stored"
        );
    }
}

#[tokio::test]
async fn sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tack.db").display());
    exercise(Store::open(&url).await.unwrap()).await;
    // Reopening sees everything (durable), and the schema is applied idempotently.
    let again = Store::open(&url).await.unwrap();
    assert_eq!(
        again.agent("refunds", None).await.unwrap().unwrap().version,
        2
    );
    concurrent_appends(again.clone(), Store::open(&url).await.unwrap()).await;
    writes_at_once(again).await;
}

#[tokio::test]
async fn postgres() {
    let pg = Postgres::start();
    exercise(Store::open(&pg.url).await.unwrap()).await;
    concurrent_appends(
        Store::open(&pg.url).await.unwrap(),
        Store::open(&pg.url).await.unwrap(),
    )
    .await;
    writes_at_once(Store::open(&pg.url).await.unwrap()).await;
}

#[tokio::test]
async fn unsupported_urls_say_what_is_supported() {
    let e = Store::open("mysql://x").await.err().unwrap().to_string();
    assert!(e.contains("use sqlite://PATH or postgres://"), "{e}");
}

/// Under writes that never pause, the WAL still starts over: a commit that
/// leaves it past its limit holds the next writes until the checkpointer copied
/// it all, so the file never holds much more than the limit (without that it
/// grew by tens of MiB a second under load), and every append is there. Nothing
/// here depends on how fast the checkpointer's thread gets to run.
#[tokio::test]
async fn the_wal_stays_bounded_under_steady_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let policy = WalPolicy {
        // Never on a timer: only the limit starts the WAL over here.
        checkpoint_every: std::time::Duration::from_secs(3600),
        restart_after_frames: 64,
    };
    let store = Store::open_with(&format!("sqlite://{}", path.display()), policy)
        .await
        .unwrap();
    let s = store.create_session("a", 1).await.unwrap();
    let payload = json!({"text": "x".repeat(2000)});
    const WRITTEN: usize = 16 << 20;
    let (mut written, mut appends) = (0, 0);
    while written < WRITTEN {
        let batch = (0..8).map(|_| {
            let (store, id, payload) = (store.clone(), s.id.clone(), payload.clone());
            tokio::spawn(async move { store.append(&id, "note", &payload).await.unwrap() })
        });
        for t in batch.collect::<Vec<_>>() {
            t.await.unwrap();
            written += 2000;
            appends += 1;
        }
    }
    // The limit (64 pages of 2 KiB) plus one group commit of at most 8 events.
    let wal = std::fs::metadata(path.with_extension("db-wal"))
        .unwrap()
        .len() as usize;
    assert!(
        wal < 1 << 20,
        "the WAL holds {wal} bytes after {written} bytes of events: it did not start over"
    );
    let events = store.events(&s.id, 0, u32::MAX).await.unwrap();
    assert_eq!(events.len(), appends, "every append is stored");
    assert!(events.iter().zip(1..).all(|(e, seq)| e.seq == seq));
}

/// A new SQLite database, its WAL and its shared-memory file are readable by
/// their owner only (they hold every session's log).
#[tokio::test]
async fn a_new_sqlite_database_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tack.db");
    let store = Store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    store.put_agent("a", &json!({})).await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = format!("{}{suffix}", path.display());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file} has mode {mode:o}");
    }
}
