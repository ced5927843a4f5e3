//! Word multiplicities in order of first appearance.

use std::collections::HashMap;
use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Each distinct word with how many times it occurs, in order of first appearance.
/// Serialized as a JSON object whose keys keep that order.
#[derive(Debug, Clone, Default)]
pub struct WordCounts {
    entries: Vec<(String, u64)>,
    index: HashMap<String, usize>,
}

impl WordCounts {
    /// Adds `n` occurrences of `word`. A multiplicity saturates at `u64::MAX` (a message read
    /// from JSON may repeat a key), where a reader's validation refuses it.
    pub fn add(&mut self, word: String, n: u64) {
        match self.index.get(&word) {
            Some(&at) => self.entries[at].1 = self.entries[at].1.saturating_add(n),
            None => {
                self.index.insert(word.clone(), self.entries.len());
                self.entries.push((word, n));
            }
        }
    }

    /// The multiplicity of `word`, if it occurs.
    pub fn get(&self, word: &str) -> Option<u64> {
        self.index.get(word).map(|&at| self.entries[at].1)
    }

    /// The words and their multiplicities, in order of first appearance.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, u64)> {
        self.entries.iter().map(|(word, n)| (word.as_str(), *n))
    }

    /// The number of distinct words.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of word occurrences (saturating, like the multiplicities).
    pub fn total(&self) -> u64 {
        self.entries
            .iter()
            .fold(0, |total: u64, (_, n)| total.saturating_add(*n))
    }
}

impl PartialEq for WordCounts {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for WordCounts {}

impl<S: Into<String>> FromIterator<(S, u64)> for WordCounts {
    fn from_iter<I: IntoIterator<Item = (S, u64)>>(iter: I) -> Self {
        let mut counts = WordCounts::default();
        for (word, n) in iter {
            counts.add(word.into(), n);
        }
        counts
    }
}

impl Serialize for WordCounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (word, n) in &self.entries {
            map.serialize_entry(word, n)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for WordCounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountsVisitor;
        impl<'de> Visitor<'de> for CountsVisitor {
            type Value = WordCounts;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object mapping each word to its multiplicity")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<WordCounts, A::Error> {
                let mut counts = WordCounts::default();
                while let Some((word, n)) = access.next_entry::<String, u64>()? {
                    counts.add(word, n);
                }
                Ok(counts)
            }
        }
        deserializer.deserialize_map(CountsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_first_appearance_order_and_sums_repeats() {
        let counts: WordCounts = [("the", 1), ("cat", 1), ("the", 2)].into_iter().collect();
        assert_eq!(
            counts.iter().collect::<Vec<_>>(),
            vec![("the", 3), ("cat", 1)]
        );
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.get("cat"), Some(1));
        assert_eq!(counts.get("dog"), None);
    }

    #[test]
    fn json_round_trip_keeps_order() {
        let counts: WordCounts = [("zebra", 2), ("apple", 1)].into_iter().collect();
        let json = serde_json::to_string(&counts).unwrap();
        assert_eq!(json, r#"{"zebra":2,"apple":1}"#);
        let back: WordCounts = serde_json::from_str(&json).unwrap();
        assert_eq!(back, counts);
        assert!(serde_json::from_str::<WordCounts>(r#"{"a":-1}"#).is_err());
    }

    #[test]
    fn repeated_keys_saturate_instead_of_overflowing() {
        let counts: WordCounts =
            serde_json::from_str(r#"{"a":18446744073709551615,"a":1,"b":5}"#).unwrap();
        assert_eq!(counts.get("a"), Some(u64::MAX));
        assert_eq!(counts.total(), u64::MAX);
    }
}
