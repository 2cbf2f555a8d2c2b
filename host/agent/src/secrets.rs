//! Recognising values shaped like credentials, so they are refused before they are
//! stored. The finding names the field and the kind of secret, never the value.

/// A value that looks like a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFinding {
    /// Where it is, e.g. `instructions` or `tools[2]`.
    pub path: String,
    /// What it looks like, e.g. `an OpenAI API key`.
    pub looks_like: &'static str,
}

/// Known credential prefixes and what they are.
const PREFIXES: &[(&str, usize, &str)] = &[
    ("sk-ant-", 20, "an Anthropic API key"),
    ("sk-proj-", 20, "an OpenAI project API key"),
    ("sk-", 20, "an OpenAI-style API key"),
    ("ghp_", 30, "a GitHub personal access token"),
    ("github_pat_", 30, "a GitHub fine-grained token"),
    ("gho_", 30, "a GitHub OAuth token"),
    ("ghs_", 30, "a GitHub app token"),
    ("glpat-", 20, "a GitLab personal access token"),
    ("xoxb-", 20, "a Slack bot token"),
    ("xoxp-", 20, "a Slack user token"),
    ("AKIA", 20, "an AWS access key id"),
    ("ASIA", 20, "an AWS temporary access key id"),
    ("AIza", 35, "a Google API key"),
    ("hf_", 30, "a Hugging Face token"),
    ("tack_", 40, "a tack registry token"),
    ("sk_live_", 20, "a Stripe secret key"),
    ("rk_live_", 20, "a Stripe restricted key"),
];

fn token_chars(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.+/=".contains(c)
}

/// What `word` (a run of token characters) looks like, if it is a credential.
fn classify(word: &str) -> Option<&'static str> {
    for (prefix, min_len, what) in PREFIXES {
        if word.starts_with(prefix)
            && word.len() >= *min_len
            && word[prefix.len()..]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Some(what);
        }
    }
    // A JSON Web Token: three base64url parts, the first two starting with `eyJ`.
    let parts: Vec<&str> = word.split('.').collect();
    if parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[1].starts_with("eyJ")
        && word.len() > 40
    {
        return Some("a JSON Web Token");
    }
    // A long random-looking string: 32+ characters mixing upper, lower and digits,
    // with no vowel-rich words (so prose and identifiers pass).
    if word.len() >= 32 {
        let upper = word.chars().filter(|c| c.is_ascii_uppercase()).count();
        let lower = word.chars().filter(|c| c.is_ascii_lowercase()).count();
        let digit = word.chars().filter(|c| c.is_ascii_digit()).count();
        // (Lowercase hex is left alone: that is what digests look like.)
        if upper >= 4 && lower >= 4 && digit >= 4 && !word.contains('/') {
            return Some("a high-entropy token");
        }
        if random_base64(word) {
            return Some("a high-entropy base64 key");
        }
    }
    None
}

/// Whether `word` looks like random bytes in standard base64 (AWS secret access
/// keys, Azure account keys): only the base64 alphabet, and case changing from
/// lower to upper far more often than in paths and CamelCase names, where it
/// changes once per word (`Users/JohnSmith/Documents` changes once).
fn random_base64(word: &str) -> bool {
    let body = word.trim_end_matches('=');
    if !body
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
    {
        return false;
    }
    let bytes = body.as_bytes();
    let rises = bytes
        .windows(2)
        .filter(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
        .count();
    let upper = bytes.iter().filter(|c| c.is_ascii_uppercase()).count();
    let lower = bytes.iter().filter(|c| c.is_ascii_lowercase()).count();
    upper >= 6 && lower >= 6 && rises * 8 >= body.len()
}

/// Labels that always introduce a secret in connection strings and credential
/// files, whatever the value looks like.
const LABELS: &[(&str, &str)] = &[
    ("accountkey=", "an Azure storage account key"),
    ("sharedaccesskey=", "an Azure shared access key"),
    ("aws_secret_access_key", "an AWS secret access key"),
];

/// The first credential-shaped part of `text`, if any.
pub fn looks_like_secret(text: &str) -> Option<&'static str> {
    if text.contains("PRIVATE KEY-----") {
        return Some("a PEM private key");
    }
    let lower = text.to_ascii_lowercase();
    if let Some(i) = lower.find("bearer ") {
        let rest = &text[i + 7..];
        let token: String = rest.chars().take_while(|c| token_chars(*c)).collect();
        if token.len() >= 20 {
            return Some("a bearer token");
        }
    }
    if let Some(i) = lower.find("://")
        && let Some(at) = text[i + 3..].find('@')
        && text[i + 3..i + 3 + at].contains(':')
        && !text[i + 3..i + 3 + at].contains(char::is_whitespace)
    {
        return Some("a URL with a password");
    }
    for (label, what) in LABELS {
        if let Some(i) = lower.find(label) {
            let rest = text[i + label.len()..].trim_start_matches([' ', '=', ':', '"', '\'']);
            if rest.chars().take_while(|c| token_chars(*c)).count() >= 16 {
                return Some(what);
            }
        }
    }
    text.split(|c: char| !token_chars(c))
        .filter(|w| w.len() >= 16)
        .find_map(classify)
}

