//! Alert identity: label sets and their fingerprint, computed as Alertmanager does (FNV-1a
//! 64 over the sorted label names and values, each followed by a 0xff separator) so that
//! fingerprints match across tools and versions.

use std::collections::BTreeMap;

/// An alert's identity labels, sorted by name.
pub type LabelSet = BTreeMap<String, String>;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

fn fnv_add(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The 64-bit signature of a label set (Prometheus `LabelsToSignature`).
pub fn signature(labels: &LabelSet) -> u64 {
    labels.iter().fold(FNV_OFFSET, |hash, (name, value)| {
        let hash = fnv_add(hash, name.as_bytes());
        let hash = fnv_add(hash, &[SEPARATOR]);
        let hash = fnv_add(hash, value.as_bytes());
        fnv_add(hash, &[SEPARATOR])
    })
}

/// 16 lower-case hex digits of [`signature`]: the alert's fingerprint.
pub fn fingerprint(labels: &LabelSet) -> String {
    format!("{:016x}", signature(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> LabelSet {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn signatures_match_prometheus_reference_values() {
        assert_eq!(signature(&LabelSet::new()), 14695981039346656037);
        assert_eq!(
            signature(&labels(&[
                ("name", "garland, briggs"),
                ("fear", "love is not enough")
            ])),
            5799056148416392346
        );
    }

    #[test]
    fn fingerprints_are_sixteen_lower_case_hex_digits_independent_of_insertion_order() {
        let one = labels(&[("alertname", "X"), ("target", "prod")]);
        let other = labels(&[("target", "prod"), ("alertname", "X")]);
        assert_eq!(fingerprint(&one), fingerprint(&other));
        assert_eq!(fingerprint(&LabelSet::new()), "cbf29ce484222325");
        // Moving a character between name and value changes the fingerprint.
        assert_ne!(
            fingerprint(&labels(&[("a", "bb"), ("b", "c")])),
            fingerprint(&labels(&[("a", "b"), ("bb", "c")]))
        );
    }
}
