//! What an operator grants a plugin.

use crate::effective::{Capabilities, DirMount, Limits, Note};
use crate::egress::{EgressRules, HostPattern};
use crate::manifest::{validate_env_name, validate_guest_path};
use crate::{ByteSize, CapabilityError, HumanDuration, Manifest, Mode};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// An operator's grant to one plugin (a policy file, or the `tack tool call` flags).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Grant {
    /// Host directories, each backing one guest path.
    #[serde(default)]
    pub dirs: Vec<DirGrant>,
    /// Environment variables: `NAME` passes the host's value, `NAME=value` sets one.
    #[serde(default)]
    pub env: Vec<String>,
    /// Outgoing HTTP.
    #[serde(default)]
    pub http: HttpGrant,
    /// Whether the plugin may read the real wall clock.
    #[serde(default)]
    pub wall_clock: bool,
    /// Resource limits.
    #[serde(default)]
    pub limits: LimitsGrant,
}

/// A host directory granted at a guest path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DirGrant {
    /// Directory on the host.
    pub host: PathBuf,
    /// Absolute path inside the sandbox.
    pub guest: String,
    /// The most access granted.
    pub mode: Mode,
}

impl std::str::FromStr for DirGrant {
    type Err = String;

    /// Parse `HOST:GUEST[:ro|:rw]` (read-write unless `:ro`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, mode) = match s.rsplit_once(':') {
            Some((rest, "ro")) => (rest, Mode::ReadOnly),
            Some((rest, "rw")) => (rest, Mode::ReadWrite),
            _ => (s, Mode::ReadWrite),
        };
        let (host, guest) = rest.split_once(':').ok_or_else(|| {
            format!("`{s}` is not HOST:GUEST[:ro]; for example `./data:/workspace:ro`")
        })?;
        if host.is_empty() || guest.is_empty() {
            return Err(format!(
                "`{s}` is not HOST:GUEST[:ro]; both paths are needed"
            ));
        }
        Ok(DirGrant {
            host: PathBuf::from(host),
            guest: guest.to_string(),
            mode,
        })
    }
}

/// Outgoing HTTP an operator grants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HttpGrant {
    /// Host patterns the plugin may reach.
    #[serde(default)]
    pub allow: Vec<HostPattern>,
    /// Non-public ranges (loopback, private, link-local) the plugin may reach anyway.
    #[serde(default)]
    pub allow_private: Vec<IpNet>,
}

/// Resource limits an operator sets; unset fields take the defaults in [`Limits`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct LimitsGrant {
    /// Linear memory per instance.
    pub memory: Option<ByteSize>,
    /// Wall time per call.
    pub timeout: Option<HumanDuration>,
    /// Fuel per call (deterministic instruction budget); off unless set.
    pub fuel: Option<u64>,
    /// Size of a call's result.
    pub max_output: Option<ByteSize>,
    /// Instances of this plugin running at once.
    pub max_concurrency: Option<u32>,
}

impl Grant {
    /// Parse a grant from TOML text.
    pub fn from_toml(text: &str) -> Result<Self, CapabilityError> {
        toml::from_str(text).map_err(|e| CapabilityError::Parse {
            what: "capability grant",
            message: e.to_string(),
        })
    }

