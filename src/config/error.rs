//! Load errors that point at the file, line, column and key, with a suggestion where one
//! helps. Shared by every YAML file vastwatch reads (config, scenarios, later rules).

use std::fmt;
use std::path::{Path, PathBuf};

/// A problem in a file the user wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is the file as a whole (e.g. it is missing).
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl FileError {
    pub fn whole_file(file: &Path, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_path_buf(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    pub fn at(file: &Path, location: Option<(u64, u64)>, message: impl Into<String>) -> Self {
        FileError {
            file: file.to_path_buf(),
            line: location.map(|(line, _)| line),
            column: location.map(|(_, column)| column),
            message: message.into(),
        }
    }

    /// Converts a YAML deserialisation error into a located error: the key on the failing
    /// line is named, and an unknown key gets the nearest known one as a suggestion.
    pub fn from_yaml(file: &Path, source: &str, error: &serde_saphyr::Error) -> Self {
        let location = error
            .location()
            .map(|location| (location.line(), location.column()));
        let mut message = error.without_snippet().to_string();
        if let Some((line, column)) = location {
            let suffix = format!(" at line {line}, column {column}");
            if let Some(stripped) = message.strip_suffix(&suffix) {
                message = stripped.to_string();
            }
        }
        if let Some(cut) = message.find(", set DuplicateKeyPolicy") {
            message.truncate(cut);
        }
        let message = match parse_unknown_field(&message) {
            Some((unknown, known)) => unknown_key_message(&unknown, &known),
            None if message.starts_with("missing field `") => {
                message.replacen("missing field", "missing key", 1)
            }
            None => match location.and_then(|(line, _)| key_on_line(source, line)) {
                Some(key) if !message.contains(&format!("`{key}`")) => {
                    format!("key `{key}`: {message}")
                }
                _ => message,
            },
        };
        FileError::at(file, location, message)
    }
}

/// The text of a file read as `bytes`; a file that is not UTF-8 is an error naming the line
/// and column of its first bad byte.
pub fn file_text<'b>(file: &Path, bytes: &'b [u8]) -> Result<&'b str, FileError> {
    std::str::from_utf8(bytes).map_err(|error| {
        let valid = &bytes[..error.valid_up_to()];
        let line_start = valid
            .iter()
            .rposition(|byte| *byte == b'\n')
            .map_or(0, |newline| newline + 1);
        let line = valid.iter().filter(|byte| **byte == b'\n').count() + 1;
        let column = String::from_utf8_lossy(&valid[line_start..])
            .chars()
            .count()
            + 1;
        FileError::at(
            file,
            Some((line as u64, column as u64)),
            "not UTF-8 text; save the file as UTF-8",
        )
    })
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// "unknown key `timeot`; did you mean `timeout`? (known keys: ...)"
pub fn unknown_key_message(unknown: &str, known: &[String]) -> String {
    let known_refs: Vec<&str> = known.iter().map(String::as_str).collect();
    match suggest(unknown, &known_refs) {
        Some(nearest) => format!("unknown key `{unknown}`; did you mean `{nearest}`?"),
        None => format!(
            "unknown key `{unknown}`; known keys here: {}",
            known_refs.join(", ")
        ),
    }
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), *candidate))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// Parses serde's "unknown field `x`, expected one of a, b" (with or without backticks
/// around the expected names, and "expected `a`" for a single one).
fn parse_unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (unknown, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected one of ")
        .or_else(|| rest.split_once("expected "))
        .map(|(_, list)| list)
        .unwrap_or("");
    let known = expected
        .split(',')
        .map(|name| name.trim().trim_matches('`').to_string())
        .filter(|name| !name.is_empty() && name != "there are no fields")
        .collect();
    Some((unknown.to_string(), known))
}

/// The mapping key written on a 1-based line, as in `  - name: x` → `name`.
fn key_on_line(source: &str, line: u64) -> Option<String> {
    let text = source
        .lines()
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let text = text.trim_start().trim_start_matches("- ").trim_start();
    let (key, _) = text.split_once(':')?;
    let key = key.trim().trim_matches(|c| c == '"' || c == '\'');
    let is_plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
    is_plain.then(|| key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_field_messages_become_suggestions() {
        let (unknown, known) =
            parse_unknown_field("unknown field `timeot`, expected one of timeout, concurrency")
                .expect("parses");
        assert_eq!(unknown, "timeot");
        assert_eq!(known, vec!["timeout", "concurrency"]);
        assert_eq!(
            unknown_key_message(&unknown, &known),
            "unknown key `timeot`; did you mean `timeout`?"
        );
        assert_eq!(
            unknown_key_message("zzz", &known),
            "unknown key `zzz`; known keys here: timeout, concurrency"
        );
    }

    #[test]
    fn the_key_on_a_line_is_found_in_maps_and_lists() {
        let source = "api:\n  concurrency: lots\ntargets:\n  - name: a\n";
        assert_eq!(key_on_line(source, 2).as_deref(), Some("concurrency"));
        assert_eq!(key_on_line(source, 4).as_deref(), Some("name"));
        assert_eq!(key_on_line(source, 9), None);
        assert_eq!(key_on_line(source, 0), None);
    }
}
