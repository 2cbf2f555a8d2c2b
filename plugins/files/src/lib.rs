//! `files`: list, read, write and search files inside the granted directory.
//!
//! Every path is relative to the directory granted at `/workspace`. The tool
//! refuses absolute paths and `..` itself (for a clear message), and the sandbox
//! refuses any escape regardless (symlinks out of the directory included).

use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};
use tack_sdk::{Annotations, CallContext, JsonSchema, ToolError, Toolbox};

const ROOT: &str = "/workspace";

fn resolve(field: &str, rel: &str) -> Result<PathBuf, ToolError> {
    let p = Path::new(rel);
    if p.is_absolute() {
        return Err(ToolError::invalid(
            field,
            format!(
                "`{rel}` is absolute; give a path relative to the workspace, like `docs/readme.md`"
            ),
        ));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(ToolError::invalid(
            field,
            format!("`{rel}` contains `..`; paths must stay inside the workspace"),
        ));
    }
    Ok(Path::new(ROOT).join(p))
}

fn display(path: &Path) -> String {
    path.strip_prefix(ROOT)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Arguments of `list`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListInput {
    /// Directory relative to the workspace root; `.` for the root.
    #[serde(default = "dot")]
    path: String,
}

fn dot() -> String {
    ".".into()
}

/// One directory entry.
#[derive(Serialize, JsonSchema)]
struct Entry {
    /// Entry name.
    name: String,
    /// `file`, `dir` or `symlink`.
    kind: String,
    /// Size in bytes (files only).
    size: Option<u64>,
}

/// The entries of a directory, sorted by name.
#[derive(Serialize, JsonSchema)]
struct ListOutput {
    /// Entries.
    entries: Vec<Entry>,
}

fn list(input: ListInput, _: &CallContext) -> Result<ListOutput, ToolError> {
    let dir = resolve("/path", &input.path)?;
    let rd = std::fs::read_dir(&dir).map_err(|e| ToolError::io(&input.path, e))?;
    let mut entries = Vec::new();
    for e in rd {
        let e = e.map_err(|e| ToolError::io(&input.path, e))?;
        let ft = e.file_type().map_err(|e| ToolError::io(&input.path, e))?;
        let kind = if ft.is_symlink() {
            "symlink"
        } else if ft.is_dir() {
            "dir"
        } else {
            "file"
        };
        let size = if ft.is_file() {
            e.metadata().ok().map(|m| m.len())
        } else {
            None
        };
        entries.push(Entry {
            name: e.file_name().to_string_lossy().into_owned(),
            kind: kind.into(),
            size,
        });
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ListOutput { entries })
}

/// Arguments of `read`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ReadInput {
    /// File relative to the workspace root.
    path: String,
    /// Most bytes to return (default 262144).
    #[serde(default = "default_max")]
    max_bytes: u64,
}

fn default_max() -> u64 {
    256 * 1024
}

/// A file's content.
#[derive(Serialize, JsonSchema)]
struct ReadOutput {
    /// The path read.
    path: String,
    /// Content as UTF-8 (invalid sequences replaced).
    content: String,
    /// Full size of the file in bytes.
    size: u64,
    /// Whether `content` was cut at `max_bytes`.
    truncated: bool,
}

fn read(input: ReadInput, _: &CallContext) -> Result<ReadOutput, ToolError> {
    use std::io::Read;
    let path = resolve("/path", &input.path)?;
    let file = std::fs::File::open(&path).map_err(|e| ToolError::io(&input.path, e))?;
    let size = file
        .metadata()
        .map_err(|e| ToolError::io(&input.path, e))?
        .len();
    let mut buf = Vec::new();
    file.take(input.max_bytes)
        .read_to_end(&mut buf)
        .map_err(|e| ToolError::io(&input.path, e))?;
    Ok(ReadOutput {
        path: input.path,
        content: String::from_utf8_lossy(&buf).into_owned(),
        truncated: (buf.len() as u64) < size,
        size,
    })
}

