//! `tack-scripted-model --script FILE [--listen ADDR]`: serve a script on
//! loopback (the offline demo's model). Prints `listening on http://ADDR/v1`.

use std::net::SocketAddr;
use tack_scripted_model::{Script, ScriptedModel};

fn usage() -> ! {
    eprintln!("usage: tack-scripted-model --script FILE [--listen 127.0.0.1:0]");
    std::process::exit(2);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut script = None;
    let mut listen: SocketAddr = "127.0.0.1:0".parse().expect("an address");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--script" => script = args.next(),
            "--listen" => {
                listen = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let Some(path) = script else { usage() };
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("error: cannot read {path}: {e}");
        std::process::exit(1);
    });
    let script = Script::from_yaml(&text).unwrap_or_else(|e| {
        eprintln!("error: {path}: {e}");
        std::process::exit(1);
    });
    let model = ScriptedModel::start_on(listen, script)
        .await
        .unwrap_or_else(|e| {
            eprintln!("error: cannot listen on {listen}: {e}");
            std::process::exit(1);
        });
    println!("listening on {}", model.base_url());
    use std::io::Write;
    let _ = std::io::stdout().flush();
    std::future::pending::<()>().await;
}
