//! The tokenizer: Slack message text in, word multiplicities out.
//!
//! Slack markup is read first: mentions and broadcasts are dropped, a link keeps only its label,
//! and a bare URL is dropped. The visible text is unescaped (`&amp; &lt; &gt;`), emoji shortcodes
//! become one token each (colons included, skin tone dropped), and everything else is split on
//! Unicode word boundaries (UAX #29) and lowercased. A word must contain a letter or a digit.

use unicode_segmentation::UnicodeSegmentation;

use crate::counts::WordCounts;

/// Counts the words of a Slack message text, in order of first appearance.
pub fn tokenize(text: &str) -> WordCounts {
    let mut counts = WordCounts::default();
    for visible in visible_text(text) {
        count_plain(&unescape(visible), &mut counts);
    }
    counts
}

/// The pieces of `text` a reader sees, with Slack's `<…>` markup resolved, still escaped.
fn visible_text(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        let Some(len) = rest[open..].find('>') else {
            break;
        };
        pieces.push(&rest[..open]);
        if let Some(label) = markup_label(&rest[open + 1..open + len]) {
            pieces.push(label);
        }
        rest = &rest[open + len + 1..];
    }
    pieces.push(rest);
    pieces
}

/// What a `<…>` element shows that counts: a link's label. Mentions (`@`, `#`), special
/// commands (`!here`, `!subteam^…`) and unlabelled links show nothing that counts.
fn markup_label(inner: &str) -> Option<&str> {
    if inner.starts_with(['@', '#', '!']) {
        return None;
    }
    inner.split_once('|').map(|(_, label)| label)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Counts the emoji and words of unescaped plain text, dropping bare URLs.
fn count_plain(text: &str, counts: &mut WordCounts) {
    for chunk in text.split_whitespace() {
        if is_url(chunk) {
            continue;
        }
        let mut rest = chunk;
        while let Some((before, emoji, after)) = next_emoji(rest) {
            count_words(before, counts);
            if !is_skin_tone(emoji) {
                counts.add(emoji.to_lowercase(), 1);
            }
            rest = after;
        }
        count_words(rest, counts);
    }
}

fn is_url(chunk: &str) -> bool {
    let lower = chunk
        .trim_start_matches(['(', '[', '"', '\''])
        .to_ascii_lowercase();
    ["http://", "https://", "ftp://", "mailto:", "www."]
        .iter()
        .any(|scheme| lower.starts_with(scheme))
}

/// Splits at the first emoji shortcode `:name:`. A name holds a letter (`:30:` in `10:30:45` is
/// no emoji), except Slack's `:+1:` and `:-1:`.
fn next_emoji(text: &str) -> Option<(&str, &str, &str)> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find(':') {
        let open = from + found;
        let name_len = bytes[open + 1..]
            .iter()
            .take_while(|&&b| is_shortcode_byte(b))
            .count();
        let close = open + 1 + name_len;
        let name = &text[open + 1..close];
        let named = name.bytes().any(|b| b.is_ascii_alphabetic()) || name == "+1" || name == "-1";
        if named && bytes.get(close) == Some(&b':') {
            return Some((&text[..open], &text[open..=close], &text[close + 1..]));
        }
        from = open + 1;
    }
    None
}

fn is_shortcode_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'\'')
}

fn is_skin_tone(emoji: &str) -> bool {
    emoji.starts_with(":skin-tone-")
}

