//! The tokenizer: Slack message text in, word multiplicities out.
//!
//! Slack markup is read first: mentions and broadcasts are dropped, a link keeps only its label,
//! and a bare URL is dropped. The visible text is unescaped (`&amp; &lt; &gt;`), emoji shortcodes
//! become one token each (colons included, skin tone dropped), and everything else is split on
//! Unicode word boundaries (UAX #29) and lowercased. A word must contain a letter or a digit.
//!
//! A token longer than [`MAX_WORD_CHARS`] characters or [`MAX_WORD_BYTES`] bytes (as counted,
//! after lowercasing) is no word: a hash, a base64 blob or a run of katakana with no spaces.
//! It is dropped without a trace, and the rest of the text counts as usual.

use unicode_segmentation::UnicodeSegmentation;

use crate::counts::WordCounts;

/// The most characters (Unicode scalar values) a word may have.
pub const MAX_WORD_CHARS: usize = 100;
/// The most bytes (UTF-8) a word may have. With at most 4 bytes a character this follows from
/// [`MAX_WORD_CHARS`] for what the tokenizer counts; it is the limit every reader of a words
/// message checks, since a byte length is what a store's key limit is about.
pub const MAX_WORD_BYTES: usize = 400;

/// Whether `word` is short enough to be a word: at most [`MAX_WORD_CHARS`] characters and
/// [`MAX_WORD_BYTES`] bytes.
pub fn within_limits(word: &str) -> bool {
    // A string of n bytes has at most n characters: short strings need no count.
    word.len() <= MAX_WORD_BYTES
        && (word.len() <= MAX_WORD_CHARS || word.chars().count() <= MAX_WORD_CHARS)
}

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
                add_word(emoji.to_lowercase(), counts);
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
        // A mark or symbol carrying combining characters (`>` + U+036A) is one segment, and
        // counts as a word when the combining character is alphabetic: it is no word.
        if word.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
            add_word(word.to_lowercase(), counts);
        }
    }
}

