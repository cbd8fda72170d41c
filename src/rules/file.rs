//! Rule files (SPEC §6.1): YAML rules become validated [`Rule`]s once, at load. Every
//! mistake names the file, line and column — inside the expression text too — and an
//! unknown identifier gets a did-you-mean suggestion.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_saphyr::Spanned;

use super::expr::{self, CompileError, Compiled, Identifiers, Scope, Type};
use super::labels::LabelSet;
use super::lifecycle::Timing;
use super::template::{TemplateError, Templates};
use crate::config::{FileError, RESERVED_LABELS, file_text, is_identifier, suggest};
use crate::time::parse_duration;

/// Most rules one rule set may hold, over all its files, so a runaway generator cannot
/// exhaust memory.
pub const MAX_RULES: usize = 10_000;
/// Most rules one rule file may hold.
pub const MAX_RULES_PER_FILE: usize = 1_000;

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A target as the rule loader needs it: its name and the vars it defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetVars {
    pub name: String,
    pub vars: BTreeSet<String>,
}

/// One validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The `alert` name.
    pub name: String,
    pub scope: Scope,
    pub expr_text: String,
    pub expr: Compiled,
    pub recover: Option<Compiled>,
    pub timing: Timing,
    pub severity: Severity,
    /// The targets it applies to; `None` means every target.
    pub targets: Option<BTreeSet<String>>,
    pub labels: LabelSet,
    /// Annotation names with their template keys in [`RuleSet::templates`].
    pub annotations: Vec<(String, String)>,
    /// Where the rule starts, for messages.
    pub file: PathBuf,
    pub line: u64,
    /// Vars the rule's expressions read.
    pub vars_used: BTreeSet<String>,
    /// The rule file's var defaults; a target's vars override them.
    pub var_defaults: BTreeMap<String, f64>,
    /// The longest history window the rule reads.
    pub longest_window: Duration,
}

impl Rule {
    /// The vars this rule sees on a target: the file's defaults overridden by the target's.
    pub fn vars_for(&self, target_vars: &BTreeMap<String, f64>) -> BTreeMap<String, f64> {
        let mut vars = self.var_defaults.clone();
        vars.extend(
            target_vars
                .iter()
                .map(|(name, value)| (name.clone(), *value)),
        );
        vars
    }

    pub fn applies_to(&self, target: &str) -> bool {
        self.targets
            .as_ref()
            .is_none_or(|targets| targets.contains(target))
    }
}

/// Every loaded rule, plus the annotation templates.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub templates: Templates,
    /// The files read, with how many rules each held.
    pub files: Vec<(PathBuf, usize)>,
}

impl RuleSet {
    pub fn empty() -> Self {
        RuleSet {
            rules: Vec::new(),
            templates: Templates::new(),
            files: Vec::new(),
        }
    }

