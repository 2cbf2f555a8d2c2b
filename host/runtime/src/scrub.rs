//! Scrubbing credential values out of text that came back from outside.
//!
//! The host adds credentials to a guest's requests ([`Credential`]); the guest
//! never sees them, but an upstream may echo a request's headers in an error body,
//! which the guest then reports as its error or logs. Before such text goes
//! anywhere (events, log lines, traces), a [`Scrubber`] replaces every credential
//! value the host injected, in each of the forms it is commonly echoed in.

use crate::egress::Credential;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use std::borrow::Cow;

/// What a scrubbed credential is replaced with.
pub const SCRUBBED: &str = "[redacted]";

/// Shorter values are not scrubbed: they would match ordinary text, and a
/// credential that short protects nothing.
const SHORTEST: usize = 8;

/// Replaces credential values in text. Cheap to clone.
#[derive(Clone, Default)]
pub struct Scrubber {
    /// Every form of every value, longest first (so a value is replaced whole
    /// before a part of it that is itself a form, such as the token inside
    /// `Bearer <token>`).
    needles: std::sync::Arc<[String]>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scrubber({} forms)", self.needles.len())
    }
}

impl Scrubber {
    /// A scrubber for `values` (header values as sent, such as `Bearer sk-…`).
    /// For each value and, when it has an auth scheme (`Bearer`, `Basic`, …),
    /// for the credential after it: the text itself, base64 (standard and
    /// URL-safe, padded or not), percent-encoding, JSON string escaping and hex.
    pub fn new<'a>(values: impl IntoIterator<Item = &'a str>) -> Scrubber {
        let mut needles = Vec::new();
        for value in values {
            let mut bases = vec![value];
            if let Some((scheme, rest)) = value.split_once(' ')
                && !scheme.is_empty()
                && scheme.chars().all(|c| c.is_ascii_alphabetic())
            {
                bases.push(rest.trim());
            }
            for base in bases {
                if base.len() < SHORTEST {
                    continue;
                }
                let bytes = base.as_bytes();
                needles.push(base.to_string());
                for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
                    needles.push(engine.encode(bytes));
                }
                needles.push(percent_encoded(base));
                let json = serde_json::to_string(base).expect("a string serializes");
                needles.push(json[1..json.len() - 1].to_string());
                needles.push(hex::encode(bytes));
                needles.push(hex::encode_upper(bytes));
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Scrubber {
            needles: needles.into(),
        }
    }

    /// A scrubber for the values of `credentials`.
    pub fn for_credentials(credentials: &[Credential]) -> Scrubber {
        Scrubber::new(credentials.iter().filter_map(Credential::value_text))
    }

    /// Whether it scrubs nothing (no credentials).
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `text` with every form of every credential value replaced by
    /// [`SCRUBBED`]; borrowed when nothing was found.
    pub fn scrub<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for needle in self.needles.iter() {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), SCRUBBED));
            }
        }
        out
    }

    /// [`scrub`](Self::scrub) in place.
    pub fn scrub_in_place(&self, text: &mut String) {
        if let Cow::Owned(s) = self.scrub(text) {
            *text = s;
        }
    }
}

/// `text` percent-encoded as in a URL query (everything but RFC 3986's
/// unreserved characters).
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-live-4f/9+Zq\"x";

    fn scrubber() -> Scrubber {
        Scrubber::new([format!("Bearer {KEY}").as_str()])
    }

    #[test]
    fn every_common_form_of_the_value_and_its_token_is_replaced() {
        let s = scrubber();
        let bearer = format!("Bearer {KEY}");
        let json = serde_json::to_string(KEY).unwrap();
        let forms = [
            bearer.clone(),
            KEY.to_string(),
            STANDARD.encode(KEY),
            URL_SAFE_NO_PAD.encode(KEY),
            STANDARD.encode(&bearer),
            percent_encoded(KEY),
            json[1..json.len() - 1].to_string(),
            hex::encode(KEY),
            hex::encode_upper(KEY),
        ];
        for form in forms {
            let text = format!("upstream said: authorization={form}; try again");
            let out = s.scrub(&text);
            assert_eq!(
                out, "upstream said: authorization=[redacted]; try again",
                "{form}"
            );
        }
    }

    #[test]
    fn a_whole_header_value_goes_before_its_token() {
        let text = format!("header Bearer {KEY} and {KEY} again");
        assert_eq!(
            scrubber().scrub(&text),
            "header [redacted] and [redacted] again"
        );
    }

    #[test]
    fn text_without_a_credential_is_borrowed_unchanged() {
        let s = scrubber();
        assert!(matches!(s.scrub("Bearer token expired"), Cow::Borrowed(_)));
        // Too short to scrub: a scheme alone, or a tiny value.
        let tiny = Scrubber::new(["Bearer abc"]);
        assert_eq!(tiny.scrub("abc Bearer"), "abc Bearer");
        assert!(Scrubber::new([]).is_empty());
    }
}