fn count_words(text: &str, counts: &mut WordCounts) {
    if text.is_empty() {
        return;
    }
    // Typographic apostrophes (don’t) count as the plain one (don't).
    let text = text.replace('\u{2019}', "'");
    for word in text.unicode_words() {
        counts.add(word.to_lowercase(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn words(text: &str) -> Vec<(String, u64)> {
        tokenize(text)
            .iter()
            .map(|(w, n)| (w.to_owned(), n))
            .collect()
    }

    fn pairs(expected: &[(&str, u64)]) -> Vec<(String, u64)> {
        expected.iter().map(|(w, n)| (w.to_string(), *n)).collect()
    }

    #[test]
    fn the_original_story() {
        assert_eq!(
            words("awsadvent some words"),
            pairs(&[("awsadvent", 1), ("some", 1), ("words", 1)])
        );
    }

    #[test]
    fn case_folds_and_counts_repeats() {
        assert_eq!(words("The the THE cat"), pairs(&[("the", 3), ("cat", 1)]));
        assert_eq!(
            words("ÉCOLE école Straße STRASSE"),
            pairs(&[("école", 2), ("straße", 1), ("strasse", 1)])
        );
    }

    #[test]
    fn empty_and_punctuation_only_texts_have_no_words() {
        assert!(tokenize("").is_empty());
        assert!(tokenize("   \n\t ").is_empty());
        assert!(tokenize("... !!! --- ?? :: ()").is_empty());
    }

    #[test]
    fn drops_mentions_and_broadcasts() {
        assert_eq!(
            words("<@U024BE7LH> hi <@U024BE7LH|bob> <#C024BE7LR|general> <!subteam^SAZ94GDB8|@team> <!here> <!channel> there"),
            pairs(&[("hi", 1), ("there", 1)])
        );
    }

    #[test]
    fn links_keep_their_label_and_bare_urls_go() {
        assert_eq!(
            words("see <https://example.com/a?b=c|the docs> and <https://example.com> or http://x.io/y now"),
            pairs(&[("see", 1), ("the", 1), ("docs", 1), ("and", 1), ("or", 1), ("now", 1)])
        );
        assert_eq!(
            words("<mailto:a@b.com|Mail me>"),
            pairs(&[("mail", 1), ("me", 1)])
        );
    }

    #[test]
    fn unescapes_entities() {
        assert_eq!(
            words("fish &amp; chips &lt;3 a&gt;b"),
            pairs(&[("fish", 1), ("chips", 1), ("3", 1), ("a", 1), ("b", 1)])
        );
        // An escaped bracket is text, not markup.
        assert_eq!(
            words("&lt;@U123&gt; hello"),
            pairs(&[("u123", 1), ("hello", 1)])
        );
    }

    #[test]
    fn emoji_are_one_token_with_colons_and_no_skin_tone() {
        assert_eq!(
            words("ship it :tada: :thumbsup::skin-tone-2: :+1: :tada:"),
            pairs(&[
                ("ship", 1),
                ("it", 1),
                (":tada:", 2),
                (":thumbsup:", 1),
                (":+1:", 1)
            ])
        );
        assert_eq!(words("yay:tada:"), pairs(&[("yay", 1), (":tada:", 1)]));
        assert_eq!(words("(:rocket:)"), pairs(&[(":rocket:", 1)]));
        assert_eq!(
            words("at 10:30:45"),
            pairs(&[("at", 1), ("10", 1), ("30", 1), ("45", 1)])
        );
    }

    #[test]
    fn apostrophes_inside_words_stay() {
        assert_eq!(
            words("Don't don’t 'quoted' rock'n'roll"),
            pairs(&[("don't", 2), ("quoted", 1), ("rock'n'roll", 1)])
        );
    }

    #[test]
    fn unicode_words_split_on_uax29_boundaries() {
        assert_eq!(
            words("naïve café, 3.14 and 1,000"),
            pairs(&[
                ("naïve", 1),
                ("café", 1),
                ("3.14", 1),
                ("and", 1),
                ("1,000", 1)
            ])
        );
        assert_eq!(words("Привет мир"), pairs(&[("привет", 1), ("мир", 1)]));
        // Emoji pictographs are not letters or digits.
        assert_eq!(words("🎉 party 🎉"), pairs(&[("party", 1)]));
    }

    #[test]
    fn trigger_word_counts_like_any_other() {
        assert_eq!(
            words("awsadvent: hello"),
            pairs(&[("awsadvent", 1), ("hello", 1)])
        );
    }

    #[test]
    fn unclosed_markup_is_text() {
        assert_eq!(words("a < b <@U1"), pairs(&[("a", 1), ("b", 1), ("u1", 1)]));
    }

    proptest! {
        #[test]
        fn every_word_is_lowercase_and_has_a_letter_or_digit(text in "\\PC{0,200}") {
            for (word, n) in tokenize(&text).iter() {
                prop_assert!(n >= 1);
                prop_assert!(!word.is_empty());
                prop_assert!(!word.contains(char::is_whitespace));
                let emoji = word.starts_with(':') && word.ends_with(':') && word.len() > 2;
                prop_assert!(emoji || word.chars().any(char::is_alphanumeric), "{word:?}");
                prop_assert_eq!(word.to_lowercase(), word);
            }
        }

        #[test]
        fn counts_are_additive_over_concatenation(a in "[a-zA-Z ]{0,40}", b in "[a-zA-Z ]{0,40}") {
            let joined = tokenize(&format!("{a} {b}"));
            prop_assert_eq!(joined.total(), tokenize(&a).total() + tokenize(&b).total());
        }

        #[test]
        fn plain_ascii_words_are_all_counted(words in proptest::collection::vec("[a-z]{1,8}", 0..30)) {
            let counts = tokenize(&words.join(" "));
            prop_assert_eq!(counts.total(), words.len() as u64);
        }
    }
}
