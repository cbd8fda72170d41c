//! Replays every harness scenario through the advisor and both baselines and prints the
//! results tables in Markdown (docs/advisor.md, "Evidence").
//!
//! `cargo run --release --example advisor_eval`

use vastwatch::advise::harness;

/// How many noise seeds the noisy scenario is replayed with for the spread table.
const SEEDS: u64 = 30;

fn main() {
    let started = std::time::Instant::now();
    let rows = harness::run_all();
    print!("{}", harness::markdown(&rows));
    println!();
    print!(
        "{}",
        harness::markdown_seeds(&harness::noisy_over_seeds(SEEDS))
    );
    eprintln!(
        "({} runs in {:.1?})",
        rows.len() + 3 * SEEDS as usize,
        started.elapsed()
    );
}
