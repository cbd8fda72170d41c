//! Rules: the expression language, rule files, the alert lifecycle and the evaluation
//! engine. **Invariant: nothing here knows about SQL, HTTP or tokio**; the daemon feeds
//! polls in and stores what comes out.

pub mod engine;
pub mod expr;
pub mod file;
pub mod labels;
pub mod lifecycle;
pub mod template;
pub mod unittest;

pub use engine::{
    AlertChange, AlertRecord, Engine, Evaluation, TARGET_DOWN, TargetInfo, identifiers,
};
pub use file::{Rule, RuleSet, Severity, TargetVars};
pub use labels::LabelSet;
pub use lifecycle::{AlertState, Lifecycle, Transition};

/// The rule files shipped in `rules/`, embedded so the demo needs nothing but the binary.
pub const SHIPPED_RULES: &[(&str, &str)] = &[("vast.yaml", include_str!("../../rules/vast.yaml"))];
