//! Parser and type-checker tests: which expressions compile to which type, and the exact
//! message and column of every error.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{CompileError, Compiled, Identifiers, MAX_DEPTH, MAX_LENGTH, Scope, Type, compile};

use Scope::{Fleet, Worker};

fn identifiers() -> Identifiers {
    Identifiers::standard()
        .with_fleet_number("desired_workers")
        .with_fleet_number("scale_delta")
}

fn vars() -> BTreeSet<String> {
    ["max_reqs", "target_util", "ready"]
        .into_iter()
        .map(String::from)
        .collect()
}

fn compiled(scope: Scope, text: &str) -> Result<Compiled, CompileError> {
    compile(text, scope, &identifiers(), &vars())
}

#[track_caller]
fn check_types(cases: &[(Scope, &str, Type)]) {
    for (scope, text, expected) in cases {
        match compiled(*scope, text) {
            Ok(compiled) => assert_eq!(
                compiled.result_type(),
                *expected,
                "type of {text:?} in {scope} scope"
            ),
            Err(error) => panic!("{text:?} in {scope} scope failed: {error}"),
        }
    }
}

#[track_caller]
fn check_errors(cases: &[(Scope, &str, usize, &str)]) {
    for (scope, text, column, message) in cases {
        match compiled(*scope, text) {
            Ok(_) => panic!("{text:?} in {scope} scope compiled, expected {message:?}"),
            Err(error) => assert_eq!(
                (error.column, error.message.as_str()),
                (*column, *message),
                "error for {text:?} in {scope} scope"
            ),
        }
    }
}

#[test]
fn literals_operators_and_identifiers_have_their_types() {
    check_types(&[
        (Worker, "0.9", Type::Number),
        (Worker, "1e3", Type::Number),
        (Worker, "2.5E-2", Type::Number),
        (Worker, ".5", Type::Number),
        (Worker, "10m", Type::Duration),
        (Worker, "1h30m", Type::Duration),
        (Worker, "\"running\"", Type::String),
        (Worker, "'running'", Type::String),
        (Worker, "true", Type::Bool),
        (Worker, "reliability", Type::Number),
        (Worker, "status", Type::String),
        (Worker, "age", Type::Number),
        (Worker, "utilization", Type::Number),
        (Worker, "loaded_at + disk_usage * dlperf", Type::Number),
        (Worker, "fleet.utilization", Type::Number),
        (Worker, "fleet.desired_workers - fleet.ready", Type::Number),
        (Worker, "max_reqs", Type::Number),
        (Worker, "extra(\"loop_lag_max\")", Type::Number),
        (Worker, "age > 10m", Type::Bool),
        (Worker, "10m + 30s", Type::Number),
        (Worker, "-10m", Type::Number),
        (Worker, "status == \"running\"", Type::Bool),
        (Worker, "status != 'loading'", Type::Bool),
        (Worker, "(perf > 1) == true", Type::Bool),
        (Worker, "not present(perf) or !false and true", Type::Bool),
        (Worker, "default(status, \"unknown\")", Type::String),
        (Worker, "default(perf > 1, false)", Type::Bool),
        (Worker, "default(perf, 0)", Type::Number),
        (Worker, "present(status)", Type::Bool),
        (
            Worker,
            "abs(-1) + least(1, 2) + greatest(1, 10m)",
            Type::Number,
        ),
        (Worker, "avg_over(reliability, 10m)", Type::Number),
        (
            Worker,
            "count_over(status == \"loading\", 10m)",
            Type::Number,
        ),
        (Worker, "predict(disk_usage, 1h, 4h)", Type::Number),
        (Worker, "predict(disk_usage, 1h, 600)", Type::Number),
        (Worker, "max_over(rate(cur_load, 5m), 1h)", Type::Number),
        (
            Fleet,
            "workers + ready + starting + inactive + failed",
            Type::Number,
        ),
        (
            Fleet,
            "load + new_load + load_rolling + reqs_working",
            Type::Number,
        ),
        (
            Fleet,
            "perf + cur_perf + measured_perf + utilization",
            Type::Number,
        ),
        (Fleet, "desired_workers - scale_delta", Type::Number),
        (Fleet, "fleet.workers", Type::Number),
        (
            Fleet,
            "count(status == \"loading\" && age > 10m) > 0",
            Type::Bool,
        ),
        (
            Fleet,
            "sum(perf) + avg(perf) + min(perf) + max(perf)",
            Type::Number,
        ),
        (
            Fleet,
            "median(reliability) + quantile(0.95, disk_usage)",
            Type::Number,
        ),
        (Fleet, "quantile(1, perf) + quantile(0, perf)", Type::Number),
        (
            Fleet,
            "slope(load_rolling, 10m) > slope(perf, 10m)",
            Type::Bool,
        ),
        (Fleet, "delta(workers, 1h) + rate(load, 5m)", Type::Number),
        (
            Fleet,
            "avg_over(count(reliability < 0.9), 30m)",
            Type::Number,
        ),
        (
            Fleet,
            "count(avg_over(reliability, 10m) < 0.9)",
            Type::Number,
        ),
        (Fleet, "reqs_working >= default(max_reqs, 4)", Type::Bool),
    ]);
}

