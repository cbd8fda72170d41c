//! The bodies of the fuzz targets (`fuzz/`, docs/reliability.md#fuzzing): each feeds
//! arbitrary bytes to one pure entry point, exactly as the loader or poller would, and
//! ignores whether it succeeded; what must never happen is a panic, a hang or unbounded
//! memory. The test that replays the committed corpora (`tests/it/fuzz_corpus.rs`) calls
//! these same functions, so CI checks every corpus file without an instrumented build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::config::{Config, Files, file_text};
use crate::poll::{decode_worker_list, describe_error_body};
use crate::rules::engine::identifiers;
use crate::rules::expr::{Scope, compile};
use crate::rules::unittest::{expand_numbers, expand_words, parse_test_file};
use crate::rules::{RuleSet, TargetVars};
use crate::sim::Scenario;

/// One fuzz target: its name (the file under `fuzz/fuzz_targets/` and the folder under
/// `fuzz/corpus/`) and its body.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every fuzz target.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "rule_expr",
        run: rule_expr,
    },
    Target {
        name: "load_files",
        run: load_files,
    },
    Target {
        name: "vast_response",
        run: vast_response,
    },
    Target {
        name: "scenario",
        run: scenario,
    },
    Target {
        name: "series_notation",
        run: series_notation,
    },
];

/// Vars every fuzzed rule may read, as a target's `vars:` would define them.
const VARS: [&str; 2] = ["max_reqs", "min_ready"];

/// The rule expression parser and type checker: the text compiled in both scopes, with the
/// engine's identifiers and two vars.
pub fn rule_expr(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let vars: BTreeSet<String> = VARS.iter().map(|name| name.to_string()).collect();
    let identifiers = identifiers();
    for scope in [Scope::Worker, Scope::Fleet] {
        let _ = compile(text, scope, &identifiers, &vars);
    }
}

/// Config and rule file loading: the bytes loaded both as a config file and as a rule file,
/// after the same UTF-8 check the loaders make. `rules:` entries resolve against an empty
/// file system, so nothing outside the input is read.
pub fn load_files(data: &[u8]) {
    let env: BTreeMap<String, String> = [("VAST_API_KEY", "fuzz-key")]
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let _ = Config::from_bytes(Path::new("fuzz/vastwatch.yaml"), data, &env, &NoFiles);
    let file = Path::new("fuzz/rules.yaml");
    let Ok(text) = file_text(file, data) else {
        return;
    };
    let targets = [TargetVars {
        name: "llm".to_string(),
        vars: VARS.iter().map(|name| name.to_string()).collect(),
    }];
    let _ = RuleSet::empty().parse_into(file, text, &identifiers(), &targets, true);
}

/// The Vast response decoder: a 2xx body decoded, and an error body described.
pub fn vast_response(data: &[u8]) {
    let _ = decode_worker_list(data);
    let _ = describe_error_body(data);
}

/// The simulator's scenario loader, on text read as `Scenario::load` reads a file.
pub fn scenario(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Scenario::from_yaml(text, "fuzz.yaml");
    }
}

/// The promtool series notation: the bytes expanded as a number series and as a word series,
/// and parsed as a whole `vastwatch test` file.
pub fn series_notation(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = expand_numbers(text);
        let _ = expand_words(text);
    }
    let _ = parse_test_file(Path::new("fuzz/rules_test.yaml"), data);
}

/// A file system with no files, whose globs match nothing.
struct NoFiles;

impl Files for NoFiles {
    fn is_file(&self, _path: &Path) -> bool {
        false
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, glob::PatternError> {
        glob::Pattern::new(pattern).map(|_| Vec::new())
    }
}
