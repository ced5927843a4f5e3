//! Every command the documentation gives works as written.
//!
//! Every fenced block in README.md and docs/*.md says what it is in its info string. A shell
//! block (`sh`, `bash`, `shell`, `console`) also says how it is checked, after the language:
//!
//! - `sh local-stack`: runs on this machine against `make up`'s stack. The live test starts
//!   `fanout-local up` (what `make up` runs once the binaries are built), runs the block as one
//!   shell script, in a fresh shell's environment, from the repository, with the stack's ports
//!   for `<port>` (cargo lambda) and `<moto port>`, and checks every command's answer.
//! - `sh aws-account`: needs an AWS account; not run.
//! - `sh names-only`: not run here, for a reason the block's text gives: a benchmark that takes
//!   minutes, or a `make` target that `make test` itself runs (`make demo`, `make test`).
//!
//! Every shell block, whatever its kind, is parsed by `bash -n` and has its names checked: each
//! `make` target is in the Makefile, each path in the repository, each package and binary in the
//! workspace, and each flag of the workspace's binaries, of `cargo lambda invoke`, of `sam` and
//! of the `aws` CLI is one that program takes. A program the checks do not know fails the test,
//! and so does a command in a `local-stack` block whose answer nothing checks.
//!
//! The commands `make up` prints are run and checked the same way, section by section.
//!
//! It needs what `make test` installs first: `.venv` (`make dev-tools`), `.venv-aws` (`make
//! aws-cli`), `.venv-infra` (`make infra-tools`) and the workspace's binaries (`cargo build
//! --workspace --bins`). Without them it fails and says so; it never skips.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use support::{
    as_from_a_shell, become_subreaper, check_prerequisites, end, survivors, workspace_root,
};

const SHELLS: &[&str] = &["sh", "bash", "shell", "console"];

/// Programs whose flags are not ours to check: the shell's own and common Unix tools.
const EXTERNAL: &[&str] = &[
    "export", "read", "echo", "printf", "curl", "openssl", "jq", "awk", "cut", "date", "seq",
    "cat", "grep", "sed", "head", "tail", "sort", "xargs", "git", "rustup", "apt-get",
];

/// What the `make up` line that ends the usage says; everything before it is the usage.
const USAGE_END: &str = "Every command above works as printed";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    LocalStack,
    AwsAccount,
    NamesOnly,
}

/// A fenced code block of a Markdown file.
#[derive(Debug)]
struct Block {
    /// `file:line` of the opening fence.
    place: String,
    lang: String,
    kind: Option<Kind>,
    text: String,
}

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The fenced blocks of a Markdown text (``` fences, indented by up to a list item's indent).
fn blocks_of(name: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(usize, usize, String, Vec<String>)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    open = Some((index + 1, indent, info.trim().to_owned(), Vec::new()));
                }
            }
            Some((start, fence_indent, info, lines)) => {
                if trimmed == "```" {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or_default().to_owned();
                    let kind = match words.next() {
                        Some("local-stack") => Some(Kind::LocalStack),
                        Some("aws-account") => Some(Kind::AwsAccount),
                        Some("names-only") => Some(Kind::NamesOnly),
                        _ => None,
                    };
                    blocks.push(Block {
                        place: format!("{name}:{start}"),
                        lang,
                        kind,
                        text: lines.join("\n"),
                    });
                    open = None;
                } else {
                    let cut = line.len().min(*fence_indent);
                    let cut = if line[..cut].trim().is_empty() {
                        cut
                    } else {
                        0
                    };
                    lines.push(line[cut..].to_owned());
                }
            }
        }
    }
    if let Some((start, ..)) = open {
        blocks.push(Block {
            place: format!("{name}:{start}"),
            lang: "unclosed".into(),
            kind: None,
            text: String::new(),
        });
    }
    blocks
}

fn all_blocks(root: &Path) -> Vec<Block> {
    markdown_files(root)
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).expect("reading a Markdown file");
            let name = path
                .strip_prefix(root)
                .unwrap_or(path)
                .display()
                .to_string();
            blocks_of(&name, &text)
        })
        .collect()
}

/// Replaces `<placeholder>`s: from `values`, or, with `None`, by a dummy word.
fn fill(text: &str, values: Option<&BTreeMap<&str, String>>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>');
        let name = end.map(|e| &after[..e]);
        match name.filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_lowercase() || c == ' ' || c == '-')
        }) {
            Some(name) => {
                out.push_str(&rest[..start]);
                match values {
                    None => out.push_str("PLACEHOLDER"),
                    Some(values) => match values.get(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            return Err(format!(
                            "<{name}> is not a placeholder the local stack fills (it knows {:?})",
                            values.keys().collect::<Vec<_>>()
                        ))
                        }
                    },
                }
                rest = &after[name.len() + 1..];
            }
            None => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