#[test]
fn precedence_follows_c() {
    // Each pair must evaluate alike; types alone show the grouping of the boolean ones.
    check_types(&[
        (Worker, "1 + 2 * 3 > 6 && 1 < 2 || false", Type::Bool),
        (Worker, "!false && true", Type::Bool),
        (Worker, "- - 1", Type::Number),
        (Worker, "1 < 2 == true", Type::Bool),
    ]);
    check_errors(&[
        // `!` binds tighter than `>`: `(!perf) > 1`.
        (
            Worker,
            "!perf > 1",
            1,
            "`!` needs a boolean, found number; to negate a comparison, wrap it: `!(a > b)`",
        ),
        // Comparisons chain left to right, like C: `(1 < 2) < 3`.
        (
            Worker,
            "1 < 2 < 3",
            0,
            "`<` needs numbers, found boolean on the left",
        ),
    ]);
}

#[test]
fn lexical_errors_point_at_the_offending_character() {
    check_errors(&[
        (
            Worker,
            "status == \"running",
            10,
            "unterminated string; add the closing `\"`",
        ),
        (
            Worker,
            "status == 'run",
            10,
            "unterminated string; add the closing `'`",
        ),
        (
            Worker,
            "status == \"a\\qb\"",
            12,
            "unknown escape `\\q` in a string; use `\\\\`, `\\\"`, `\\'`, `\\n` or `\\t`",
        ),
        (
            Worker,
            "age > 10y",
            6,
            "bad duration: `10y` has unknown unit `y`; use ms, s, m, h or d",
        ),
        (
            Worker,
            "avg_over(perf, 10mins)",
            15,
            "bad duration: `10mins` has unknown unit `mins`; use ms, s, m, h or d",
        ),
        (Worker, "perf > 1.2.3", 7, "malformed number `1.2.3`"),
        (Worker, "perf > 1e999", 7, "number `1e999` is too large"),
        (
            Worker,
            "perf = 1",
            5,
            "`=` is not an operator; use `==` to compare",
        ),
        (
            Worker,
            "perf > 1 & true",
            9,
            "`&` is not an operator; use `&&` (or `and`)",
        ),
        (
            Worker,
            "perf > 1 | true",
            9,
            "`|` is not an operator; use `||` (or `or`)",
        ),
        (Worker, "perf # comment", 5, "unexpected character `#`"),
        (Worker, "perf > ½", 7, "unexpected character `½`"),
        // Columns count characters, not bytes.
        (
            Worker,
            "\"é\" == 1",
            4,
            "`==` needs two values of the same type, found string on the left and number on the right",
        ),
    ]);
}

