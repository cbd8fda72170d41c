//! A small checker of JSON bodies against docs/openapi.yaml: types, required properties,
//! enums, `oneOf`, `additionalProperties`, `minItems`, RFC 3339 `date-time`, resolving
//! local `$ref`s. Enough of JSON Schema for the document we write, and strict about it:
//! a keyword the checker does not know fails the check rather than passing silently.

use serde_json::Value;

pub struct Spec(Value);

impl Spec {
    pub fn load() -> Spec {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.yaml");
        let text = std::fs::read_to_string(path).expect("docs/openapi.yaml is readable");
        Spec(serde_saphyr::from_str(&text).expect("docs/openapi.yaml is YAML"))
    }

    /// Every `(path, method)` the document describes.
    pub fn operations(&self) -> Vec<(String, String)> {
        let mut operations = Vec::new();
        for (path, item) in self.0["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                operations.push((path.clone(), method.clone()));
            }
        }
        operations
    }

    /// Checks a real answer of `method path` against the documented response of its
    /// status; returns every mismatch, each with the JSON pointer where it is.
    pub fn check(&self, path: &str, method: &str, status: u16, body: &Value) -> Vec<String> {
        let operation = &self.0["paths"][path][method];
        if operation.is_null() {
            return vec![format!("{method} {path} is not documented")];
        }
        let response = self.resolve(&operation["responses"][status.to_string()]);
        if response.is_null() {
            return vec![format!(
                "{method} {path}: status {status} is not documented"
            )];
        }
        let schema = &response["content"]["application/json"]["schema"];
        let mut errors = Vec::new();
        self.validate(schema, body, "", &mut errors);
        errors
            .into_iter()
            .map(|error| format!("{method} {path} {status}: {error}"))
            .collect()
    }

    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => {
                let pointer = reference.strip_prefix('#').expect("local $ref");
                self.resolve(self.0.pointer(pointer).unwrap_or(&Value::Null))
            }
            None => node,
        }
    }

    fn validate(&self, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(object) = schema.as_object() else {
            errors.push(format!("{at}: the schema is not an object"));
            return;
        };
        for keyword in object.keys() {
            if !KNOWN_KEYWORDS.contains(&keyword.as_str()) {
                errors.push(format!("{at}: the checker does not know `{keyword}`"));
            }
        }
        if schema
            .get("description")
            .is_some_and(|text| !text.is_string())
        {
            errors.push(format!("{at}: the schema's description is not text"));
        }
        if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
            let matching = options
                .iter()
                .filter(|option| {
                    let mut option_errors = Vec::new();
                    self.validate(option, value, at, &mut option_errors);
                    option_errors.is_empty()
                })
                .count();
            if matching != 1 {
                errors.push(format!("{at}: {matching} of oneOf's schemas match {value}"));
            }
        }
        if let Some(types) = schema.get("type") {
            let types: Vec<&str> = match types {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|kind| has_type(value, kind)) {
                errors.push(format!("{at}: {value} is not of type {types:?}"));
                return;
            }
        }
        if let Some(choices) = schema.get("enum").and_then(Value::as_array)
            && !choices.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {choices:?}"));
        }
        if schema.get("format").and_then(Value::as_str) == Some("date-time")
            && let Some(text) = value.as_str()
            && chrono::DateTime::parse_from_rfc3339(text).is_err()
        {
            errors.push(format!("{at}: `{text}` is not an RFC 3339 time"));
        }
        if let Some(items) = value.as_array() {
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(format!("{at}: fewer than {min} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter().enumerate() {
                    self.validate(item_schema, item, &format!("{at}/{index}"), errors);
                }
            }
        }
        if let Some(fields) = value.as_object() {
            let properties = schema.get("properties").and_then(Value::as_object);
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                if !fields.contains_key(required) {
                    errors.push(format!("{at}: required property `{required}` is missing"));
                }
            }
            for (name, field) in fields {
                let field_at = format!("{at}/{name}");
                match (
                    properties.and_then(|p| p.get(name)),
                    schema.get("additionalProperties"),
                ) {
                    (Some(property), _) => self.validate(property, field, &field_at, errors),
                    (None, Some(Value::Bool(false))) => {
                        errors.push(format!("{field_at}: property is not documented"))
                    }
                    (None, Some(extra @ Value::Object(_))) => {
                        self.validate(extra, field, &field_at, errors)
                    }
                    // A documented object with listed properties must list them all, so
                    // the document cannot fall behind the code unnoticed.
                    (None, _) if properties.is_some() => {
                        errors.push(format!("{field_at}: property is not documented"))
                    }
                    (None, _) => {}
                }
            }
        }
    }
}

const KNOWN_KEYWORDS: [&str; 12] = [
    "type",
    "required",
    "properties",
    "items",
    "enum",
    "oneOf",
    "additionalProperties",
    "format",
    "description",
    "minItems",
    "default",
    "$ref",
];

fn has_type(value: &Value, kind: &str) -> bool {
    match kind {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

#[test]
fn the_checker_catches_what_it_claims_to() {
    let spec = Spec::load();
    let good = serde_json::json!({"status": "ok"});
    assert!(spec.check("/healthz", "get", 200, &good).is_empty());
    for (body, expected) in [
        (
            serde_json::json!({}),
            "required property `status` is missing",
        ),
        (serde_json::json!({"status": "bad"}), "is not one of"),
        (serde_json::json!({"status": 1}), "is not of type"),
        (
            serde_json::json!({"status": "ok", "more": 1}),
            "/more: property is not documented",
        ),
    ] {
        let errors = spec.check("/healthz", "get", 200, &body);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{body}: {errors:?}"
        );
    }
    assert!(!spec.check("/healthz", "get", 418, &good).is_empty());
    let silence = serde_json::json!({"id": "x", "state": "active", "matchers": ["a=b"],
        "startsAt": "yesterday", "endsAt": "2026-01-01T00:00:00Z", "comment": "", "createdBy": "me"});
    let errors = spec.check("/api/v1/silences", "post", 201, &silence);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("/startsAt: `yesterday` is not an RFC 3339 time")),
        "{errors:?}"
    );
}
