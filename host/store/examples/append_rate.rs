//! How fast the store appends events (one at a time, then 16 writers at once),
//! for profiling. Everything runs on the runtime's one worker, as the engine's
//! runners do.
fn main() {
    let rt = tack_test_support::one_worker_runtime();
    rt.block_on(rt.spawn(async {
        let dir = tempfile::tempdir().unwrap();
        let store = tack_store::Store::open(&format!("sqlite://{}", dir.path().join("a.db").display())).await.unwrap();
        let s = store.create_session("a", 1).await.unwrap();
        let data = serde_json::json!({"run_id": "01ABC", "step": 1, "message": {"role": "assistant", "parts": [{"type": "text", "text": "hello there"}]}});
        let n = 5000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            store.append(&s.id, "model_response", &data).await.unwrap();
        }
        let e = start.elapsed();
        println!("{n} appends: {:.1} µs each", e.as_secs_f64() * 1e6 / n as f64);
        // 16 writers at once: their appends share commits.
        let start = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let store = store.clone();
            let s = store.create_session("a", 1).await.unwrap();
            let data = data.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..n / 16 {
                    store.append(&s.id, "model_response", &data).await.unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let e = start.elapsed();
        println!("{n} appends by 16 writers: {:.1} µs each", e.as_secs_f64() * 1e6 / n as f64);
        let start = std::time::Instant::now();
        for _ in 0..n {
            store.session(&s.id).await.unwrap();
        }
        println!("{n} session reads: {:.1} µs each", start.elapsed().as_secs_f64() * 1e6 / n as f64);
    }))
    .unwrap();
}
