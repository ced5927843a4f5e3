//! The tokenizer on any text. Never a panic; every word within the limits, non-empty, lowercase,
//! with no markup or escape left, never a record key; the same text, the same words.
#![no_main]

use fanout_words_core::tokenize::{tokenize, within_limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let words = tokenize(text);
    for (word, n) in words.iter() {
        assert!(n >= 1, "{word:?} counted {n} times");
        assert!(!word.is_empty());
        assert!(within_limits(word), "{word:?} is too long");
        assert_eq!(word.to_lowercase(), word, "{word:?} is not lowercase");
        assert!(!word.starts_with('#'), "{word:?} looks like a record key");
        assert!(
            !word.contains(['<', '>', '&']),
            "{word:?} keeps markup or an escape"
        );
    }
    assert_eq!(tokenize(text), words, "not deterministic");
});
