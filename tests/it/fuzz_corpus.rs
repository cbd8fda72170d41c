//! Replays every committed fuzz corpus file (`fuzz/corpus/TARGET/`) through the fuzz
//! targets' bodies (`vastwatch::fuzz`), so CI checks, without an instrumented build, that
//! nothing the fuzzer once reached panics now.

use std::path::{Path, PathBuf};

use vastwatch::fuzz::TARGETS;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_committed_corpus_file_replays_without_a_panic() {
    for target in &TARGETS {
        let folder = fuzz_dir().join("corpus").join(target.name);
        let entries = std::fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("{}: {error}", folder.display()));
        let mut replayed = 0;
        for entry in entries {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).expect("corpus file");
            (target.run)(&data);
            replayed += 1;
        }
        assert!(replayed > 0, "{}: empty corpus", folder.display());
    }
}

#[test]
fn every_fuzz_target_file_has_a_shared_body() {
    let mut files: Vec<String> = std::fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|entry| {
            let path = entry.expect("target file").path();
            path.file_stem()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    let mut names: Vec<String> = TARGETS.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(files, names);
}
