//! A tool component built with nothing but `wit-bindgen` (no tack SDK): the
//! host offers its exported functions as tools, derives their schemas from
//! `wit/plain.wit` and converts values both ways. `echo` gives every kind of
//! WIT value back; `misbehave` tries what the sandbox must stop.

wit_bindgen::generate!({ path: "wit", world: "plain" });

use exports::example::plain::echo::{Compound, Scalars};
use exports::example::plain::text::{Counts, RatioError};
use std::collections::HashMap;

struct Plain;

impl exports::example::plain::text::Guest for Plain {
    fn count(text: String) -> Counts {
        let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
        Counts {
            words: n(text.split_whitespace().count()),
            lines: n(text.lines().count()),
            chars: n(text.chars().count()),
        }
    }

    fn top_words(text: String, n: u8, ignore: Option<Vec<String>>) -> Vec<(String, u32)> {
        let ignore = ignore.unwrap_or_default();
        let mut counts: HashMap<String, u32> = HashMap::new();
        for word in text.split_whitespace() {
            let word: String = word
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase();
            if !word.is_empty() && !ignore.contains(&word) {
                *counts.entry(word).or_default() += 1;
            }
        }
        let mut counts: Vec<(String, u32)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts.truncate(usize::from(n));
        counts
    }

    fn ratio(a: u64, b: u64) -> Result<f64, RatioError> {
        if b == 0 {
            return Err(RatioError::InvalidArguments("`b` must not be zero".into()));
        }
        #[allow(clippy::cast_precision_loss)]
        Ok(a as f64 / b as f64)
    }
}

impl exports::example::plain::echo::Guest for Plain {
    fn echo_scalars(v: Scalars) -> Scalars {
        v
    }

    fn echo_compound(v: Compound) -> Compound {
        v
    }
}

impl exports::example::plain::misbehave::Guest for Plain {
    fn spin() -> u64 {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }

    fn hog(mib: u32) -> u32 {
        let mut blocks = Vec::new();
        for _ in 0..mib {
            blocks.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
        u32::try_from(blocks.len()).unwrap_or(u32::MAX)
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))
    }

    fn fetch(url: String) -> Result<u16, String> {
        use wasip2::http::outgoing_handler::{OutgoingRequest, handle};
        use wasip2::http::types::{Fields, Scheme};
        let (scheme, rest) = match url.split_once("://") {
            Some(("https", rest)) => (Scheme::Https, rest),
            Some(("http", rest)) => (Scheme::Http, rest),
            _ => return Err(format!("not an http(s) URL: {url}")),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let request = OutgoingRequest::new(Fields::new());
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| "bad scheme")?;
        request
            .set_authority(Some(authority))
            .map_err(|()| "bad host")?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| "bad path")?;
        let response = handle(request, None).map_err(|e| format!("{e:?}"))?;
        response.subscribe().block();
        match response.get() {
            Some(Ok(Ok(r))) => Ok(r.status()),
            Some(Ok(Err(e))) => Err(format!("{e:?}")),
            _ => Err("no response".into()),
        }
    }
}

export!(Plain);