#[test]
fn syntax_errors_say_what_was_expected() {
    check_errors(&[
        (Worker, "", 0, "empty expression"),
        (Worker, "   ", 0, "empty expression"),
        (
            Worker,
            "reliability <",
            13,
            "expected a value after `<`, found end of expression",
        ),
        (
            Worker,
            "reliability && && true",
            15,
            "expected a value after `&&`, found `&&`",
        ),
        (Worker, "* 2", 0, "expected a value, found `*`"),
        (
            Worker,
            "reliability 0.9",
            12,
            "expected an operator or the end of the expression, found `0.9`",
        ),
        (
            Worker,
            "reliability < 0.9)",
            17,
            "unmatched `)`; there is no `(` for it to close",
        ),
        (
            Worker,
            "(reliability < 0.9",
            18,
            "expected `)` to close `(`, found end of expression",
        ),
        (
            Worker,
            "avg_over(reliability 10m)",
            21,
            "expected `,` or `)` after argument 1 of `avg_over`, found `10m`",
        ),
        (
            Worker,
            "avg_over(reliability,",
            21,
            "expected a value after `,`, found end of expression",
        ),
        (Worker, "()", 1, "expected a value after `(`, found `)`"),
        (Worker, "fleet.", 5, "unexpected character `.`"),
    ]);
}

#[test]
fn names_that_do_not_resolve_get_suggestions() {
    check_errors(&[
        (
            Worker,
            "relability < 0.9",
            0,
            "unknown identifier `relability`; did you mean `reliability`?",
        ),
        (
            Worker,
            "perf > max_req",
            7,
            "unknown identifier `max_req`; did you mean `max_reqs`?",
        ),
        (
            Worker,
            "wokers > 1",
            0,
            "unknown identifier `wokers`; did you mean `fleet.workers`?",
        ),
        (
            Fleet,
            "wokers > 1",
            0,
            "unknown identifier `wokers`; did you mean `workers`?",
        ),
        (
            Fleet,
            "desired_worker > 1",
            0,
            "unknown identifier `desired_worker`; did you mean `desired_workers`?",
        ),
        (
            Worker,
            "zzz > 1",
            0,
            "unknown identifier `zzz`; if it is a target var, define it in the target's `vars`",
        ),
        (
            Worker,
            "perf > 1 AND true",
            9,
            "`AND` is not an operator; write `and` in lower case",
        ),
        (
            Worker,
            "avg_over(perf > 1 OR true, 10m) > 0",
            18,
            "`OR` is not an operator; write `or` in lower case",
        ),
        (
            Worker,
            "TRUE",
            0,
            "unknown identifier `TRUE`; write `true` in lower case",
        ),
        (
            Worker,
            "fleet.utilisation > 1",
            0,
            "unknown fleet identifier `fleet.utilisation`; did you mean `fleet.utilization`?",
        ),
        (
            Worker,
            "fleet.xyz > 1",
            0,
            "unknown fleet identifier `fleet.xyz`; fleet identifiers are workers, ready, starting, inactive, failed, load, new_load, load_rolling, perf, cur_perf, measured_perf, reqs_working, utilization, desired_workers, scale_delta",
        ),
        (
            Worker,
            "fleet > 1",
            0,
            "`fleet` needs a name after it, e.g. `fleet.utilization`",
        ),
        (
            Worker,
            "worker.perf > 1",
            0,
            "unknown identifier `worker.perf`; only `fleet.NAME` has a dot",
        ),
        (
            Worker,
            "avg_ovr(perf, 10m)",
            0,
            "unknown function `avg_ovr`; did you mean `avg_over`?",
        ),
        (
            Worker,
            "frobnicate(perf)",
            0,
            "unknown function `frobnicate`",
        ),
        (
            Worker,
            "reliability(1)",
            0,
            "`reliability` is not a function",
        ),
        (Worker, "max_reqs(1)", 0, "`max_reqs` is not a function"),
        (
            Worker,
            "avg_over > 1",
            0,
            "`avg_over` is a function; call it as `avg_over(x, d)`",
        ),
    ]);
}

