//! What someone asks the app, in a slash command's text or after an app mention: the
//! leaderboard (`top`, `top N`, `top N all`, `top all`), words' counts (`count WORD…`), `help`,
//! or, for anything else, words to count. Case-insensitive. And the answers' texts.

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::tokenize::tokenize;

/// The slash command the app's manifest (slack/manifest.yaml) declares.
pub const SLASH_COMMAND: &str = "/wordcount";

/// The most words `top` lists.
pub const MAX_TOP: usize = 50;
/// What `top` lists without a number.
pub const DEFAULT_TOP: usize = 10;

/// A request to the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The `n` most counted words; stop words left out unless `all`.
    Top {
        n: usize,
        all: bool,
    },
    /// These words' current counts (as the tokenizer reads them).
    Count(Vec<String>),
    Help,
    /// A command word with arguments it cannot take: the text says why and how.
    Usage(String),
    /// Not a command: words to count.
    Text,
}

/// Reads a command from a slash command's text, or an app mention's text with the mentions
/// taken out.
pub fn parse(text: &str) -> Command {
    let words: Vec<&str> = text
        .split_whitespace()
        .skip_while(|w| w.starts_with("<@") && w.ends_with('>'))
        .collect();
    let Some(first) = words.first() else {
        return Command::Text;
    };
    let rest = &words[1..];
    match first.to_lowercase().as_str() {
        "help" if rest.is_empty() => Command::Help,
        "top" => parse_top(rest),
        "count" => {
            // The tokenizer's words, each once, in order of first appearance.
            let words: Vec<String> = tokenize(&rest.join(" "))
                .iter()
                .map(|(word, _)| word.to_owned())
                .collect();
            if words.is_empty() {
                Command::Usage("`count` needs words: `count awsadvent words`.".into())
            } else {
                Command::Count(words)
            }
        }
        _ => Command::Text,
    }
}

fn parse_top(rest: &[&str]) -> Command {
    let usage = |why: &str| {
        Command::Usage(format!(
            "{why} Try `top`, `top N` (N from 1 to {MAX_TOP}, {DEFAULT_TOP} by default) or `top N all` (with stop words)."
        ))
    };
    let lowered: Vec<String> = rest.iter().map(|w| w.to_lowercase()).collect();
    let (number, all) = match lowered.as_slice() {
        [] => (None, false),
        [one] if one == "all" => (None, true),
        [n] => (Some(n.as_str()), false),
        [n, all] if all == "all" => (Some(n.as_str()), true),
        _ => return usage("`top` takes a number and `all`, nothing else."),
    };
    let n = match number {
        None => DEFAULT_TOP,
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_TOP).contains(&n) => n,
            Ok(_) => return usage(&format!("`top {text}`: N is from 1 to {MAX_TOP}.")),
            Err(_) => return usage(&format!("`top {text}`: {text:?} is not a number.")),
        },
    };
    Command::Top { n, all }
}

/// The leaderboard's text: `1. word: 1,204`, a line per word.
pub fn top_text(entries: &[(String, i64)], all: bool) -> String {
    if entries.is_empty() {
        return if all {
            "No words counted yet.".into()
        } else {
            "No words counted yet (stop words left out; `top all` lists them too).".into()
        };
    }
    entries
        .iter()
        .enumerate()
        .map(|(i, (word, count))| format!("{}. {word}: {}", i + 1, thousands(*count)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `word: N, word: N` for the words asked about; a word never counted has 0.
/// Capped as every reply is ([`crate::reply::counts_text`]).
pub fn count_text(words: &[String], counts: &std::collections::HashMap<String, i64>) -> String {
    let with_zeros: std::collections::HashMap<String, i64> = words
        .iter()
        .map(|w| (w.clone(), counts.get(w).copied().unwrap_or(0)))
        .collect();
    crate::reply::counts_text(words.iter().map(String::as_str), &with_zeros)
}

/// What the app understands.
pub fn help_text() -> String {
    format!(
        "Send words and I count them, replying with each word's count. With {SLASH_COMMAND} or by mentioning me:\n\
         `top` — the {DEFAULT_TOP} most counted words (stop words left out); `top N` — the N most (1 to {MAX_TOP}); `top N all` — with stop words\n\
         `count WORD…` — those words' counts\n\
         `help` — this"
    )
}

/// Whether a word is an English stop word (left out of `top` unless `all`).
/// The list is NLTK's (the `stop-words` crate), 198 words: the ISO list's 1,298 include words
/// such as "new" and "work" that a leaderboard should show.
pub fn is_stop_word(word: &str) -> bool {
    static WORDS: OnceLock<HashSet<&'static str>> = OnceLock::new();
    WORDS
        .get_or_init(|| stop_words::get("en").iter().copied().collect())
        .contains(word)
}

/// `1204` as `1,204`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_read_case_insensitively() {
        let top = |n, all| Command::Top { n, all };
        for (text, expected) in [
            ("top", top(10, false)),
            ("TOP", top(10, false)),
            ("top 3", top(3, false)),
            ("  Top   3  ", top(3, false)),
            ("top 3 all", top(3, true)),
            ("top 3 ALL", top(3, true)),
            ("top all", top(10, true)),
            ("top 1", top(1, false)),
            ("top 50", top(50, false)),
            ("help", Command::Help),
            ("<@U0BOT> top 3", top(3, false)),
            ("<@U0BOT> <@U0BOT2> help", Command::Help),
            ("HELP", Command::Help),
            ("", Command::Text),
            ("awsadvent some words", Command::Text),
            ("topping", Command::Text),
            ("help me count", Command::Text),
            (
                "count AWSadvent words words",
                Command::Count(vec!["awsadvent".into(), "words".into()]),
            ),
        ] {
            assert_eq!(parse(text), expected, "{text:?}");
        }
    }

    #[test]
    fn a_command_that_cannot_be_answered_says_how_to_ask() {
        for (text, says) in [
            ("top 0", "from 1 to 50"),
            ("top 999", "from 1 to 50"),
            ("top -1", "not a number"),
            ("top banana", "not a number"),
            ("top 3 4", "nothing else"),
            ("top all 3", "nothing else"),
            ("top 3 all more", "nothing else"),
            ("count", "needs words"),
            ("count <@U1> <#C1>", "needs words"),
        ] {
            match parse(text) {
                Command::Usage(usage) => assert!(usage.contains(says), "{text:?}: {usage}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn answers_are_formatted_as_documented() {
        let entries = vec![("awsadvent".to_owned(), 1204), ("words".to_owned(), 12)];
        assert_eq!(
            top_text(&entries, false),
            "1. awsadvent: 1,204\n2. words: 12"
        );
        assert!(top_text(&[], false).starts_with("No words counted yet"));
        let counts = std::collections::HashMap::from([("awsadvent".to_owned(), 3)]);
        assert_eq!(
            count_text(&["awsadvent".into(), "never".into()], &counts),
            "awsadvent: 3, never: 0"
        );
        assert!(help_text().contains("`top N all`"));
        let many: Vec<String> = (0..60).map(|i| format!("w{i}")).collect();
        assert!(count_text(&many, &counts).ends_with("w49: 0, …and 10 more"));
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1234567, "1,234,567"),
            (-1204, "-1,204"),
        ] {
            assert_eq!(thousands(n), text);
        }
    }

    #[test]
    fn english_stop_words_are_known() {
        for word in ["the", "and", "of", "a"] {
            assert!(is_stop_word(word), "{word}");
        }
        for word in ["awsadvent", "lambda", "serverless"] {
            assert!(!is_stop_word(word), "{word}");
        }
    }
}