    /// The longest window any rule reads, so history can be trimmed to it.
    pub fn longest_window(&self) -> Duration {
        self.rules
            .iter()
            .map(|rule| rule.longest_window)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Reads and validates rule files in order. Rule names may repeat across files only
    /// with different targets or scopes; an identical duplicate is an error.
    pub fn load(
        files: &[PathBuf],
        identifiers: &Identifiers,
        targets: &[TargetVars],
    ) -> Result<RuleSet, FileError> {
        RuleSet::load_files(files, identifiers, targets, true)
    }

    /// Like [`RuleSet::load`] for `vastwatch test`, where the test's one target stands in for
    /// the real ones: `targets:` may name targets that do not exist here.
    pub fn load_for_tests(
        files: &[PathBuf],
        identifiers: &Identifiers,
        targets: &[TargetVars],
    ) -> Result<RuleSet, FileError> {
        RuleSet::load_files(files, identifiers, targets, false)
    }

    fn load_files(
        files: &[PathBuf],
        identifiers: &Identifiers,
        targets: &[TargetVars],
        strict_targets: bool,
    ) -> Result<RuleSet, FileError> {
        let mut set = RuleSet::empty();
        for file in files {
            let bytes = std::fs::read(file).map_err(|error| {
                FileError::whole_file(file, format!("cannot read rule file: {error}"))
            })?;
            let before = set.rules.len();
            set.parse_into(
                file,
                file_text(file, &bytes)?,
                identifiers,
                targets,
                strict_targets,
            )?;
            set.files.push((file.clone(), set.rules.len() - before));
        }
        Ok(set)
    }

    /// Parses one rule file's text and appends its rules.
    pub fn parse_into(
        &mut self,
        file: &Path,
        text: &str,
        identifiers: &Identifiers,
        targets: &[TargetVars],
        strict_targets: bool,
    ) -> Result<(), FileError> {
        let raw: RawRuleFile =
            serde_saphyr::from_str(text).map_err(|e| FileError::from_yaml(file, text, &e))?;
        let empty = BTreeMap::new();
        let defaults = raw.vars.as_ref().map_or(&empty, |vars| &vars.value);
        for (name, value) in defaults {
            if !is_identifier(name) || !value.is_finite() {
                return Err(FileError::at(
                    file,
                    raw.vars.as_ref().map(location),
                    format!("key `vars`: `{name}` needs an identifier name and a finite number"),
                ));
            }
        }
        let loader = Loader {
            file,
            source: text,
            identifiers,
            targets,
            strict_targets,
            defaults,
        };
        if let Some(extra) = raw.rules.get(MAX_RULES_PER_FILE) {
            return Err(FileError::at(
                file,
                Some(location(extra)),
                format!("more than {MAX_RULES_PER_FILE} rules in one file; split the file"),
            ));
        }
        for raw_rule in raw.rules {
            if self.rules.len() >= MAX_RULES {
                return Err(FileError::at(
                    file,
                    Some(location(&raw_rule)),
                    format!("more than {MAX_RULES} rules in all; split the work across instances"),
                ));
            }
            let rule = loader.rule(&raw_rule, &mut self.templates)?;
            if let Some(existing) = self
                .rules
                .iter()
                .find(|r| r.name == rule.name && r.scope == rule.scope && r.targets == rule.targets)
            {
                return Err(FileError::at(
                    file,
                    Some(location(&raw_rule.value.alert)),
                    format!(
                        "rule `{}` is already defined at {}:{} for the same targets",
                        rule.name,
                        existing.file.display(),
                        existing.line
                    ),
                ));
            }
            self.rules.push(rule);
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRuleFile {
    /// Defaults for vars the file's rules read; a target's own var overrides its default.
    vars: Option<Spanned<BTreeMap<String, f64>>>,
    rules: Vec<Spanned<RawRule>>,
}

/// One rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    alert: Spanned<String>,
    scope: Spanned<String>,
    expr: Spanned<String>,
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    keep_firing_for: Option<Spanned<String>>,
    recover: Option<Spanned<String>>,
    severity: Option<Spanned<String>>,
    targets: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, Spanned<String>>,
}

fn location<T>(spanned: &Spanned<T>) -> (u64, u64) {
    (spanned.referenced.line(), spanned.referenced.column())
}

struct Loader<'a> {
    file: &'a Path,
    source: &'a str,
    identifiers: &'a Identifiers,
    targets: &'a [TargetVars],
    strict_targets: bool,
    defaults: &'a BTreeMap<String, f64>,
}

impl Loader<'_> {
    fn error<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> FileError {
        FileError::at(self.file, Some(location(at)), message)
    }

    fn rule(&self, raw: &Spanned<RawRule>, templates: &mut Templates) -> Result<Rule, FileError> {
        let rule = &raw.value;
        let name = rule.alert.value.trim().to_string();
        if !is_identifier(&name) {
            return Err(self.error(
                &rule.alert,
                format!("key `alert`: `{name}` must match [a-zA-Z_][a-zA-Z0-9_]*"),
            ));
        }
        let scope = match rule.scope.value.as_str() {
            "worker" => Scope::Worker,
            "fleet" => Scope::Fleet,
            other => {
                return Err(self.error(
                    &rule.scope,
                    format!("key `scope`: `{other}` is not a scope; use `worker` or `fleet`"),
                ));
            }
        };
        let targets = self.targets_of(rule)?;
        let vars: BTreeSet<String> = self
            .targets
            .iter()
            .filter(|target| {
                targets
                    .as_ref()
                    .is_none_or(|names| names.contains(&target.name))
            })
            .flat_map(|target| target.vars.iter().cloned())
            .chain(self.defaults.keys().cloned())
            .collect();
        let expr = self.expression(&rule.expr, "expr", scope, &vars)?;
        let recover = rule
            .recover
            .as_ref()
            .map(|text| self.expression(text, "recover", scope, &vars))
            .transpose()?;
        let timing = Timing {
            for_: self.duration(rule.for_.as_ref(), "for")?,
            keep_firing_for: self.duration(rule.keep_firing_for.as_ref(), "keep_firing_for")?,
        };
        let severity = match &rule.severity {
            None => Severity::Warning,
            Some(text) => Severity::parse(&text.value).ok_or_else(|| {
                self.error(
                    text,
                    format!(
                        "key `severity`: `{}` is not a severity; use info, warning or critical",
                        text.value
                    ),
                )
            })?,
        };
        for label in rule.labels.keys() {
            if RESERVED_LABELS.contains(&label.as_str()) {
                return Err(self.error(
                    raw,
                    format!("rule `{name}`: label `{label}` is reserved; vastwatch sets it itself"),
                ));
            }
            if !is_identifier(label) {
                return Err(self.error(
                    raw,
                    format!(
                        "rule `{name}`: label name `{label}` must match [a-zA-Z_][a-zA-Z0-9_]*"
                    ),
                ));
            }
        }
        let mut annotations = Vec::with_capacity(rule.annotations.len());
        for (annotation, text) in &rule.annotations {
            let key = templates
                .add(
                    &name,
                    annotation,
                    &text.value,
                    scope,
                    self.identifiers,
                    &vars,
                )
                .map_err(|error| self.template_error(annotation, text, error))?;
            annotations.push((annotation.clone(), key));
        }
        let mut vars_used: BTreeSet<String> = expr.vars().iter().cloned().collect();
        let mut longest_window = expr.lookback();
        if let Some(recover) = &recover {
            vars_used.extend(recover.vars().iter().cloned());
            longest_window = longest_window.max(recover.lookback());
        }
        Ok(Rule {
            name,
            scope,
            expr_text: rule.expr.value.clone(),
            expr,
            recover,
            timing,
            severity,
            targets,
            labels: rule.labels.clone(),
            annotations,
            file: self.file.to_path_buf(),
            line: raw.referenced.line(),
            vars_used,
            var_defaults: self.defaults.clone(),
            longest_window,
        })
    }

    fn targets_of(&self, rule: &RawRule) -> Result<Option<BTreeSet<String>>, FileError> {
        let Some(targets) = &rule.targets else {
            return Ok(None);
        };
        let known: Vec<&str> = self.targets.iter().map(|t| t.name.as_str()).collect();
        for name in &targets.value {
            if self.strict_targets && !known.contains(&name.as_str()) {
                let hint = match suggest(name, &known) {
                    Some(nearest) => format!("; did you mean `{nearest}`?"),
                    None => String::new(),
                };
                return Err(self.error(
                    targets,
                    format!("key `targets`: no target is named `{name}`{hint}"),
                ));
            }
        }
        Ok(Some(targets.value.iter().cloned().collect()))
    }

    fn expression(
        &self,
        text: &Spanned<String>,
        key: &str,
        scope: Scope,
        vars: &BTreeSet<String>,
    ) -> Result<Compiled, FileError> {
        if text.value.chars().count() > expr::MAX_LENGTH {
            return Err(self.error(
                text,
                format!("key `{key}`: longer than {} characters", expr::MAX_LENGTH),
            ));
        }
        let compiled = expr::compile(&text.value, scope, self.identifiers, vars)
            .map_err(|error| self.expression_error(text, key, &error))?;
        if compiled.result_type() != Type::Bool {
            return Err(self.error(
                text,
                format!(
                    "key `{key}`: must be a condition (true or false), not {}",
                    compiled.result_type().describe()
                ),
            ));
        }
        Ok(compiled)
    }

    /// Points at the character inside the expression text where the problem is.
    fn expression_error(
        &self,
        text: &Spanned<String>,
        key: &str,
        error: &CompileError,
    ) -> FileError {
        let (line, column) =
            position_in_scalar(self.source, location(text), &text.value, error.column);
        FileError::at(
            self.file,
            Some((line, column)),
            format!("key `{key}`: {}", error.message),
        )
    }

    fn template_error(
        &self,
        annotation: &str,
        text: &Spanned<String>,
        error: TemplateError,
    ) -> FileError {
        let (line, column) = match error.offset {
            Some(offset) => position_in_scalar(self.source, location(text), &text.value, offset),
            None => location(text),
        };
        FileError::at(
            self.file,
            Some((line, column)),
            format!("annotation `{annotation}`: {}", error.message),
        )
    }

    fn duration(&self, text: Option<&Spanned<String>>, key: &str) -> Result<Duration, FileError> {
        match text {
            None => Ok(Duration::ZERO),
            Some(text) => parse_duration(&text.value)
                .map_err(|error| self.error(text, format!("key `{key}`: {error}"))),
        }
    }
}

/// Maps a character offset inside a YAML scalar's value to a file line and column. Plain
/// and quoted scalars on one line map exactly; block scalars (`|`, `>`) map line by line.
pub fn position_in_scalar(
    source: &str,
    (line, column): (u64, u64),
    value: &str,
    offset: usize,
) -> (u64, u64) {
    let Some(source_line) = source.lines().nth(line.saturating_sub(1) as usize) else {
        return (line, column);
    };
    let start: String = source_line
        .chars()
        .skip(column.saturating_sub(1) as usize)
        .collect();
    let before: String = value.chars().take(offset).collect();
    let lines_before = before.matches('\n').count() as u64;
    let after_last_newline = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64;
    match start.chars().next() {
        // The location is the block indicator: the content starts on the next line.
        Some('|') | Some('>') => {
            let content_line = line + 1 + lines_before;
            let indent = source
                .lines()
                .nth(line as usize)
                .map_or(0, |l| l.chars().take_while(|c| *c == ' ').count())
                as u64;
            (content_line, indent + after_last_newline + 1)
        }
        Some('"') | Some('\'') if lines_before == 0 => (line, column + 1 + after_last_newline),
        // Plain scalars, and block content whose location is its first character: later
        // lines keep the first line's indentation.
        _ if lines_before == 0 => (line, column + after_last_newline),
        _ => (line + lines_before, column + after_last_newline),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Vec<TargetVars> {
        vec![TargetVars {
            name: "prod".to_string(),
            vars: BTreeSet::from(["max_reqs".to_string()]),
        }]
    }

    fn load(text: &str) -> Result<RuleSet, String> {
        let mut set = RuleSet::empty();
        set.parse_into(
            Path::new("rules.yaml"),
            text,
            &crate::rules::identifiers(),
            &targets(),
            true,
        )
        .map(|()| set)
        .map_err(|error| error.to_string())
    }

    fn rule(body: &str) -> String {
        format!("rules:\n  - alert: A\n    scope: worker\n{body}")
    }

    #[test]
    fn mistakes_point_at_file_line_and_column_even_inside_expressions() {
        let mut mismatches = Vec::new();
        for (text, expected) in [
            (
                rule("    expr: relability < 0.9\n"),
                "rules.yaml:4:11: key `expr`: unknown identifier `relability`; did you mean `reliability`?",
            ),
            (
                rule("    expr: \"perf > 1 && relability < 0.9\"\n"),
                "rules.yaml:4:24: key `expr`: unknown identifier `relability`; did you mean `reliability`?",
            ),
            (
                rule("    expr: |\n      perf > 1 &&\n        relability < 0.9\n"),
                "rules.yaml:6:9: key `expr`: unknown identifier `relability`; did you mean `reliability`?",
            ),
            (
                rule("    expr: reliability\n"),
                "rules.yaml:4:11: key `expr`: must be a condition (true or false), not a number",
            ),
            (
                rule("    expr: perf > 1\n    recover: perf > \n"),
                "rules.yaml:5:20: key `recover`: expected a value after `>`, found end of expression",
            ),
            (
                rule("    expr: perf > 1\n    for: 5 minutes\n"),
                "rules.yaml:5:10: key `for`: `5 minutes` is not a duration; write a number and a unit: ms, s, m, h or d (e.g. 30s)",
            ),
            (
                rule("    expr: perf > 1\n    severity: urgent\n"),
                "rules.yaml:5:15: key `severity`: `urgent` is not a severity; use info, warning or critical",
            ),
            (
                rule("    expr: perf > 1\n    labels: {severity: high}\n"),
                "rules.yaml:2:5: rule `A`: label `severity` is reserved; vastwatch sets it itself",
            ),
            (
                rule("    expr: perf > 1\n    targets: [prd]\n"),
                "rules.yaml:5:14: key `targets`: no target is named `prd`; did you mean `prod`?",
            ),
            (
                rule("    expr: perf > 1\n    annotations:\n      summary: \"{{ relability }}\"\n"),
                "rules.yaml:6:20: annotation `summary`: unknown identifier `relability` in template; did you mean `reliability`?",
            ),
            (
                rule("    expr: perf > 1\n    annotations:\n      summary: \"{{ perf \"\n"),
                "rules.yaml:6:20: annotation `summary`: bad template: unexpected end of input, expected end of variable block",
            ),
            (
                rule("    expr: perf > 1\n    expresion: x\n"),
                "rules.yaml:5:5: unknown key `expresion`; did you mean `expr`?",
            ),
            (
                "rules:\n  - alert: A\n    scope: cluster\n    expr: perf > 1\n".to_string(),
                "rules.yaml:3:12: key `scope`: `cluster` is not a scope; use `worker` or `fleet`",
            ),
            (
                "rules:\n  - alert: A\n    scope: worker\n    expr: ready > 1\n".to_string(),
                "rules.yaml:4:11: key `expr`: `ready` is a fleet identifier; in worker scope write `fleet.ready`",
            ),
            (
                "rules:\n  - alert: A\n    scope: fleet\n    expr: ready > 1\n  - alert: A\n    scope: fleet\n    expr: ready > 2\n".to_string(),
                "rules.yaml:5:12: rule `A` is already defined at rules.yaml:2 for the same targets",
            ),
        ] {
            let actual = load(&text).err().unwrap_or_else(|| "loaded".to_string());
            if actual != expected {
                mismatches.push(format!("{text}\n  expected {expected}\n  actual   {actual}"));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }

    #[test]
    fn a_valid_rule_carries_its_timing_labels_vars_and_window() {
        let set = load(
            "vars: {max_reqs: 4, spare: 1}\nrules:\n  - alert: Saturated\n    scope: worker\n    \
             expr: reqs_working >= max_reqs && avg_over(reqs_working, 15m) > 1\n    for: 2m\n    \
             keep_firing_for: 1m\n    severity: critical\n    labels: {team: ml}\n    \
             annotations: {summary: \"{{ worker_id }} has {{ reqs_working }}\"}\n",
        )
        .expect("valid");
        let rule = &set.rules[0];
        assert_eq!(rule.name, "Saturated");
        assert_eq!(rule.scope, Scope::Worker);
        assert_eq!(rule.timing.for_, Duration::from_secs(120));
        assert_eq!(rule.timing.keep_firing_for, Duration::from_secs(60));
        assert_eq!(rule.severity, Severity::Critical);
        assert_eq!(rule.labels["team"], "ml");
        assert_eq!(rule.line, 3);
        assert_eq!(rule.vars_used, BTreeSet::from(["max_reqs".to_string()]));
        assert_eq!(rule.longest_window, Duration::from_secs(900));
        assert_eq!(set.longest_window(), Duration::from_secs(900));
        let vars = rule.vars_for(&BTreeMap::from([("max_reqs".to_string(), 8.0)]));
        assert_eq!(
            vars,
            BTreeMap::from([("max_reqs".to_string(), 8.0), ("spare".to_string(), 1.0)])
        );
        assert!(rule.applies_to("anything"));
    }

    #[test]
    fn the_shipped_rules_load() {
        let set = load(include_str!("../../rules/vast.yaml")).expect("shipped rules are valid");
        let names: Vec<&str> = set.rules.iter().map(|rule| rule.name.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "WorkerLowReliability",
                "WorkerSaturated",
                "FleetSaturated",
                "LoadOutpacingPerf",
                "FleetOverTargetUtilization",
                "FleetIdle",
                "WorkerStuckStarting",
                "WorkerFailed",
                "WorkerDiskUsageHigh",
            ]
        );
        assert!(set.rules.iter().all(|rule| !rule.annotations.is_empty()));
    }

    /// A rule file of `count` worker rules named `{prefix}0`, `{prefix}1`, ...; rule `i`
    /// starts on line `2 + 3 * i`.
    fn many_rules(prefix: &str, count: usize) -> String {
        let mut text = String::from("rules:\n");
        for index in 0..count {
            text.push_str(&format!(
                "  - alert: {prefix}{index}\n    scope: worker\n    expr: perf > 1\n"
            ));
        }
        text
    }

    #[test]
    fn a_file_holds_at_most_the_per_file_limit_of_rules() {
        let set = load(&many_rules("R", MAX_RULES_PER_FILE)).expect("at the limit");
        assert_eq!(set.rules.len(), MAX_RULES_PER_FILE);
        assert_eq!(
            load(&many_rules("R", MAX_RULES_PER_FILE + 1)).map(|set| set.rules.len()),
            Err(format!(
                "rules.yaml:{}:5: more than 1000 rules in one file; split the file",
                2 + 3 * MAX_RULES_PER_FILE
            ))
        );
    }

    #[test]
    fn a_rule_set_holds_at_most_the_overall_limit_of_rules() {
        let files = MAX_RULES / MAX_RULES_PER_FILE;
        let mut set = RuleSet::empty();
        let parse = |set: &mut RuleSet, index: usize, count: usize| {
            set.parse_into(
                Path::new(&format!("rules-{index}.yaml")),
                &many_rules(&format!("F{index}R"), count),
                &crate::rules::identifiers(),
                &targets(),
                true,
            )
            .map_err(|error| error.to_string())
        };
        for index in 0..files {
            parse(&mut set, index, MAX_RULES_PER_FILE).expect("under the limit");
        }
        assert_eq!(set.rules.len(), MAX_RULES);
        assert_eq!(
            parse(&mut set, files, 1),
            Err(format!(
                "rules-{files}.yaml:2:5: more than 10000 rules in all; split the work across instances"
            ))
        );
    }

    #[test]
    fn an_expression_is_at_most_the_length_limit() {
        let longest = format!("status == \"{}\"", "x".repeat(expr::MAX_LENGTH - 12));
        assert_eq!(longest.chars().count(), expr::MAX_LENGTH);
        let set = load(&rule(&format!("    expr: '{longest}'\n"))).expect("at the limit");
        assert_eq!(set.rules[0].expr_text, longest);
        let too_long = format!("status == \"{}\"", "x".repeat(expr::MAX_LENGTH - 11));
        assert_eq!(
            load(&rule(&format!("    expr: '{too_long}'\n"))).map(|_| ()),
            Err("rules.yaml:4:11: key `expr`: longer than 4096 characters".to_string())
        );
    }
}
