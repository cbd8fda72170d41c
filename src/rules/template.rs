//! Annotation templates (Jinja syntax, rendered with minijinja). Checked at load: a syntax
//! error or an identifier the rule's scope does not have is an error with a position and a
//! suggestion. Rendering never fails an evaluation: a template that breaks at run time
//! renders as its source with the error appended.

use std::collections::BTreeSet;

use minijinja::{Environment, UndefinedBehavior, Value};

use super::expr::{Identifiers, Scope};
use crate::config::suggest;

/// Most template instructions one render may run.
const FUEL: u64 = 50_000;
/// Longest rendered annotation, in bytes; longer output is cut.
pub const MAX_RENDERED_LEN: usize = 8 * 1024;

/// Names every template may use besides the scope's identifiers and the target's vars.
const COMMON_NAMES: [&str; 4] = ["target", "labels", "value", "recommendation"];
/// Names only worker-scope templates may use.
const WORKER_NAMES: [&str; 2] = ["worker_id", "fleet"];

/// A template problem, with the character offset inside the template text when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: Option<usize>,
    pub message: String,
}

/// Every annotation template of a rule set.
#[derive(Debug, Clone)]
pub struct Templates {
    environment: Environment<'static>,
    count: usize,
}

impl Default for Templates {
    fn default() -> Self {
        Templates::new()
    }
}

impl Templates {
    pub fn new() -> Self {
        let mut environment = Environment::new();
        environment.set_undefined_behavior(UndefinedBehavior::Strict);
        environment.set_fuel(Some(FUEL));
        Templates {
            environment,
            count: 0,
        }
    }

    /// Checks and stores a template; returns the key to render it by.
    pub fn add(
        &mut self,
        rule: &str,
        annotation: &str,
        source: &str,
        scope: Scope,
        identifiers: &Identifiers,
        vars: &BTreeSet<String>,
    ) -> Result<String, TemplateError> {
        let key = format!("{rule}#{}/{annotation}", self.count);
        self.environment
            .add_template_owned(key.clone(), source.to_string())
            .map_err(|error| TemplateError {
                offset: error.range().map(|range| char_offset(source, range.start)),
                message: format!("bad template: {}", error.detail().unwrap_or("syntax error")),
            })?;
        let template = self
            .environment
            .get_template(&key)
            .map_err(|error| TemplateError {
                offset: None,
                message: error.to_string(),
            })?;
        let mut allowed: Vec<String> = identifiers.names(scope);
        allowed.extend(vars.iter().cloned());
        allowed.extend(COMMON_NAMES.iter().map(|name| name.to_string()));
        if scope == Scope::Worker {
            allowed.extend(WORKER_NAMES.iter().map(|name| name.to_string()));
        }
        let mut used: Vec<String> = template.undeclared_variables(false).into_iter().collect();
        used.sort();
        for name in used {
            if allowed.contains(&name) {
                continue;
            }
            let candidates: Vec<&str> = allowed.iter().map(String::as_str).collect();
            let hint = match suggest(&name, &candidates) {
                Some(nearest) => format!("; did you mean `{nearest}`?"),
                None => String::new(),
            };
            return Err(TemplateError {
                offset: source.find(&name).map(|byte| char_offset(source, byte)),
                message: format!("unknown identifier `{name}` in template{hint}"),
            });
        }
        self.count += 1;
        Ok(key)
    }

    /// Renders a template; a failure renders the source with the error, never panics.
    pub fn render(&self, key: &str, context: &Value) -> String {
        let rendered = self
            .environment
            .get_template(key)
            .and_then(|template| template.render(context));
        let mut text = match rendered {
            Ok(text) => text,
            Err(error) => {
                let source = self
                    .environment
                    .get_template(key)
                    .map(|template| template.source().to_string())
                    .unwrap_or_default();
                format!(
                    "{source} (template error: {})",
                    error.detail().unwrap_or("failed")
                )
            }
        };
        if text.len() > MAX_RENDERED_LEN {
            let mut cut = MAX_RENDERED_LEN;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

fn char_offset(source: &str, byte: usize) -> usize {
    source
        .char_indices()
        .take_while(|(index, _)| *index < byte)
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(source: &str) -> String {
        let mut templates = Templates::new();
        let key = templates
            .add(
                "A",
                "summary",
                source,
                Scope::Fleet,
                &Identifiers::standard(),
                &BTreeSet::new(),
            )
            .expect("valid template");
        templates.render(&key, &Value::from(()))
    }

    #[test]
    fn rendered_output_is_cut_past_the_limit() {
        let at_limit = render(&format!("{{{{ 'x' * {MAX_RENDERED_LEN} }}}}"));
        assert_eq!(at_limit, "x".repeat(MAX_RENDERED_LEN));
        let past_limit = render(&format!("{{{{ 'x' * {} }}}}", MAX_RENDERED_LEN + 1));
        assert_eq!(past_limit, format!("{}…", "x".repeat(MAX_RENDERED_LEN)));
        let multibyte = render(&format!("{{{{ 'é' * {MAX_RENDERED_LEN} }}}}"));
        assert_eq!(multibyte, format!("{}…", "é".repeat(MAX_RENDERED_LEN / 2)));
    }
}