fn add_word(word: String, counts: &mut WordCounts) {
    if within_limits(&word) {
        counts.add(word, 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Found by fuzzing (docs/reliability.md): `&gt;` followed by a combining letter was
    /// counted as the word ">ͪ".
    #[test]
    fn a_mark_carrying_combining_characters_is_no_word() {
        let words = tokenize("awe &gt;\u{36a} words >\u{301}x _init_ e\u{301}t\u{e9}");
        let found: Vec<&str> = words.iter().map(|(w, _)| w).collect();
        assert_eq!(found, ["awe", "words", "x", "_init_", "e\u{301}t\u{e9}"]);
    }

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

    #[test]
    fn overlong_tokens_are_no_words_and_the_rest_counts() {
        let hex = "0123456789abcdef".repeat(150);
        let katakana = "カタカナ".repeat(175);
        let text = format!("keep {hex} this {katakana} and :{}: that", "x".repeat(120));
        assert_eq!(
            words(&text),
            pairs(&[("keep", 1), ("this", 1), ("and", 1), ("that", 1)])
        );
        assert!(tokenize(&"a".repeat(40_000)).is_empty());
    }

    #[test]
    fn the_limits_are_on_the_word_as_counted() {
        let at_limit = "w".repeat(MAX_WORD_CHARS);
        assert_eq!(words(&at_limit), vec![(at_limit.clone(), 1)]);
        assert!(tokenize(&format!("{at_limit}w")).is_empty());
        // 100 four-byte letters (MATHEMATICAL BOLD SMALL A) are 400 bytes: still a word.
        let wide = "\u{1D41A}".repeat(MAX_WORD_CHARS);
        assert_eq!(wide.len(), MAX_WORD_BYTES);
        assert_eq!(tokenize(&wide).len(), 1);
        assert!(tokenize(&format!("{wide}\u{1D41A}")).is_empty());
        // İ lowercases to two characters (i and a combining dot): 50 fit, 51 do not.
        assert_eq!(tokenize(&"İ".repeat(50)).len(), 1);
        assert!(tokenize(&"İ".repeat(51)).is_empty());
        // An emoji shortcode is a token like any other.
        assert_eq!(tokenize(&format!(":{}:", "y".repeat(98))).len(), 1);
        assert!(tokenize(&format!(":{}:", "y".repeat(99))).is_empty());
    }

    #[test]
    fn within_limits_counts_characters_and_bytes() {
        assert!(within_limits(""));
        assert!(within_limits(&"é".repeat(100)));
        assert!(!within_limits(&"é".repeat(101)));
        assert!(within_limits(&"\u{1F600}".repeat(100)));
        assert!(!within_limits(&format!("{}a", "\u{1F600}".repeat(100))));
    }

    /// Where additivity stops: markup left open in the first text is closed by the second, so
    /// the two texts together show a link's label where each alone shows plain text.
    #[test]
    fn markup_open_across_the_join_is_not_additive() {
        let (a, b) = ("see <https://example.com|the", "docs> now");
        let mut separate = tokenize(a);
        for (word, n) in tokenize(b).iter() {
            separate.add(word.to_owned(), n);
        }
        let joined = tokenize(&format!("{a} {b}"));
        assert_eq!(
            joined.iter().collect::<Vec<_>>(),
            vec![("see", 1), ("the", 1), ("docs", 1), ("now", 1)]
        );
        assert_ne!(joined, separate);
    }

    /// Pieces of Slack text that reach the tokenizer's hard cases: scripts without spaces
    /// (katakana, CJK), combining marks, letters that change length when lowercased, emoji
    /// pictographs and shortcodes, Slack markup and entities, URLs, runs at and past the
    /// limits, and odd white space. With `open_markup`, also a lone `<`, which may open markup
    /// that a later `>` closes.
    fn fragment(open_markup: bool) -> BoxedStrategy<String> {
        let pieces = prop_oneof![
            "[a-zA-Z0-9']{1,12}",
            "[\\u{C0}-\\u{24F}İıßẞK]{1,12}",
            "[\\u{391}-\\u{3C9}\\u{410}-\\u{44F}]{1,10}",
            "[a-z][\\u{300}-\\u{36F}]{1,4}",
            "[\\u{30A1}-\\u{30FA}ー]{1,120}",
            "[\\u{4E00}-\\u{4E2F}]{1,6}",
            prop::sample::select(vec!["🎉", "👍🏽", "👩‍💻", "🇯🇵", "❤️", "\u{200D}", "\u{FE0F}"])
                .prop_map(str::to_owned),
            ":[a-z_+'-]{1,20}:",
            ":skin-tone-[2-6]:",
            "<@U[A-Z0-9]{3,9}(\\|[a-z]{1,6})?>",
            "<#C[A-Z0-9]{3,9}\\|[a-z]{1,8}>",
            "<![a-z^]{1,10}(\\|@[a-z]{1,5})?>",
            "<https://example\\.com/[a-z]{0,8}(\\|[a-zカ ]{1,12})?>",
            prop::sample::select(vec!["&amp;", "&lt;", "&gt;", "&amp;lt;", ">"])
                .prop_map(str::to_owned),
            "(https?://|www\\.)[a-z]{1,8}\\.com/[a-z]{0,5}",
            "[0-9]{1,4}([.,:][0-9]{1,3})?",
            "[.,!?:;()\"'’-]{1,3}",
            "[0-9a-f]{90,130}",
            "[a-z]{95,420}",
            "[\\u{30A1}-\\u{30FA}]{95,160}",
            "[\\u{1D41A}-\\u{1D433}]{95,105}",
            "İ{45,55}",
            "[ \\t\\n\\u{A0}\\u{3000}]{1,2}",
        ];
        if open_markup {
            prop_oneof![8 => pieces, 1 => Just("<".to_owned())].boxed()
        } else {
            pieces.boxed()
        }
    }

    /// A Slack text of fragments that abut, as they do in real messages.
    fn slack_text(open_markup: bool) -> impl Strategy<Value = String> {
        prop::collection::vec(fragment(open_markup), 0..16).prop_map(|pieces| pieces.concat())
    }

    /// A token that is no word: past one of the limits, alone or after lowercasing.
    fn overlong_token() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9a-f]{101,3000}",
            "[\\u{30A1}-\\u{30FA}ー]{101,800}",
            "é{201,1100}",
            "[\\u{1D41A}-\\u{1D433}]{101,120}",
            "İ{51,60}",
            ":[a-z]{99,150}:",
        ]
    }

    /// The words of `a`, then those of `b`: what `a b` counts where counting is additive.
    fn merged(a: &str, b: &str) -> WordCounts {
        let mut counts = tokenize(a);
        for (word, n) in tokenize(b).iter() {
            counts.add(word.to_owned(), n);
        }
        counts
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
        fn every_word_of_hard_texts_is_a_word_within_the_limits(text in slack_text(true)) {
            for (word, n) in tokenize(&text).iter() {
                prop_assert!(n >= 1);
                prop_assert!(!word.contains(char::is_whitespace), "{word:?}");
                let emoji = word.starts_with(':') && word.ends_with(':') && word.len() > 2;
                prop_assert!(emoji || word.chars().any(char::is_alphanumeric), "{word:?}");
                prop_assert_eq!(word.to_lowercase(), word);
                prop_assert!(word.chars().count() <= MAX_WORD_CHARS, "{word:?}");
                prop_assert!(word.len() <= MAX_WORD_BYTES, "{word:?}");
            }
        }

        /// Counting is additive over texts joined by white space, word by word and in order of
        /// first appearance, as long as the first text leaves no `<` open: otherwise a `>` in
        /// the second may close it (markup_open_across_the_join_is_not_additive).
        #[test]
        fn counts_are_additive_over_concatenation(a in slack_text(false), b in slack_text(true)) {
            prop_assert_eq!(tokenize(&format!("{a} {b}")), merged(&a, &b));
        }

        /// An overlong token changes nothing: the text counts as if it were not there.
        #[test]
        fn an_overlong_token_is_invisible(
            a in slack_text(false),
            long in overlong_token(),
            b in slack_text(true),
        ) {
            prop_assert!(!within_limits(&long.to_lowercase()));
            prop_assert_eq!(tokenize(&format!("{a} {long} {b}")), merged(&a, &b));
        }

        #[test]
        fn plain_ascii_words_are_all_counted(words in proptest::collection::vec("[a-z]{1,8}", 0..30)) {
            let counts = tokenize(&words.join(" "));
            prop_assert_eq!(counts.total(), words.len() as u64);
        }
    }
}
