//! Storage URLs: `sqlite://PATH[?synchronous=full|normal]` and
//! `postgres://USER@HOST[:PORT]/DB` (or `postgresql://`).

use crate::error::{Result, StoreError};

/// Where a store lives, as its URL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location<'a> {
    /// An SQLite file.
    Sqlite {
        /// The file.
        path: &'a str,
        /// `synchronous` pragma: `NORMAL` (default) or `FULL`.
        synchronous: &'static str,
    },
    /// A Postgres database (the URL as given, for sqlx).
    Postgres(&'a str),
}

/// Parse a storage URL.
pub(crate) fn parse(url: &str) -> Result<Location<'_>> {
    if let Some(rest) = url.strip_prefix("sqlite://") {
        let (path, query_string) = rest.split_once('?').unwrap_or((rest, ""));
        let mut synchronous = "NORMAL";
        for p in query_string.split('&').filter(|p| !p.is_empty()) {
            match p.to_ascii_lowercase().as_str() {
                "synchronous=full" => synchronous = "FULL",
                "synchronous=normal" => synchronous = "NORMAL",
                // sqlx's spelling of "create if missing", which is what happens anyway.
                "mode=rwc" => {}
                _ => return Err(StoreError::Url(url.to_string())),
            }
        }
        if path.is_empty() {
            return Err(StoreError::Url(url.to_string()));
        }
        return Ok(Location::Sqlite { path, synchronous });
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Location::Postgres(url));
    }
    Err(StoreError::Url(url.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_urls_take_a_path_and_a_sync_mode() {
        assert_eq!(
            parse("sqlite:///var/lib/tack/tack.db").unwrap(),
            Location::Sqlite {
                path: "/var/lib/tack/tack.db",
                synchronous: "NORMAL"
            }
        );
        assert_eq!(
            parse("sqlite://t.db?synchronous=FULL&mode=rwc").unwrap(),
            Location::Sqlite {
                path: "t.db",
                synchronous: "FULL"
            }
        );
        for bad in [
            "sqlite://",
            "sqlite://t.db?cache=shared",
            "sqlite://?synchronous=full",
        ] {
            assert!(matches!(parse(bad), Err(StoreError::Url(_))), "{bad}");
        }
    }

    #[test]
    fn postgres_urls_pass_through_and_others_are_refused() {
        let pg = "postgresql://tack@db:5432/tack";
        assert_eq!(parse(pg).unwrap(), Location::Postgres(pg));
        let e = parse("mysql://x").unwrap_err().to_string();
        assert!(e.contains("use sqlite://PATH or postgres://"), "{e}");
    }
}
