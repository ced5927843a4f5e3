//! Slack request parsing and verification: any headers and body, form or JSON. Never a panic;
//! a signature made with the secret over the body verifies, and one byte changed does not.
#![no_main]

use fanout_words_core::slack::{is_ssl_check, parse, sign, Verified, Verifier};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "fuzz-signing-secret";
const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = match selector % 4 {
        0 => None,
        1 => Some("application/x-www-form-urlencoded"),
        2 => Some("application/json"),
        _ => Some("text/plain; charset=utf-8"),
    };
    let _ = is_ssl_check(content_type, body);
    if let Ok(parsed) = parse(content_type, body) {
        let _ = parsed.message_id();
    }
    // Headers taken from the input too: the first line of the body, when there is one.
    let text = String::from_utf8_lossy(body);
    let mut lines = text.splitn(3, '\n');
    let (timestamp, signature) = (lines.next(), lines.next());
    let verifier = Verifier::new(Some(SECRET.into()), Some("tok".into()))
        .accepting_unsigned_with_token(selector & 4 == 4);
    let _ = verifier.check_signature(timestamp, signature, body, NOW);
    let _ = verifier.check_token(Verified::TokenPending, timestamp);

    let stamp = NOW.to_string();
    let good = sign(SECRET, &stamp, body);
    assert_eq!(
        verifier.check_signature(Some(&stamp), Some(&good), body, NOW),
        Ok(Verified::Signed)
    );
    if !body.is_empty() {
        let mut changed = body.to_vec();
        changed[usize::from(selector) % body.len()] ^= 1;
        assert!(verifier
            .check_signature(Some(&stamp), Some(&good), &changed, NOW)
            .is_err());
    }
});
