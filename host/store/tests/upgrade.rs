//! A database written before this version of the schema opens with today's
//! code: its migrations run, and every agent, session, event, call record,
//! secret and token it held is still there, read through today's API.

#[path = "fixtures/dump.rs"]
mod dump;

use std::path::{Path, PathBuf};
use tack_store::{SCHEMA_VERSION, Store};
use tack_test_support::Postgres;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The schema version recorded in the database at `url`.
async fn recorded_version(url: &str) -> i64 {
    let store = Store::open(url).await.unwrap();
    store.schema_version().await.unwrap()
}

/// What a database from before owners were recorded says about them: no
/// session has an owner, and every agent name is registered without one (so
/// nobody can claim it by publishing first).
async fn owners_are_unrecorded(store: &Store) {
    let sessions = store.sessions(None, 1000, None).await.unwrap();
    assert!(!sessions.is_empty());
    assert!(sessions.iter().all(|s| s.owner.is_none()));
    for agent in store.agents().await.unwrap() {
        assert_eq!(store.agent_owner(&agent.name).await.unwrap(), Some(None));
        let owner = store.claim_agent(&agent.name, "first-comer").await.unwrap();
        assert_eq!(owner, None, "{} stays unowned", agent.name);
    }
}

#[tokio::test]
async fn an_sqlite_database_from_before_migrations_opens_with_everything_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tack.db");
    std::fs::copy(fixture("v0/tack.db"), &path).unwrap();
    let url = format!("sqlite://{}", path.display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(dump::dump(&store).await, expected("v0/sqlite.json"));
    owners_are_unrecorded(&store).await;
    drop(store);
    // Migrated once: reopening finds the version recorded and changes nothing.
    assert_eq!(recorded_version(&url).await, SCHEMA_VERSION);
    let store = Store::open(&url).await.unwrap();
    assert_eq!(dump::dump(&store).await, expected("v0/sqlite.json"));
}

#[tokio::test]
async fn a_postgres_database_from_before_migrations_opens_with_everything_in_it() {
    let pg = Postgres::start();
    pg.run_sql_file(&fixture("v0/postgres.sql"));
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(dump::dump(&store).await, expected("v0/postgres.json"));
    owners_are_unrecorded(&store).await;
    drop(store);
    assert_eq!(recorded_version(&pg.url).await, SCHEMA_VERSION);
    let store = Store::open(&pg.url).await.unwrap();
    assert_eq!(dump::dump(&store).await, expected("v0/postgres.json"));
}
