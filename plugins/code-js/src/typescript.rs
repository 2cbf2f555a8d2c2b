//! TypeScript programs: types stripped with oxc (parser, TypeScript
//! transform, code generator) inside the sandbox, and the places errors
//! name mapped back to the program's own lines through the generator's
//! source map.

use oxc::allocator::Allocator;
use oxc::codegen::{Codegen, CodegenOptions};
use oxc::parser::Parser;
use oxc::semantic::SemanticBuilder;
use oxc::span::SourceType;
use oxc::transformer::{TransformOptions, Transformer};
use std::path::Path;

/// A program with its types stripped.
pub(crate) struct Stripped {
    /// The JavaScript to run.
    pub(crate) code: String,
    /// The source map's tokens: (line, column) of `code` -> (line, column)
    /// of the program, all from 0, sorted.
    places: Vec<((u32, u32), (u32, u32))>,
}

/// `source` (the wrapped program) as JavaScript, or why it is not
/// TypeScript either: the first error with its line and column.
pub(crate) fn strip(source: &str) -> Result<Stripped, String> {
    let allocator = Allocator::default();
    let parsed = Parser::new(&allocator, source, SourceType::ts()).parse();
    if let Some(e) = parsed.diagnostics.first() {
        return Err(format!("SyntaxError: {}{}", e.message, place(source, e)));
    }
    let mut program = parsed.program;
    let scoping = SemanticBuilder::new()
        .build(&program)
        .semantic
        .into_scoping();
    let options = TransformOptions::default();
    let done = Transformer::new(&allocator, Path::new("program.ts"), &options)
        .build_with_scoping(scoping, &mut program);
    if let Some(e) = done.diagnostics.first() {
        return Err(format!("SyntaxError: {}{}", e.message, place(source, e)));
    }
    let out = Codegen::new()
        .with_options(CodegenOptions {
            source_map_path: Some("program.ts".into()),
            ..CodegenOptions::default()
        })
        .build(&program);
    let map = out
        .map
        .ok_or_else(|| "SyntaxError: no source map for the stripped program".to_string())?;
    let mut places: Vec<_> = map
        .get_tokens()
        .map(|t| {
            (
                (t.get_dst_line(), t.get_dst_col()),
                (t.get_src_line(), t.get_src_col()),
            )
        })
        .collect();
    places.sort_unstable();
    Ok(Stripped {
        code: out.code,
        places,
    })
}

/// ` (line L, column C)` of an error's first label in `source`.
fn place(source: &str, e: &oxc::diagnostics::OxcDiagnostic) -> String {
    let Some(offset) = e.labels.first().map(|l| l.offset()) else {
        return String::new();
    };
    let before = &source[..(offset as usize).min(source.len())];
    let line = before.matches('\n').count() + 1;
    let mut column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    if line == 1 {
        // The program's first line follows the wrapper's opening.
        column = column.saturating_sub(crate::WRAPPER_OPENING.len()).max(1);
    }
    format!(" (line {line}, column {column})")
}

impl Stripped {
    /// `text` with each `<eval>:LINE:COLUMN` of the stripped code replaced
    /// by the program's own line and column.
    pub(crate) fn map_places(&self, text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("<eval>:") {
            out.push_str(&rest[..at + 7]);
            rest = &rest[at + 7..];
            let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let n = digits(rest);
            let line: Option<u32> = rest[..n].parse().ok();
            let after = &rest[n..];
            let (column, used) = match after.strip_prefix(':') {
                Some(c) => {
                    let m = digits(c);
                    (c[..m].parse::<u32>().ok(), n + 1 + m)
                }
                None => (None, n),
            };
            let original = line
                .zip(column)
                .and_then(|(l, c)| self.original(l.saturating_sub(1), c.saturating_sub(1)));
            if let Some((l, c)) = original {
                out.push_str(&format!("{}:{}", l + 1, c + 1));
                rest = &rest[used..];
            }
        }
        out.push_str(rest);
        out
    }

    /// The program's place of `code`'s (line, column), from the nearest
    /// token at or before it on that line.
    fn original(&self, line: u32, column: u32) -> Option<(u32, u32)> {
        let i = self
            .places
            .partition_point(|(dst, _)| *dst <= (line, column));
        let (dst, src) = self.places.get(i.checked_sub(1)?)?;
        (dst.0 == line).then_some(*src)
    }
}