// --- A small shell lexer: enough to find the commands, their words and their flags ----------

#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A word with its quotes removed; `$(…)` and `$var` kept as written.
    Word(String),
    /// `|`, `||`, `&&`, `;`, `&`, a newline.
    Separator,
    /// `>`, `>>`, `<`, `2>`…: the next word is a file, not an argument.
    Redirect,
}

fn lex(text: &str) -> Vec<Token> {
    let text = text.replace("\\\n", " ");
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut i = 0;
    let flush = |word: &mut String, in_word: &mut bool, tokens: &mut Vec<Token>| {
        if *in_word {
            tokens.push(Token::Word(std::mem::take(word)));
            *in_word = false;
        }
    };
    while i < chars.len() {
        let c = chars[i];
        match c {
            '#' if !in_word => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            ' ' | '\t' => flush(&mut word, &mut in_word, &mut tokens),
            '\n' | ';' | '|' | '&' => {
                flush(&mut word, &mut in_word, &mut tokens);
                // `2>&1`'s `&` is part of its redirect.
                if c == '&' && tokens.last() == Some(&Token::Redirect) {
                    i += 2;
                    tokens.pop();
                    continue;
                }
                tokens.push(Token::Separator);
                while i + 1 < chars.len() && matches!(chars[i + 1], '|' | '&') {
                    i += 1;
                }
            }
            '>' | '<' => {
                if word.chars().all(|d| d.is_ascii_digit()) {
                    word.clear();
                    in_word = false;
                }
                flush(&mut word, &mut in_word, &mut tokens);
                tokens.push(Token::Redirect);
                while i + 1 < chars.len() && chars[i + 1] == '>' {
                    i += 1;
                }
            }
            '\'' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '"' => {
                in_word = true;
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    word.push(chars[i]);
                    i += 1;
                }
            }
            '$' if chars.get(i + 1) == Some(&'(') => {
                in_word = true;
                let mut depth = 0;
                while i < chars.len() {
                    word.push(chars[i]);
                    match chars[i] {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            '\\' if i + 1 < chars.len() => {
                in_word = true;
                i += 1;
                word.push(chars[i]);
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
        i += 1;
    }
    flush(&mut word, &mut in_word, &mut tokens);
    tokens
}

/// The simple commands of a script, as their words: assignments before the program, words
/// that are redirected files, and `do`/`then` are left out; `for` lines are skipped.
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut redirected = false;
    for token in lex(text).into_iter().chain([Token::Separator]) {
        match token {
            Token::Separator => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            Token::Redirect => redirected = true,
            Token::Word(word) => {
                if std::mem::take(&mut redirected) {
                    continue;
                }
                let assignment = current.is_empty()
                    && word.split_once('=').is_some_and(|(name, _)| {
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    });
                if assignment || (current.is_empty() && matches!(word.as_str(), "do" | "then")) {
                    continue;
                }
                current.push(word);
            }
        }
    }
    out.retain(|c| !matches!(c[0].as_str(), "for" | "done" | "fi" | "while"));
    out
}

// --- Names: make targets, paths, packages, binaries, flags ----------------------------------

struct Names {
    root: PathBuf,
    make_targets: BTreeSet<String>,
    /// Package name → its binaries.
    packages: BTreeMap<String, Vec<String>>,
    bin_dir: PathBuf,
    helps: HashMap<String, Result<String, String>>,
}

impl Names {
    fn new(root: &Path) -> Names {
        let makefile = std::fs::read_to_string(root.join("Makefile")).expect("the Makefile");
        let make_targets = makefile
            .lines()
            .filter(|l| !l.starts_with(['\t', '#', ' ', '.', '$']))
            .filter_map(|l| {
                let (targets, rest) = l.split_once(':')?;
                (!rest.starts_with('=')).then_some(targets)
            })
            .flat_map(|targets| targets.split_whitespace().map(str::to_owned))
            .collect();
        let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
            .expect("Cargo.toml")
            .parse()
            .expect("Cargo.toml is TOML");
        let members = manifest["workspace"]["members"]
            .as_array()
            .expect("workspace members");
        let mut packages = BTreeMap::new();
        for member in members {
            let dir = root.join(member.as_str().expect("a member path"));
            let package: toml::Table = std::fs::read_to_string(dir.join("Cargo.toml"))
                .expect("a member's Cargo.toml")
                .parse()
                .expect("a member's Cargo.toml is TOML");
            let name = package["package"]["name"].as_str().unwrap().to_owned();
            let mut bins: Vec<String> = package
                .get("bin")
                .and_then(|b| b.as_array())
                .map(|bins| {
                    bins.iter()
                        .filter_map(|b| Some(b.get("name")?.as_str()?.to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            if dir.join("src/main.rs").exists() && !bins.contains(&name) {
                bins.push(name.clone());
            }
            packages.insert(name, bins);
        }
        Names {
            root: root.to_owned(),
            make_targets,
            packages,
            bin_dir: Path::new(env!("CARGO_BIN_EXE_fanout-local"))
                .parent()
                .expect("binaries live in a directory")
                .to_owned(),
            helps: HashMap::new(),
        }
    }

    fn is_bin(&self, name: &str) -> bool {
        self.packages.values().flatten().any(|b| b == name)
    }

    /// The help text a program prints, run once.
    fn help(&mut self, key: &str, program: &Path, args: &[&str]) -> Result<String, String> {
        if let Some(help) = self.helps.get(key) {
            return help.clone();
        }
        let help = Command::new(program)
            .args(args)
            .current_dir(&self.root)
            .output()
            .map_err(|e| format!("running {} for its flags: {e}", program.display()))
            .and_then(|o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr);
                if o.status.success() {
                    Ok(text)
                } else {
                    Err(format!(
                        "{} {} failed: {text}",
                        program.display(),
                        args.join(" ")
                    ))
                }
            });
        self.helps.insert(key.to_owned(), help.clone());
        help
    }

    /// Each `--flag` (and `-f`) in `args` appears, as a whole flag, in `help`.
    fn flags_in(args: &[String], help: &str, what: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for arg in args {
            if arg == "--" {
                break;
            }
            let flag = arg.split('=').next().unwrap_or(arg);
            let is_flag = (flag.starts_with("--") && flag.len() > 2)
                || (flag.len() == 2 && flag.starts_with('-') && flag != "--");
            if !is_flag {
                continue;
            }
            let found = help.match_indices(flag).any(|(at, _)| {
                let next = help[at + flag.len()..].chars().next();
                let before = help[..at].chars().next_back();
                !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    && !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
            });
            if !found {
                problems.push(format!("{what} has no flag {flag}"));
            }
        }
        problems
    }

    fn our_bin(&mut self, bin: &str, args: &[String]) -> Vec<String> {
        if !self.is_bin(bin) {
            return vec![format!("{bin} is not a binary of the workspace")];
        }
        let program = self.bin_dir.join(bin);
        match self.help(bin, &program, &["--help"]) {
            Ok(help) => Self::flags_in(args, &help, bin),
            Err(err) => vec![err],
        }
    }

    /// What is wrong with the names one command uses.
    fn check(&mut self, words: &[String]) -> Vec<String> {
        let mut problems = self.paths(words);
        let (program, args) = (words[0].as_str(), &words[1..]);
        let bin_prefix = ["target/release/", "target/debug/"]
            .iter()
            .find_map(|p| program.strip_prefix(p));
        if let Some(bin) = bin_prefix {
            problems.extend(self.our_bin(bin, args));
            return problems;
        }
        match program {
            "make" => {
                for target in args.iter().filter(|a| !a.starts_with('-') && !a.contains('=')) {
                    if !self.make_targets.contains(target) {
                        problems.push(format!("the Makefile has no target {target}"));
                    }
                }
            }
            "cargo" => problems.extend(self.cargo(args)),
            "sam" => {
                let sam = self.root.join(".venv-infra/sam/bin/sam");
                let sub = args.first().cloned().unwrap_or_default();
                match self.help(&format!("sam {sub}"), &sam, &[&sub, "--help"]) {
                    Ok(help) => problems.extend(Self::flags_in(&args[1..], &help, &format!("sam {sub}"))),
                    Err(err) => problems.push(err),
                }
            }
            "aws" => problems.extend(self.aws(args)),
            "python3" | "python" | ".venv/bin/python" => {
                let Some(script) = args.first() else {
                    return problems;
                };
                let python = Path::new("python3");
                match self.help(script, python, &[script, "--help"]) {
                    Ok(help) => problems.extend(Self::flags_in(&args[1..], &help, script)),
                    Err(err) => problems.push(err),
                }
            }
            "cd" => {
                if let Some(dir) = args.first() {
                    if !self.root.join(dir).is_dir() {
                        problems.push(format!("cd {dir}: no such directory in the repository"));
                    }
                }
            }
            p if EXTERNAL.contains(&p) => {}
            other => problems.push(format!(
                "{other}: a program these checks do not know (add it to EXTERNAL if its flags are not ours to check)"
            )),
        }
        problems
    }

    fn cargo(&mut self, args: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        let sub = args.first().map(String::as_str).unwrap_or_default();
        let package = args
            .iter()
            .position(|a| a == "-p" || a == "--package")
            .and_then(|i| args.get(i + 1));
        if let Some(package) = package {
            if !self.packages.contains_key(package) {
                problems.push(format!(
                    "cargo {sub}: the workspace has no package {package}"
                ));
            }
        }
        match sub {
            "run" => {
                let bin = args
                    .iter()
                    .position(|a| a == "--bin")
                    .and_then(|i| args.get(i + 1))
                    .or(package)
                    .cloned()
                    .unwrap_or_default();
                let rest = args
                    .iter()
                    .position(|a| a == "--")
                    .map_or(&[][..], |i| &args[i + 1..]);
                problems.extend(self.our_bin(&bin, rest));
            }
            "lambda" => {
                let op = args.get(1).cloned().unwrap_or_default();
                let cargo_lambda = self.root.join(".venv/bin/cargo-lambda");
                match self.help(
                    &format!("cargo lambda {op}"),
                    &cargo_lambda,
                    &["lambda", &op, "--help"],
                ) {
                    Ok(help) => problems.extend(Self::flags_in(
                        &args[2..],
                        &help,
                        &format!("cargo lambda {op}"),
                    )),
                    Err(err) => problems.push(err),
                }
                let functions: Vec<String> = std::fs::read_dir(self.root.join("functions"))
                    .expect("functions/")
                    .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                    .collect();
                if op == "invoke" && !args.iter().any(|a| functions.contains(a)) {
                    problems.push("cargo lambda invoke names none of the functions".into());
                }
            }
            "test" | "build" | "fmt" | "clippy" => {}
            other => problems.push(format!(
                "cargo {other}: a cargo command these checks do not know"
            )),
        }
        problems
    }

    /// `aws <service> <operation> --flags`: the flags are the CLI's own for that operation.
    fn aws(&mut self, args: &[String]) -> Vec<String> {
        const LIST_FLAGS: &str = r#"
import sys
from awscli.clidriver import create_clidriver
driver = create_clidriver()
service = driver._get_command_table()[sys.argv[1]]
table = service._get_command_table() if hasattr(service, "_get_command_table") else service.subcommand_table
operation = table[sys.argv[2]]
for name in list(operation.arg_table) + list(driver._get_argument_table()):
    print("--" + name)
"#;
        let (Some(service), Some(operation)) = (args.first(), args.get(1)) else {
            return vec!["aws needs a service and an operation".into()];
        };
        let python = self.root.join(".venv-aws/bin/python");
        match self.help(
            &format!("aws {service} {operation}"),
            &python,
            &["-c", LIST_FLAGS, service, operation],
        ) {
            Ok(flags) => Self::flags_in(&args[2..], &flags, &format!("aws {service} {operation}")),
            Err(_) => vec![format!("the aws CLI has no command `aws {service} {operation}` (or .venv-aws is missing: run `make aws-cli`)")],
        }
    }

    /// Words that are paths in the repository exist.
    fn paths(&self, words: &[String]) -> Vec<String> {
        let mut problems = Vec::new();
        for word in words {
            let word = word.split_once('=').map_or(word.as_str(), |(_, v)| v);
            if word.contains("://") || word.contains('$') || word.starts_with('/') {
                continue;
            }
            let Some((first, _)) = word.split_once('/') else {
                continue;
            };
            if first == "target" {
                let built = ["target/release/", "target/debug/"]
                    .iter()
                    .find_map(|p| word.strip_prefix(p))
                    .filter(|bin| !bin.contains(['/', '.']));
                if let Some(bin) = built.filter(|bin| !self.is_bin(bin)) {
                    problems.push(format!("{word}: {bin} is not a binary of the workspace"));
                }
            } else if self.root.join(first).is_dir() && !self.root.join(word).exists() {
                problems.push(format!("{word}: no such file in the repository"));
            }
        }
        problems
    }
}

/// Syntax, then names, of one shell block; its problems, each with its place.
fn check_shell_block(names: &mut Names, block: &Block) -> Vec<String> {
    let mut problems = Vec::new();
    let text = fill(&block.text, None).expect("filling with a dummy cannot fail");
    let syntax = Command::new("bash")
        .args(["-n", "-c", &text])
        .output()
        .expect("running bash -n");
    if !syntax.status.success() {
        problems.push(format!(
            "bash -n: {}",
            String::from_utf8_lossy(&syntax.stderr).trim()
        ));
    }
    for words in commands(&text) {
        problems.extend(names.check(&words));
    }
    problems
        .into_iter()
        .map(|p| format!("{} ({}): {p}", block.place, block.lang))
        .collect()
}

#[test]
fn every_block_says_what_it_is_and_every_shell_block_names_what_exists() {
    let root = workspace_root();
    let mut names = Names::new(&root);
    let mut problems = Vec::new();
    let mut shell_blocks = 0;
    for block in all_blocks(&root) {
        if block.lang.is_empty() {
            problems.push(format!(
                "{}: a code block without an info string: say what it is (text, json, sh local-stack, sh aws-account…)",
                block.place
            ));
            continue;
        }
        if block.lang == "unclosed" {
            problems.push(format!(
                "{}: a code block that is never closed",
                block.place
            ));
            continue;
        }
        if !SHELLS.contains(&block.lang.as_str()) {
            continue;
        }
        shell_blocks += 1;
        if block.kind.is_none() {
            problems.push(format!(
                "{}: a shell block must say how it is checked: `{lang} local-stack`, `{lang} aws-account` or `{lang} names-only`",
                block.place,
                lang = block.lang
            ));
        }
        problems.extend(check_shell_block(&mut names, &block));
    }
    assert!(shell_blocks > 10, "only {shell_blocks} shell blocks found");
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_checks_find_what_is_wrong() {
    let root = workspace_root();
    let mut names = Names::new(&root);
    let block = |text: &str| Block {
        place: "example.md:1".into(),
        lang: "sh".into(),
        kind: Some(Kind::AwsAccount),
        text: text.into(),
    };
    for (text, expected) in [
        ("make sam-buidl", "no target sam-buidl"),
        (
            "cargo run -p s3-copy -- s3://a/ s3://b/ --dry-runs",
            "s3-copy has no flag --dry-runs",
        ),
        ("cargo run -p s3-cp -- s3://a/ s3://b/", "no package s3-cp"),
        (
            "target/release/fanout-sim --only c --sed 7",
            "fanout-sim has no flag --sed",
        ),
        (
            "cargo lambda invoke --invoke-adress 127.0.0.1 sns-logger",
            "has no flag --invoke-adress",
        ),
        (
            "cargo lambda invoke --data-file events/none.json sns-logger",
            "events/none.json: no such file",
        ),
        (
            "cd infra && sam deploy --guidded",
            "sam deploy has no flag --guidded",
        ),
        (
            "aws dynamodb get-item --table-name t --keys '{}'",
            "aws dynamodb get-item has no flag --keys",
        ),
        (
            "aws dynamodb get-items --table-name t",
            "no command `aws dynamodb get-items`",
        ),
        (
            "s3copy s3://a/ s3://b/",
            "s3copy: a program these checks do not know",
        ),
        ("echo 'unclosed", "bash -n"),
    ] {
        let problems = check_shell_block(&mut names, &block(text)).join("\n");
        assert!(problems.contains(expected), "{text}: {problems:?}");
    }
    let fine = "export PATH=\"$PWD/.venv/bin:$PATH\"\n\
        cargo lambda invoke --invoke-address 127.0.0.1 --invoke-port <port> sns-logger --data-file events/sns-logger-sns.json\n\
        aws dynamodb get-item --table-name t --consistent-read \\\n  --key '{}' --query 'Item' --output text 2>&1 | jq -r .";
    assert_eq!(
        check_shell_block(&mut names, &block(fine)),
        Vec::<String>::new()
    );
    let blocks = blocks_of(
        "x.md",
        "a\n```\nplain\n```\n  ```sh local-stack\n  make up\n  ```\n",
    );
    assert_eq!(blocks.len(), 2);
    assert_eq!((blocks[0].lang.as_str(), blocks[0].kind), ("", None));
    assert_eq!(
        (blocks[1].text.as_str(), blocks[1].kind),
        ("make up", Some(Kind::LocalStack))
    );
}

#[test]
fn a_script_stops_at_the_first_line_that_fails_even_left_of_and() {
    let root = workspace_root();
    let lines: Vec<String> = ["echo one", "false && echo never", "echo after"]
        .map(String::from)
        .to_vec();
    let ran = run_script(&root, &lines);
    let (line, _) = ran.failed.expect("the script failed");
    assert_eq!(line, "false && echo never");
    assert_eq!(ran.steps.len(), 2, "{:?}", ran.steps);
}

// --- The live run ----------------------------------------------------------------------------

/// A script's outcome: each step's output, and where it stopped.
struct Ran {
    steps: Vec<(String, String)>,
    failed: Option<(String, String)>,
}

/// Runs `lines` as one script in a fresh shell's environment (no `.venv*` on PATH, no AWS_*
/// variables), each line's output separated by a marker.
fn run_script(root: &Path, lines: &[String]) -> Ran {
    const MARK: &str = "@@fanout-doc-step@@";
    let mut script = String::from("set -e -o pipefail\n");
    for line in lines {
        // `set -e` lets a failure left of `&&` pass: the line's own status is checked too.
        script.push_str(&format!(
            "printf '\\n{MARK}\\n'\n{line}\nstatus=$?; [ \"$status\" -eq 0 ] || exit \"$status\"\n"
        ));
    }
    let path: Vec<String> = std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|p| !p.starts_with(&root.display().to_string()))
        .map(str::to_owned)
        .collect();
    let mut command = as_from_a_shell(Command::new("bash"), root);
    for (var, _) in std::env::vars() {
        if var.starts_with("AWS_") {
            command.env_remove(var);
        }
    }
    let output = command
        .env("PATH", path.join(":"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .output()
        .expect("running bash");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let outputs: Vec<String> = stdout
        .split(&format!("\n{MARK}\n"))
        .skip(1)
        .map(str::to_owned)
        .collect();
    let steps: Vec<(String, String)> = lines.iter().cloned().zip(outputs.iter().cloned()).collect();
    let failed = (!output.status.success()).then(|| {
        let line = lines
            .get(outputs.len().saturating_sub(1))
            .cloned()
            .unwrap_or_default();
        (
            line,
            format!(
                "{}\n{}",
                outputs.last().cloned().unwrap_or_default(),
                String::from_utf8_lossy(&output.stderr)
            ),
        )
    });
    Ran { steps, failed }
}

/// The logical lines of a script: continuations joined, comments and blank lines dropped.
fn logical_lines(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// `cargo run [--release] -p X [--bin Y] -- args` as the built binary: `cargo test` holds the
/// build directory's lock while its tests run, so a `cargo run` here would wait for it forever.
/// `make test` builds every binary first.
fn without_cargo_run(line: &str, bin_dir: &Path) -> String {
    let Some(at) = line.find("cargo run ") else {
        return line.to_owned();
    };
    let Some(dashes) = line[at..].find(" -- ") else {
        return line.to_owned();
    };
    let words: Vec<&str> = line[at..at + dashes].split_whitespace().collect();
    let bin = words
        .iter()
        .position(|w| *w == "--bin" || *w == "-p")
        .and_then(|i| words.get(i + 1))
        .copied()
        .unwrap_or_default();
    format!(
        "{}{} {}",
        &line[..at],
        bin_dir.join(bin).display(),
        &line[at + dashes + 4..]
    )
}

/// What the local stack set up, for the checks.
struct Local {
    tables: Vec<String>,
    source_bucket: &'static str,
}

/// Checks one command's answer; `Err` says what is wrong. An assignment or an `export` only has
/// to succeed; any other command needs a check here.
fn check_answer(local: &Local, line: &str, output: &str) -> Result<(), String> {
    let output = output.trim();
    let json = |text: &str| -> Result<Value, String> {
        serde_json::from_str(text).map_err(|e| format!("the answer is not JSON ({e}): {text}"))
    };
    let words = commands(line).pop().unwrap_or_default();
    let first = words.first().map(String::as_str).unwrap_or_default();
    if words.is_empty() || first == "export" {
        return Ok(());
    }
    if first == "curl" && line.contains("/lambda-url/slack-counter/") {
        let text = json(output)?["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let counted = ["hello: ", ", local: ", ", world: "]
            .iter()
            .all(|w| text.contains(w));
        return if counted {
            Ok(())
        } else {
            Err(format!("the words are not counted: {output}"))
        };
    }
    if line.contains("cargo lambda invoke") {
        let answer = json(output)?;
        let function = [
            "slack-counter",
            "sns-multiplier",
            "sns-logger",
            "slack-replier",
            "s3-fanout",
            "s3-copier",
        ]
        .into_iter()
        .find(|f| words.iter().any(|w| w == f))
        .ok_or("the invoke names no function")?;
        let good = match function {
            "slack-counter" => {
                answer["statusCode"] == 200 && {
                    let body = json(answer["body"].as_str().unwrap_or_default())?;
                    body["text"].is_string() || body["challenge"].is_string()
                }
            }
            "sns-multiplier" | "slack-replier" => {
                answer["batchItemFailures"] == serde_json::json!([])
            }
            // Copy jobs, or an S3 Batch Operations invocation: every task succeeded.
            "s3-copier" => {
                answer["batchItemFailures"] == serde_json::json!([])
                    || answer["results"].as_array().is_some_and(|results| {
                        !results.is_empty()
                            && results.iter().all(|r| r["resultCode"] == "Succeeded")
                    })
            }
            "sns-logger" => answer.is_null(),
            // A listing run, listed to the end; or an inventory run, its data files handed on.
            _ => {
                answer["listed"].as_u64().is_some_and(|n| n > 0) && answer["complete"] == true
                    || answer["data_files"].as_u64().is_some_and(|n| n > 0)
            }
        };
        return if good {
            Ok(())
        } else {
            Err(format!("{function} answered {answer}"))
        };
    }
    if first == "aws" {
        let op = words.get(1..3).map(|w| w.join(" ")).unwrap_or_default();
        let listed = match op.as_str() {
            "dynamodb list-tables" => {
                let answer = json(output)?;
                local.tables.iter().all(|t| {
                    answer["TableNames"]
                        .as_array()
                        .is_some_and(|n| n.contains(&Value::from(t.as_str())))
                })
            }
            "dynamodb scan" => json(output)?["Items"].is_array(),
            "sns list-topics" => json(output)?["Topics"]
                .as_array()
                .is_some_and(|t| !t.is_empty()),
            "sqs list-queues" => json(output)?["QueueUrls"]
                .as_array()
                .is_some_and(|q| !q.is_empty()),
            _ if op.starts_with("s3 ls") => {
                !line.contains(local.source_bucket)
                    || output.contains("photos/2016/12/13/sunrise.jpg")
            }
            _ => {
                return Err(format!(
                    "no check for `aws {op}`: add one to documented_commands.rs"
                ))
            }
        };
        return if listed {
            Ok(())
        } else {
            Err(format!(
                "`aws {op}` does not list what the stack created: {output}"
            ))
        };
    }
    if first.ends_with("/s3-copy") {
        let summary = json(output.lines().last().unwrap_or_default())?;
        return if summary["failed"] == 0 && summary["listed"].as_u64().is_some_and(|n| n > 0) {
            Ok(())
        } else {
            Err(format!("s3-copy's summary: {summary}"))
        };
    }
    if first.ends_with("/fanout-smoke") {
        return if output.contains("smoke test passed") {
            Ok(())
        } else {
            Err(format!("the smoke test did not pass: {output}"))
        };
    }
    Err(format!(
        "no check for this command's answer: add one to documented_commands.rs ({first})"
    ))
}

/// Runs a script and checks each answer; its problems, each with its place.
fn run_and_check(root: &Path, local: &Local, place: &str, lines: &[String]) -> Vec<String> {
    let ran = run_script(root, lines);
    let mut problems = Vec::new();
    for (line, output) in &ran.steps {
        if ran.failed.as_ref().is_some_and(|(l, _)| l == line) {
            break;
        }
        if let Err(err) = check_answer(local, line, output) {
            problems.push(format!("{place}: `{line}`: {err}"));
        }
    }
    if let Some((line, output)) = ran.failed {
        problems.push(format!("{place}: `{line}` failed:\n{}", output.trim()));
    }
    problems
}

/// The sections of `make up`'s usage: each heading (a line ending in `:`) with its commands
/// (the indented lines under it), from the first heading after the addresses.
fn usage_sections(usage: &str) -> Vec<(String, Vec<String>)> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in usage.lines() {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with(' ') {
            if line.ends_with(':') {
                sections.push((line.to_owned(), Vec::new()));
            }
        } else if let Some((_, commands)) = sections.last_mut() {
            commands.push(line.trim().to_owned());
        }
    }
    sections
}

fn port_of(usage: &str, label: &str) -> Option<String> {
    let line = usage.lines().find(|l| l.trim_start().starts_with(label))?;
    Some(
        line.rsplit(':')
            .next()?
            .trim()
            .trim_end_matches('/')
            .to_owned(),
    )
}

#[test]
fn every_documented_local_command_works_as_written() {
    let root = workspace_root();
    let programs = check_prerequisites(&root);
    assert!(
        root.join(".venv-aws/bin/aws").exists(),
        ".venv-aws/bin/aws is missing: run `make aws-cli`"
    );
    let (me, began) = become_subreaper();

    // As `make demo`'s test does: the output goes to a file, not a pipe.
    let log = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fanout-local-up-{me}.log"));
    let file = std::fs::File::create(&log).expect("creating the log file");
    let mut up = as_from_a_shell(Command::new(env!("CARGO_BIN_EXE_fanout-local")), &root)
        .arg("up")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("a second handle on the log"))
        .stderr(file)
        .spawn()
        .expect("starting fanout-local up");

    let started = Instant::now();
    let usage = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // The contract: one line once everything is ready, after the usage.
        let ready = text.lines().any(|l| {
            l.starts_with("fanout-local ready: slack=http://127.0.0.1:")
                && l.contains("/lambda-url/slack-counter/ endpoint=http://127.0.0.1:")
        });
        if let Some(end) = text.find(USAGE_END).filter(|_| ready) {
            let start = text.find("fanout is running locally").unwrap_or(0).min(end);
            break Some(text[start..end].to_owned());
        }
        if up.try_wait().ok().flatten().is_some() || started.elapsed() > Duration::from_secs(600) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    let problems = match &usage {
        None => vec!["fanout-local up did not print its usage".to_owned()],
        Some(usage) => run_everything(&root, usage),
    };

    let _ = kill(Pid::from_raw(up.id() as i32), Signal::SIGTERM);
    let stopping = Instant::now();
    let stopped = loop {
        match up.try_wait() {
            Ok(Some(status)) => break Some(status),
            _ if stopping.elapsed() > Duration::from_secs(60) => break None,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    let survivors = survivors(me, began, &root, &programs);
    end(&survivors);
    let _ = up.kill();
    let _ = up.wait();
    let transcript = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);

    assert!(
        problems.is_empty(),
        "\n{}\n\nfanout-local up printed:\n{transcript}",
        problems.join("\n\n")
    );
    assert!(
        stopped.is_some_and(|s| s.success()),
        "fanout-local up did not stop cleanly on SIGTERM ({stopped:?}):\n{transcript}"
    );
    assert!(
        survivors.is_empty(),
        "processes were left running: {:?}",
        survivors.iter().map(|p| &p.command).collect::<Vec<_>>()
    );
    let _ = std::io::stderr().flush();
}

/// Runs every `local-stack` block and every section of the usage against the running stack.
fn run_everything(root: &Path, usage: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let (Some(port), Some(moto_port)) = (
        port_of(usage, "Lambda (cargo lambda):"),
        port_of(usage, "AWS emulator (moto):"),
    ) else {
        return vec![format!(
            "the usage does not give the stack's ports:\n{usage}"
        )];
    };
    let values = BTreeMap::from([("port", port), ("moto port", moto_port)]);
    let local = Local {
        tables: vec!["WordsTable".into(), "RunsTable".into()],
        source_bucket: "fanout-local-source",
    };
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_fanout-local"))
        .parent()
        .expect("binaries live in a directory")
        .to_owned();
    let mut ran = 0;
    for block in all_blocks(root) {
        if block.kind != Some(Kind::LocalStack) {
            continue;
        }
        let text = match fill(&block.text, Some(&values)) {
            Ok(text) => text,
            Err(err) => {
                problems.push(format!("{}: {err}", block.place));
                continue;
            }
        };
        let lines: Vec<String> = logical_lines(&text)
            .iter()
            .map(|l| without_cargo_run(l, &bin_dir))
            .collect();
        problems.extend(run_and_check(root, &local, &block.place, &lines));
        ran += 1;
    }
    if ran < 3 {
        problems.push(format!("only {ran} local-stack blocks were found to run"));
    }
    let sections = usage_sections(usage);
    if sections.len() < 3 {
        problems.push(format!(
            "the usage has {} sections of commands",
            sections.len()
        ));
    }
    for (heading, lines) in sections {
        problems.extend(run_and_check(
            root,
            &local,
            &format!("make up's \"{heading}\""),
            &lines,
        ));
    }
    problems
}
