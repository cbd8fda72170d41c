//! A strict reader of the Prometheus text exposition format (version 0.0.4), so tests can
//! both check that `/metrics` is well formed and read values out of it. Any departure from
//! the grammar fails the test, naming the line.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition: the declared families and every sample.
#[derive(Debug, Default)]
pub struct Exposition {
    /// Family name → its `# TYPE`.
    pub types: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
}

impl Exposition {
    /// The value of the one sample named `name` whose labels are exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// Samples of `name`, in order.
    pub fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }

    /// Whether `name` is a declared family, or a sample name of one (a histogram's
    /// `_bucket`, `_sum` and `_count`).
    pub fn exposes(&self, name: &str) -> bool {
        self.types.contains_key(name) || self.family_of(name).is_some()
    }

    fn family_of(&self, sample_name: &str) -> Option<&str> {
        if self.types.contains_key(sample_name) {
            return Some(self.types.get_key_value(sample_name)?.0);
        }
        ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
            let base = sample_name.strip_suffix(suffix)?;
            let (name, kind) = self.types.get_key_value(base)?;
            (kind == "histogram" || kind == "summary").then_some(name.as_str())
        })
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Go's `strconv.ParseFloat` as Prometheus reads values: decimal, exponent, `NaN`, `+Inf`,
/// `-Inf`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => Ok(f64::NAN),
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ if text
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
            && !text.is_empty() =>
        {
            text.parse::<f64>()
                .map_err(|error| format!("`{text}` is not a number: {error}"))
        }
        _ => Err(format!("`{text}` is not a number")),
    }
}

/// Reads `{name="value",...}` from the start of `text`; returns the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let Some(mut rest) = text.strip_prefix('{') else {
        return Ok((labels, text));
    };
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let equals = rest.find('=').ok_or("a label without `=`")?;
        let name = &rest[..equals];
        if !is_label_name(name) {
            return Err(format!("`{name}` is not a valid label name"));
        }
        rest = rest[equals + 1..]
            .strip_prefix('"')
            .ok_or_else(|| format!("label `{name}`: the value is not quoted"))?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((index, '"')) => break index,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("label `{name}`: bad escape {other:?}")),
                },
                Some((_, '\n')) | None => return Err(format!("label `{name}`: unterminated")),
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(name.to_string(), value).is_some() {
            return Err(format!("label `{name}` appears twice"));
        }
        rest = &rest[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels must be separated by `,`".into());
        }
    }
}

/// Parses `text`, panicking with the line number and the rule broken.
pub fn parse(text: &str) -> Exposition {
    match try_parse(text) {
        Ok(exposition) => exposition,
        Err(message) => panic!("not valid Prometheus text format: {message}\n{text}"),
    }
}