#[test]
fn identifiers_of_the_other_scope_say_how_to_reach_them() {
    check_errors(&[
        (
            Worker,
            "workers > 1",
            0,
            "`workers` is a fleet identifier; in worker scope write `fleet.workers`",
        ),
        (
            Worker,
            "desired_workers > 1",
            0,
            "`desired_workers` is a fleet identifier; in worker scope write `fleet.desired_workers`",
        ),
        (
            Fleet,
            "reliability < 0.9",
            0,
            "`reliability` is a worker identifier; in fleet scope aggregate it over the workers, e.g. `avg(reliability)`",
        ),
        (
            Fleet,
            "status == \"running\"",
            0,
            "`status` is a worker identifier; in fleet scope aggregate it over the workers, e.g. `count(status == \"running\")`",
        ),
        (
            Worker,
            "count(perf > 1) > 0",
            0,
            "`count` aggregates over a fleet's workers, so it needs fleet scope",
        ),
        (
            Fleet,
            "count(sum(perf) > 1)",
            6,
            "`sum` cannot be used inside another aggregate",
        ),
        (
            Fleet,
            "sum(workers)",
            4,
            "`workers` is a fleet identifier; in worker scope write `fleet.workers`",
        ),
        (
            Fleet,
            "extra(\"x\") > 1",
            0,
            "`extra` reads one worker's field, so it needs worker scope; in fleet scope aggregate it, e.g. `max(extra(\"loop_lag_max\"))`",
        ),
    ]);
    // `fleet.NAME` works in fleet scope too, and inside an aggregate.
    check_types(&[
        (Fleet, "sum(perf / fleet.perf)", Type::Number),
        (Fleet, "fleet.ready", Type::Number),
    ]);
}

#[test]
fn a_var_named_like_an_identifier_of_the_other_scope_is_the_var() {
    // `ready` is a var here: in worker scope the fleet's `ready` is `fleet.ready`.
    let compiled = compiled(Worker, "ready > 1").expect("compiles");
    assert_eq!(compiled.vars(), ["ready"]);
    // In fleet scope the built-in wins.
    let compiled = compiled_fleet("ready > 1");
    assert!(compiled.vars().is_empty());
}

fn compiled_fleet(text: &str) -> Compiled {
    compiled(Fleet, text).expect("compiles")
}

#[test]
fn type_errors_name_the_operator_and_the_types() {
    check_errors(&[
        (
            Worker,
            "perf && true",
            0,
            "`&&` needs booleans, found number on the left",
        ),
        (
            Worker,
            "true and perf",
            9,
            "`and` needs booleans, found number on the right",
        ),
        (
            Worker,
            "status || true",
            0,
            "`||` needs booleans, found string on the left",
        ),
        (
            Worker,
            "status + 1",
            0,
            "`+` needs numbers, found string on the left",
        ),
        (
            Worker,
            "1 / (perf > 1)",
            4,
            "`/` needs numbers, found boolean on the right",
        ),
        (
            Worker,
            "status < \"z\"",
            0,
            "`<` needs numbers, found string on the left; strings support only `==` and `!=`",
        ),
        (
            Worker,
            "1 >= status",
            5,
            "`>=` needs numbers, found string on the right; strings support only `==` and `!=`",
        ),
        (
            Worker,
            "status == 1",
            7,
            "`==` needs two values of the same type, found string on the left and number on the right",
        ),
        (
            Worker,
            "true != 10m",
            5,
            "`!=` needs two values of the same type, found boolean on the left and duration on the right",
        ),
        (Worker, "-status", 1, "`-` needs a number, found string"),
        (
            Worker,
            "not status",
            4,
            "`not` needs a boolean, found string",
        ),
        (
            Worker,
            "abs(status)",
            4,
            "`abs` needs a number as argument 1 (x), found string",
        ),
        (
            Worker,
            "least(1, true)",
            9,
            "`least` needs a number as argument 2 (b), found boolean",
        ),
        (
            Worker,
            "default(perf, \"none\")",
            14,
            "`default` needs its fallback to have the type of its value, found number as argument 1 (x) and string as argument 2 (v)",
        ),
        (
            Worker,
            "avg_over(status, 10m)",
            9,
            "`avg_over` needs a number as argument 1 (x), found string",
        ),
        (
            Worker,
            "count_over(perf, 10m)",
            11,
            "`count_over` needs a boolean as argument 1 (pred), found number",
        ),
        (
            Worker,
            "avg_over(perf, 600)",
            15,
            "`avg_over` needs a duration such as `10m` as argument 2 (d), found number",
        ),
        (
            Worker,
            "avg_over(perf, 5m + 5m)",
            15,
            "`avg_over` needs a duration such as `10m` as argument 2 (d), found number",
        ),
        (
            Worker,
            "avg_over(relability, 600)",
            9,
            "unknown identifier `relability`; did you mean `reliability`?",
        ),
        (
            Worker,
            "avg_over(perf, max_reqs)",
            15,
            "`avg_over` needs a duration such as `10m` as argument 2 (d), found number",
        ),
        (
            Worker,
            "predict(perf, 10m, status)",
            19,
            "`predict` needs a number as argument 3 (horizon), found string",
        ),
        (
            Fleet,
            "count(perf)",
            6,
            "`count` needs a boolean as argument 1 (pred), found number",
        ),
        (
            Fleet,
            "quantile(1.5, perf)",
            9,
            "`quantile` needs a number literal between 0 and 1 as argument 1 (q), e.g. `0.95`",
        ),
        (
            Fleet,
            "quantile(workers / 10, perf)",
            9,
            "`quantile` needs a number literal between 0 and 1 as argument 1 (q), e.g. `0.95`",
        ),
        (
            Worker,
            "extra(name)",
            6,
            "`extra` needs a string literal as argument 1 (name), e.g. `extra(\"loop_lag_max\")`",
        ),
    ]);
}

