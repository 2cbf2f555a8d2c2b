//! A client of the sessions API (`tack serve`), for the commands that talk to
//! a running host: `tack run` and `tack approvals`.

use crate::Globals;
use crate::report::{EXIT_UNUSABLE, EXIT_USAGE, Failure};
use clap::Args;
use serde_json::Value;

/// Where the API is and who calls it.
#[derive(Args, Clone)]
pub(crate) struct ApiArgs {
    /// The host's URL [default: http://<listen> from --config, else http://127.0.0.1:8080].
    #[arg(long, env = "TACK_URL", value_name = "URL")]
    pub(crate) url: Option<String>,
    /// API token (from `tack token create`).
    #[arg(long, env = "TACK_TOKEN", hide_env_values = true, value_name = "TOKEN")]
    pub(crate) token: Option<String>,
}

/// The API's address and the caller's token.
pub(crate) struct Client {
    pub(crate) base: String,
    pub(crate) token: String,
    pub(crate) http: reqwest::Client,
}

impl Client {
    pub(crate) fn new(api: &ApiArgs, g: &Globals) -> Result<Client, Failure> {
        tack_distribution::client::install_crypto();
        let base = match &api.url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => match &g.config {
                Some(p) => {
                    let c = tack_config::HostConfig::load(p)
                        .map_err(|e| Failure::new(EXIT_UNUSABLE, e.to_string()))?;
                    format!("http://{}", c.listen)
                }
                None => "http://127.0.0.1:8080".into(),
            },
        };
        let token = api.token.clone().ok_or_else(|| {
            Failure::new(EXIT_USAGE, "no API token")
                .help("pass --token or set TACK_TOKEN (create one with `tack token create NAME --role ROLE`)")
        })?;
        Ok(Client {
            base,
            token,
            http: reqwest::Client::new(),
        })
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<reqwest::Body>,
        json_body: bool,
    ) -> Result<Value, Failure> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            if json_body {
                req = req.header("content-type", "application/json");
            }
            req = req.body(b);
        }
        let resp = req.send().await.map_err(|e| {
            Failure::new(EXIT_UNUSABLE, format!("cannot reach {}: {e}", self.base))
                .help("is `tack serve` running? pass --url or set TACK_URL")
        })?;
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let message = v["error"]["message"].as_str().unwrap_or("request failed");
            return Err(Failure::new(
                if status.as_u16() == 403 || status.as_u16() == 401 {
                    EXIT_USAGE
                } else {
                    EXIT_UNUSABLE
                },
                format!("{} ({status})", message),
            ));
        }
        Ok(v)
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.send(
            reqwest::Method::POST,
            path,
            Some(body.to_string().into()),
            true,
        )
        .await
    }

    pub(crate) async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.send(reqwest::Method::GET, path, None, false).await
    }
}
