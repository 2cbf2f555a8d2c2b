//! How fast the store appends events (one at a time), for profiling.
fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
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
        let start = std::time::Instant::now();
        for _ in 0..n {
            store.session(&s.id).await.unwrap();
        }
        println!("{n} session reads: {:.1} µs each", start.elapsed().as_secs_f64() * 1e6 / n as f64);
    });
}
