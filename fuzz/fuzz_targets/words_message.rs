//! The words message as a consumer reads it: any body, with or without an SNS id. Never a
//! panic; a message that validates has deltas that fit, and round-trips through JSON.
#![no_main]

use fanout_words_core::WordsMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &str| {
    let Ok(message) = WordsMessage::from_delivery(body, Some("sns-fuzz"), Some("AIDAFUZZ")) else {
        return;
    };
    if message.validate().is_ok() {
        for multiplier in [1, 10, i64::MAX] {
            let _ = message.deltas(multiplier);
        }
        let again = WordsMessage::from_delivery(&message.to_json(), None, None)
            .expect("a valid message reads back");
        assert_eq!(again, message);
    }
});