    /// Intersect this grant with what `manifest` declares.
    ///
    /// `host_env` looks up host environment variables for `env = ["NAME"]` entries
    /// (pass `|k| std::env::var(k).ok()`; tests pass a map).
    pub fn resolve(
        &self,
        manifest: &Manifest,
        host_env: impl Fn(&str) -> Option<String>,
    ) -> Result<Capabilities, CapabilityError> {
        manifest.validate()?;
        let caps = &manifest.capabilities;
        let mut notes = Vec::new();

        // Directories: the guest path must be declared; the mode is the lesser one.
        let mut dirs = Vec::new();
        for (i, g) in self.dirs.iter().enumerate() {
            validate_guest_path(&g.guest, &format!("dirs[{i}].guest"))?;
            let Some(req) = caps.dirs.iter().find(|d| d.guest == g.guest) else {
                notes.push(Note::GrantUnused(format!(
                    "directory {} at {} is granted but the plugin does not declare {}; it is not mounted",
                    g.host.display(),
                    g.guest,
                    g.guest
                )));
                continue;
            };
            let meta = std::fs::metadata(&g.host).map_err(|e| CapabilityError::Directory {
                host: g.host.display().to_string(),
                message: e.to_string(),
            })?;
            if !meta.is_dir() {
                return Err(CapabilityError::Directory {
                    host: g.host.display().to_string(),
                    message: "not a directory".into(),
                });
            }
            if dirs.iter().any(|d: &DirMount| d.guest == g.guest) {
                return Err(CapabilityError::Invalid {
                    field: format!("dirs[{i}].guest"),
                    message: format!("{} is granted twice; keep one", g.guest),
                });
            }
            let mode = g.mode.min(req.mode);
            if mode < g.mode {
                notes.push(Note::Narrowed(format!(
                    "{} is granted rw but the plugin declares ro; it is mounted ro",
                    g.guest
                )));
            }
            dirs.push(DirMount {
                host: g.host.clone(),
                guest: g.guest.clone(),
                mode,
            });
        }
        for d in &caps.dirs {
            if !dirs.iter().any(|m| m.guest == d.guest) {
                notes.push(Note::DeclaredNotGranted(format!(
                    "the plugin declares directory {} ({}) but none is granted (grant it with `--dir HOST:{}`)",
                    d.guest, d.mode, d.guest
                )));
            }
        }

        // Environment: the name must be declared.
        let mut env = Vec::new();
        for (i, entry) in self.env.iter().enumerate() {
            let (name, value) = match entry.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (entry.as_str(), None),
            };
            validate_env_name(name, &format!("env[{i}]"))?;
            if !caps.env.iter().any(|n| n == name) {
                notes.push(Note::GrantUnused(format!(
                    "environment variable {name} is granted but the plugin does not declare it; it is not passed"
                )));
                continue;
            }
            match value.or_else(|| host_env(name)) {
                Some(v) => env.push((name.to_string(), v)),
                None => notes.push(Note::DeclaredNotGranted(format!(
                    "environment variable {name} is granted but not set on the host"
                ))),
            }
        }

        // HTTP: a request must match both lists; private ranges only by grant.
        let declared = caps
            .http
            .as_ref()
            .map(|h| h.hosts.clone())
            .unwrap_or_default();
        if declared.is_empty() && !self.http.allow.is_empty() {
            notes.push(Note::GrantUnused(
                "outgoing HTTP is granted but the plugin does not declare any; it has none".into(),
            ));
        }
        let egress = EgressRules {
            declared,
            granted: self.http.allow.clone(),
            allow_private: self.http.allow_private.clone(),
        };

        let wall_clock = self.wall_clock && caps.wall_clock;
        if caps.wall_clock && !self.wall_clock {
            notes.push(Note::DeclaredNotGranted(
                "the plugin declares the wall clock but it is not granted; it reads 1970-01-01"
                    .into(),
            ));
        }

        let defaults = Limits::default();
        let l = &self.limits;
        let limits = Limits {
            memory: l.memory.unwrap_or(defaults.memory),
            timeout: l.timeout.map(|t| t.0).unwrap_or(defaults.timeout),
            fuel: l.fuel,
            max_output: l.max_output.unwrap_or(defaults.max_output),
            max_concurrency: l.max_concurrency.unwrap_or(defaults.max_concurrency),
        };
        if limits.max_concurrency == 0 {
            return Err(CapabilityError::Invalid {
                field: "limits.max-concurrency".into(),
                message: "must be at least 1".into(),
            });
        }
        if limits.timeout.is_zero() {
            return Err(CapabilityError::Invalid {
                field: "limits.timeout".into(),
                message: "must be more than zero".into(),
            });
        }
        if let Some(need) = manifest.limits.memory
            && need > limits.memory
        {
            notes.push(Note::Narrowed(format!(
                "the plugin says it needs {need} of memory but the grant allows {}; it may fail",
                limits.memory
            )));
        }