#[test]
fn wrong_argument_counts_show_the_signature() {
    check_errors(&[
        (Worker, "abs()", 0, "`abs` takes 1 argument (x), found 0"),
        (
            Worker,
            "abs(1, 2)",
            0,
            "`abs` takes 1 argument (x), found 2",
        ),
        (
            Worker,
            "avg_over(perf)",
            0,
            "`avg_over` takes 2 arguments (x, d), found 1",
        ),
        (
            Worker,
            "perf > 1 && predict(perf, 10m)",
            12,
            "`predict` takes 3 arguments (x, d, horizon), found 2",
        ),
        (
            Fleet,
            "min(perf, 2)",
            0,
            "`min` takes 1 argument (x), found 2; for the smaller of two values use `least(a, b)`",
        ),
        (
            Fleet,
            "max(perf, 2)",
            0,
            "`max` takes 1 argument (x), found 2; for the larger of two values use `greatest(a, b)`",
        ),
    ]);
}

#[test]
fn hostile_input_is_refused_before_it_can_exhaust_the_stack() {
    let deep_parens = format!("{}1{}", "(".repeat(100), ")".repeat(100));
    let deep_not = format!("{}true", "!".repeat(100));
    let deep_minus = format!("{}1", "-".repeat(100));
    let long_chain = vec!["1"; 100].join(" + ");
    let deep_calls = format!("{}1{}", "abs(".repeat(100), ")".repeat(100));
    let too_long = "1".repeat(MAX_LENGTH + 1);
    let too_deep = format!("expression is nested too deeply (more than {MAX_DEPTH} levels)");
    check_errors(&[
        (Worker, &deep_parens, MAX_DEPTH, &too_deep),
        (Worker, &deep_not, MAX_DEPTH, &too_deep),
        (Worker, &deep_minus, MAX_DEPTH, &too_deep),
        (Worker, &long_chain, 4 * (MAX_DEPTH - 1) + 2, &too_deep),
        (Worker, &deep_calls, 4 * MAX_DEPTH, &too_deep),
        (
            Worker,
            &too_long,
            MAX_LENGTH,
            "expression is too long (4097 characters; at most 4096)",
        ),
        (
            Worker,
            "avg_over(avg_over(avg_over(perf, 1m), 1m), 1m)",
            18,
            "window functions can be nested at most 2 deep; `avg_over` is one too many",
        ),
    ]);
    let longest_chain = vec!["1"; MAX_DEPTH].join(" + ");
    check_types(&[(Worker, &longest_chain, Type::Number)]);
}