/// Every credential-shaped string in a YAML document, with its path.
pub fn scan_for_secrets(doc: &serde_yaml_ng::Value) -> Vec<SecretFinding> {
    let mut out = Vec::new();
    walk(doc, String::new(), &mut out);
    out
}

fn walk(v: &serde_yaml_ng::Value, path: String, out: &mut Vec<SecretFinding>) {
    use serde_yaml_ng::Value;
    match v {
        Value::String(s) => {
            if let Some(what) = looks_like_secret(s) {
                out.push(SecretFinding {
                    path: if path.is_empty() {
                        "(document)".into()
                    } else {
                        path
                    },
                    looks_like: what,
                });
            }
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), out);
            }
        }
        Value::Mapping(map) => {
            for (k, item) in map {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                // A secret used as a key is still a secret.
                if let Some(what) = looks_like_secret(&key) {
                    out.push(SecretFinding {
                        path: if path.is_empty() {
                            "(a key)".into()
                        } else {
                            format!("{path} (a key)")
                        },
                        looks_like: what,
                    });
                }
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                walk(item, child, out);
            }
        }
        Value::Tagged(t) => walk(&t.value, path, out),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test values are assembled at run time so the source holds nothing key-shaped.
    fn fake(prefix: &str, n: usize) -> String {
        let body: String = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY"
            .chars()
            .cycle()
            .take(n)
            .collect();
        format!("{prefix}{body}")
    }

    #[test]
    fn known_credential_shapes_are_found() {
        for (value, what) in [
            (fake("sk-", 40), "OpenAI"),
            (fake("sk-ant-", 40), "Anthropic"),
            (fake("ghp_", 36), "GitHub"),
            (format!("AKIA{}", "Q".repeat(16)), "AWS"),
            (format!("token: Bearer {}", fake("", 30)), "bearer"),
            (format!("-----BEGIN EC {}-----", "PRIVATE KEY"), "PEM"),
            (
                format!("use https://bot:{}@api.example.com", "hunter22"),
                "password",
            ),
            (fake("", 40), "high-entropy"),
            (
                format!("{}.{}.{}", fake("eyJ", 20), fake("eyJ", 30), fake("", 20)),
                "JSON Web Token",
            ),
        ] {
            let found = looks_like_secret(&value).unwrap_or_else(|| panic!("missed {what}"));
            assert!(found.contains(what), "{value}: {found}");
        }
    }

    /// Standard-base64 keys (with `/` and `+`) were accepted: AWS secret access
    /// keys and Azure account keys.
    #[test]
    fn base64_keys_with_slashes_and_pluses_are_found() {
        let aws = format!("{}/{}+{}", fake("", 13), fake("", 12), fake("", 13));
        assert_eq!(aws.len(), 40);
        let azure = format!("{}+{}/{}==", fake("", 30), fake("", 28), fake("", 26));
        for (text, what) in [
            (aws.clone(), "base64"),
            (format!("key {aws} here"), "base64"),
            (
                format!("aws_secret_access_key = {aws}"),
                "AWS secret access key",
            ),
            (
                format!(
                    "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure};EndpointSuffix=core.windows.net"
                ),
                "Azure storage account key",
            ),
            (
                format!("Endpoint=sb://acme/;SharedAccessKey={}", fake("", 44)),
                "Azure shared access key",
            ),
        ] {
            let found = looks_like_secret(&text).unwrap_or_else(|| panic!("missed {what}"));
            assert!(found.contains(what), "{text}: {found}");
        }
    }

    #[test]
    fn ordinary_agent_text_passes() {
        for text in [
            "You help customers with refunds. Check the balance with read_balance first.",
            "localhost:5050/tack/payments@0.1.0",
            "sha256:5d75490eede144a46ca59553eccae8542d412a0c731afe6ba4162a20166fcc7d",
            "https://api.openai.com/v1/chat/completions",
            "refunds-over-100",
            "Use the skill-based approach: read SKILL.md before acting (see task-list).",
            "Ask for an API key? Never: the host adds credentials.",
            "Reports live in Users/JohnSmith/Documents/Projects2024/QuarterlyReports.",
            "See https://github.com/AcmeCorp/PaymentsService/blob/main/README.md",
            "MyComponentLibrary/ButtonGroup/IconButtonWithTooltip+Badge",
        ] {
            assert_eq!(looks_like_secret(text), None, "{text}");
        }
    }

    #[test]
    fn findings_name_the_path_not_the_value() {
        let key = fake("sk-", 40);
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!(
            "name: a\ntools:\n  - tack/jq@1.0.0\n  - \"{key}\"\nlimits:\n  note: ok\n"
        ))
        .unwrap();
        let found = scan_for_secrets(&doc);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "tools[1]");
    }
}