        Ok(Capabilities {
            dirs,
            env,
            egress,
            wall_clock,
            limits,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EgressDenied;

    fn manifest() -> Manifest {
        Manifest::from_toml(
            r#"
            [capabilities]
            env = ["TZ", "LANG"]
            dirs = [{ guest = "/data", mode = "ro" }, { guest = "/out", mode = "rw" }]
            http = { hosts = ["api.example.com"] }
            "#,
        )
        .unwrap()
    }

    #[test]
    fn intersection_keeps_only_what_both_agree_on() {
        let tmp = std::env::temp_dir();
        let grant = Grant {
            dirs: vec![
                DirGrant {
                    host: tmp.clone(),
                    guest: "/data".into(),
                    mode: Mode::ReadWrite,
                },
                DirGrant {
                    host: tmp.clone(),
                    guest: "/etc".into(),
                    mode: Mode::ReadOnly,
                },
            ],
            env: vec!["TZ".into(), "LANG=C".into(), "HOME".into()],
            http: HttpGrant {
                allow: vec![
                    "api.example.com".parse().unwrap(),
                    "evil.example".parse().unwrap(),
                ],
                allow_private: vec![],
            },
            ..Grant::default()
        };
        let eff = grant
            .resolve(&manifest(), |k| (k == "TZ").then(|| "UTC".to_string()))
            .unwrap();
        // /data narrowed to ro, /etc dropped, /out declared but not granted.
        assert_eq!(eff.dirs.len(), 1);
        assert_eq!(eff.dirs[0].mode, Mode::ReadOnly);
        assert_eq!(
            eff.env,
            vec![
                ("TZ".to_string(), "UTC".to_string()),
                ("LANG".into(), "C".into())
            ]
        );
        assert!(eff.egress.check_host("api.example.com", 443).is_ok());
        assert!(matches!(
            eff.egress.check_host("evil.example", 443),
            Err(EgressDenied::NotDeclared { .. })
        ));
        let notes: Vec<String> = eff.notes.iter().map(|n| n.to_string()).collect();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("/etc is granted but the plugin does not declare"))
        );
        assert!(
            notes
                .iter()
                .any(|n| n.contains("HOME is granted but the plugin does not declare"))
        );
        assert!(notes.iter().any(|n| n.contains("declares directory /out")));
        assert!(notes.iter().any(|n| n.contains("mounted ro")));
    }

    #[test]
    fn nothing_granted_means_nothing() {
        let eff = Grant::default()
            .resolve(&manifest(), |_| Some("x".into()))
            .unwrap();
        assert!(eff.dirs.is_empty());
        assert!(eff.env.is_empty());
        assert!(!eff.egress.is_enabled());
        assert!(!eff.wall_clock);
        assert_eq!(eff.limits, Limits::default());
    }

    #[test]
    fn missing_host_dir_is_an_error() {
        let grant = Grant {
            dirs: vec!["/definitely/not/here:/data".parse().unwrap()],
            ..Grant::default()
        };
        let err = grant
            .resolve(&manifest(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("cannot grant directory /definitely/not/here"),
            "{err}"
        );
    }

    #[test]
    fn dir_flags_parse() {
        let d: DirGrant = "./x:/data:ro".parse().unwrap();
        assert_eq!(
            (d.host.to_str().unwrap(), d.guest.as_str(), d.mode),
            ("./x", "/data", Mode::ReadOnly)
        );
        let d: DirGrant = "/srv:/out".parse().unwrap();
        assert_eq!(d.mode, Mode::ReadWrite);
        assert!(
            "nodelimiter"
                .parse::<DirGrant>()
                .unwrap_err()
                .contains("HOST:GUEST")
        );
    }

    #[test]
    fn grant_toml_round_trip() {
        let g = Grant::from_toml(
            r#"
            env = ["TZ"]
            wall-clock = true
            dirs = [{ host = "/tmp", guest = "/data", mode = "ro" }]
            [http]
            allow = ["api.example.com"]
            allow-private = ["127.0.0.0/8"]
            [limits]
            memory = "128MiB"
            timeout = "5s"
            fuel = 1000000
            max-output = "2MiB"
            max-concurrency = 4
            "#,
        )
        .unwrap();
        assert_eq!(
            g.limits.timeout.unwrap().0,
            std::time::Duration::from_secs(5)
        );
        assert_eq!(g.dirs.len(), 1);
        assert_eq!(g.http.allow.len(), 1);
        assert_eq!(g.http.allow_private.len(), 1);
        assert_eq!(g.limits.max_concurrency, Some(4));
        // Written back and read again, every field survives.
        let text = toml::to_string(&g).unwrap();
        assert_eq!(Grant::from_toml(&text).unwrap(), g, "{text}");
        let err = Grant::from_toml("[limits]\nmemroy = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `memroy`"), "{err}");
    }
}
