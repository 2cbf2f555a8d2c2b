//! What the benchmarks in `benches/` share: pinning the measured process to
//! one core, and percentiles of sorted samples.

use std::process::Command;

/// The sample at quantile `p` (0..=1) of `sorted` (seconds, `Duration`s, …).
pub fn percentile<T: Copy>(sorted: &[T], p: f64) -> T {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Re-run this binary under `taskset -c 0` unless it already is (then
/// `TACK_BENCH_PINNED` is set). Without `RUST_BACKTRACE`: a debugging setting
/// with which every error value made inside the runtime captures a backtrace.
pub fn pin_to_one_core() {
    if std::env::var_os("TACK_BENCH_PINNED").is_some() {
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let status = Command::new("taskset")
        .arg("-c")
        .arg("0")
        .arg(exe)
        .args(std::env::args().skip(1))
        .env("TACK_BENCH_PINNED", "1")
        .env_remove("RUST_BACKTRACE")
        .status();
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => eprintln!("taskset is not available ({e}); running unpinned"),
    }
}