fn try_parse(text: &str) -> Result<Exposition, String> {
    if !text.ends_with('\n') {
        return Err("the last line is not terminated by a newline".into());
    }
    let mut exposition = Exposition::default();
    let mut helped = BTreeSet::new();
    let mut series_seen = BTreeSet::new();
    // Samples of a family must be contiguous: once another family starts, it is closed.
    let mut closed: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut histogram_buckets: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
    for (index, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", index + 1);
        if line.is_empty() {
            return Err(at("empty line".into()));
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            let name = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("");
            if !matches!(keyword, "HELP" | "TYPE") {
                continue;
            }
            if !is_metric_name(name) {
                return Err(at(format!("`{name}` is not a valid metric name")));
            }
            if closed.contains(name) || current.as_deref() == Some(name) {
                return Err(at(format!("{keyword} of `{name}` after its samples")));
            }
            if keyword == "HELP" {
                if !helped.insert(name.to_string()) {
                    return Err(at(format!("second HELP for `{name}`")));
                }
                let mut chars = rest.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
                        return Err(at("HELP may escape only `\\\\` and `\\n`".into()));
                    }
                }
            } else {
                if !matches!(
                    rest,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(at(format!("unknown type `{rest}`")));
                }
                if exposition
                    .types
                    .insert(name.to_string(), rest.to_string())
                    .is_some()
                {
                    return Err(at(format!("second TYPE for `{name}`")));
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| at("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(at(format!("`{name}` is not a valid metric name")));
        }
        let (labels, rest) = parse_labels(&line[name_end..]).map_err(at)?;
        let mut fields = rest
            .strip_prefix(' ')
            .ok_or_else(|| at("no space before the value".into()))?
            .split(' ');
        let value = parse_value(fields.next().unwrap_or("")).map_err(at)?;
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| at(format!("`{timestamp}` is not a timestamp")))?;
        }
        if fields.next().is_some() {
            return Err(at("text after the timestamp".into()));
        }
        let family = exposition
            .family_of(name)
            .ok_or_else(|| at(format!("sample `{name}` has no TYPE line before it")))?
            .to_string();
        let kind = exposition.types[&family].clone();
        if kind == "counter" && !(name == family && name.ends_with("_total")) {
            return Err(at(
                "a counter's samples must be named `<family>` ending `_total`".into(),
            ));
        }
        if kind == "histogram" {
            if name == family {
                return Err(at(
                    "a histogram's samples end `_bucket`, `_sum` or `_count`".into(),
                ));
            }
            let mut series_labels = labels.clone();
            let le = series_labels.remove("le");
            let key = format!("{family}{series_labels:?}");
            match (name.strip_prefix(&family), le) {
                (Some("_bucket"), Some(le)) => {
                    let bound = parse_value(&le).map_err(at)?;
                    let buckets = histogram_buckets.entry(key).or_default();
                    if let Some((previous_bound, previous_count)) = buckets.last()
                        && (bound <= *previous_bound || value < *previous_count)
                    {
                        return Err(at(
                            "buckets must rise in `le` and never fall in count".into()
                        ));
                    }
                    buckets.push((bound, value));
                }
                (Some("_bucket"), None) => return Err(at("a bucket without `le`".into())),
                (Some("_count"), None) => {
                    let last = histogram_buckets.get(&key).and_then(|b| b.last());
                    if last != Some(&(f64::INFINITY, value)) {
                        return Err(at(
                            "`_count` must follow a `+Inf` bucket of the same count".into()
                        ));
                    }
                }
                (Some(_), None) => {}
                (_, Some(_)) => return Err(at("only buckets carry `le`".into())),
                (None, _) => unreachable!("family_of matched a suffix"),
            }
        }
        if current.as_deref() != Some(family.as_str()) {
            if closed.contains(&family) {
                return Err(at(format!("samples of `{family}` are not contiguous")));
            }
            if let Some(previous) = current.replace(family.clone()) {
                closed.insert(previous);
            }
        }
        if !series_seen.insert(format!("{name}{labels:?}")) {
            return Err(at("the same series twice".into()));
        }
        exposition.samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    Ok(exposition)
}

#[test]
fn the_reader_rejects_what_prometheus_would_reject() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\\\"\"} 3\n";
    assert_eq!(
        try_parse(good)
            .expect("valid")
            .value("a_total", &[("x", "1\"")]),
        Some(3.0)
    );
    for (bad, why) in [
        ("# TYPE a gauge\na 1", "newline"),
        ("a 1\n", "no TYPE"),
        ("# TYPE a gauge\na{x=1} 1\n", "not quoted"),
        ("# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n", "twice"),
        ("# TYPE a gauge\na{1x=\"1\"} 1\n", "label name"),
        ("# TYPE a gauge\na one\n", "not a number"),
        ("# TYPE a counter\na 1\n", "_total"),
        (
            "# TYPE a gauge\n# TYPE b gauge\na 1\nb 1\na{x=\"y\"} 1\n",
            "contiguous",
        ),
        ("# TYPE a gauge\na 1\n# HELP a Late.\n", "after its samples"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "never fall",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
            "_count",
        ),
        ("# TYPE a gauge\na 1\na 2\n", "same series"),
        ("# TYPE a gauge\n\na 1\n", "empty line"),
    ] {
        let error = try_parse(bad).expect_err(bad);
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}