#[test]
fn compiled_expressions_report_what_the_engine_needs() {
    let compiled = compiled(
        Worker,
        "reliability < default(target_util, 0.9) && avg_over(reliability, 10m) < 0.92 && fleet.ready > max_reqs && max_over(delta(age, 5m), 1h) > target_util",
    )
    .expect("compiles");
    assert_eq!(compiled.result_type(), Type::Bool);
    assert_eq!(compiled.scope(), Worker);
    assert_eq!(compiled.vars(), ["target_util", "max_reqs"]);
    assert_eq!(
        compiled.identifiers(),
        ["age", "fleet.ready", "reliability"]
    );
    assert_eq!(compiled.lookback(), Duration::from_secs(65 * 60));
    assert!(compiled.has_value());

    let plain = compiled_fleet("utilization > 0.9");
    assert_eq!(plain.lookback(), Duration::ZERO);
    assert!(!compiled_fleet("present(utilization)").has_value());
}

#[test]
fn identifier_listing_covers_both_scopes() {
    let identifiers = identifiers();
    let fleet = identifiers.names(Fleet);
    assert!(fleet.contains(&"desired_workers".to_string()));
    assert_eq!(fleet.len(), 15);
    let worker = identifiers.names(Worker);
    assert!(worker.contains(&"fleet.scale_delta".to_string()));
    assert!(worker.contains(&"status".to_string()));
    assert_eq!(worker.len(), 11 + 4 + 15);
    // Every listed name compiles as an expression of its scope.
    for (scope, names) in [(Fleet, fleet), (Worker, worker)] {
        for name in names {
            compiled(scope, &name).unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }
    assert_eq!(identifiers.fleet_extra_slot("scale_delta"), Some(1));
}

#[test]
#[should_panic(expected = "`perf` is already an identifier")]
fn registering_a_taken_name_is_a_programming_error() {
    let _ = Identifiers::standard().with_fleet_number("perf");
}

#[test]
fn compile_errors_display_a_one_based_column() {
    let error = compiled(Worker, "perf >").expect_err("fails");
    assert_eq!(
        error.to_string(),
        "expected a value after `>`, found end of expression (column 7)"
    );
}

/// docs/rules.md: every example rule compiles in its scope, and every sample error is
/// what the compiler says.
#[test]
fn the_language_reference_matches_the_compiler() {
    let doc = include_str!("../../../docs/rules.md");
    let doc_vars: BTreeSet<String> = ["max_reqs", "target_util"]
        .into_iter()
        .map(String::from)
        .collect();
    let mut examples = 0;
    for block in doc.split("```yaml\n").skip(1) {
        let block = &block[..block.find("```").expect("closed block")];
        let field = |key: &str| {
            block
                .lines()
                .find_map(|line| line.strip_prefix(key))
                .map(|value| value.split("  #").next().unwrap_or(value).trim())
        };
        let Some(expr) = field("expr: ") else {
            continue;
        };
        let scope = match field("scope: ") {
            Some("fleet") => Fleet,
            _ => Worker,
        };
        let compiled = compile(expr, scope, &identifiers(), &doc_vars)
            .unwrap_or_else(|error| panic!("docs example {expr:?}: {error}"));
        assert_eq!(compiled.result_type(), Type::Bool, "{expr}");
        examples += 1;
    }
    assert!(examples >= 9, "found only {examples} examples");

    let errors = doc
        .split("```text\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the sample errors");
    let lines: Vec<&str> = errors.lines().collect();
    assert!(lines.len() >= 12);
    for pair in lines.chunks(2) {
        let error =
            compile(pair[0], Worker, &identifiers(), &doc_vars).expect_err("a sample error");
        assert_eq!(
            format!("  column {}: {}", error.column + 1, error.message),
            pair[1],
            "{}",
            pair[0]
        );
    }
}

#[test]
fn compiled_expressions_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Compiled>();
    shareable::<super::Snapshot>();
}