/// Arguments of `write`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct WriteInput {
    /// File relative to the workspace root.
    path: String,
    /// The new content.
    content: String,
    /// Create missing parent directories.
    #[serde(default)]
    create_dirs: bool,
    /// Replace the file if it exists (default true); false makes an existing file an error.
    #[serde(default = "yes")]
    overwrite: bool,
}

fn yes() -> bool {
    true
}

/// What was written.
#[derive(Serialize, JsonSchema)]
struct WriteOutput {
    /// The path written.
    path: String,
    /// Bytes written.
    bytes: u64,
    /// Whether an existing file was replaced.
    replaced: bool,
}

fn write(input: WriteInput, _: &CallContext) -> Result<WriteOutput, ToolError> {
    let path = resolve("/path", &input.path)?;
    if input.create_dirs
        && let Some(parent) = path.parent()
    {
        std::fs::create_dir_all(parent).map_err(|e| ToolError::io(&input.path, e))?;
    }
    let existed = path.exists();
    if existed && !input.overwrite {
        return Err(ToolError::conflict(format!(
            "{} exists; pass \"overwrite\": true to replace it",
            input.path
        )));
    }
    // Write a sibling temp file and rename it over the target, so a failure midway
    // never leaves a half-written file.
    let tmp = path.with_file_name(format!(
        ".{}.tack-tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    std::fs::write(&tmp, input.content.as_bytes()).map_err(|e| ToolError::io(&input.path, e))?;
    if let Err(e) = std::fs::rename(&tmp, &path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(ToolError::io(&input.path, e));
    }
    Ok(WriteOutput {
        path: input.path,
        bytes: input.content.len() as u64,
        replaced: existed,
    })
}

/// Arguments of `search`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchInput {
    /// Text to look for (case-sensitive substring).
    pattern: String,
    /// Directory to search, relative to the workspace root.
    #[serde(default = "dot")]
    path: String,
    /// Stop after this many matches (default 100).
    #[serde(default = "default_results")]
    max_results: usize,
}

fn default_results() -> usize {
    100
}

/// One matching line.
#[derive(Serialize, JsonSchema)]
struct Match {
    /// File, relative to the workspace root.
    path: String,
    /// Line number, from 1.
    line: usize,
    /// The line's text (cut at 500 characters).
    text: String,
}

/// Matching lines, in path order.
#[derive(Serialize, JsonSchema)]
struct SearchOutput {
    /// Matches.
    matches: Vec<Match>,
    /// Whether the search stopped at `max_results`.
    truncated: bool,
}

fn search(input: SearchInput, _: &CallContext) -> Result<SearchOutput, ToolError> {
    if input.pattern.is_empty() {
        return Err(ToolError::invalid(
            "/pattern",
            "the pattern is empty; give some text to look for",
        ));
    }
    let root = resolve("/path", &input.path)?;
    // Collect every regular file first, then scan in path order.
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| ToolError::io(display(&dir), e))?;
        for e in entries.filter_map(Result::ok) {
            match e.file_type() {
                Ok(ft) if ft.is_dir() => stack.push(e.path()),
                Ok(ft) if ft.is_file() => files.push(e.path()),
                _ => {}
            }
        }
    }
    files.sort();
    let mut matches = Vec::new();
    let mut truncated = false;
    'scan: for path in files {
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            if line.contains(&input.pattern) {
                if matches.len() == input.max_results {
                    truncated = true;
                    break 'scan;
                }
                matches.push(Match {
                    path: display(&path),
                    line: i + 1,
                    text: line.chars().take(500).collect(),
                });
            }
        }
    }
    Ok(SearchOutput { matches, truncated })
}

fn tools() -> Toolbox {
    Toolbox::new()
        .tool("list", "List the entries of a directory in the workspace.", Annotations::read_only(), list)
        .tool("read", "Read a text file from the workspace.", Annotations::read_only(), read)
        .tool(
            "write",
            "Write a text file in the workspace, replacing it if it exists (unless overwrite is false).",
            Annotations::destructive(),
            write,
        )
        .tool(
            "search",
            "Find lines containing a text in the files under a workspace directory.",
            Annotations::read_only(),
            search,
        )
}

tack_sdk::export_tools!(tools());
tack_sdk::manifest!("tack.toml");
