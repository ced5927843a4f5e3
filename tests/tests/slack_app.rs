//! slack/manifest.yaml and the code agree: every event the app subscribes is one the counter
//! handles (and counts), every scope is one a Web API call or a subscribed event needs and none
//! is missing, the slash command is the one the help names, and the request URLs are the
//! placeholders docs/slack.md tells the user to replace.

use std::collections::BTreeSet;

use fanout_tests::workspace_root;
use fanout_words_core::command::SLASH_COMMAND;
use fanout_words_core::slack::{parse, RequestKind, BOT_EVENTS};
use serde_yaml::Value;

fn manifest() -> Value {
    let path = workspace_root().join("slack/manifest.yaml");
    let text = std::fs::read_to_string(&path).expect("slack/manifest.yaml");
    serde_yaml::from_str(&text).expect("the manifest is YAML")
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_sequence()
        .expect("a list")
        .iter()
        .map(|v| v.as_str().expect("a string").to_owned())
        .collect()
}

#[test]
fn every_subscribed_event_is_handled_and_counted() {
    let manifest = manifest();
    let subscribed = strings(&manifest["settings"]["event_subscriptions"]["bot_events"]);
    let handled: BTreeSet<String> = BOT_EVENTS.iter().map(|(e, _)| e.to_string()).collect();
    assert_eq!(subscribed, handled);
    for event in &subscribed {
        // message.channels and message.groups deliver `message` events.
        let kind = event.split('.').next().unwrap();
        let body = format!(
            r#"{{"type":"event_callback","team_id":"T1","event":{{"type":"{kind}","user":"U1","channel":"C1","text":"<@UAPP> hello words","ts":"1.0"}}}}"#
        );
        let parsed = parse(Some("application/json"), body.as_bytes()).unwrap();
        assert!(
            matches!(parsed.kind, RequestKind::Message(_)),
            "{event}: {:?}",
            parsed.kind
        );
    }
}

#[test]
fn every_scope_is_used_and_none_is_missing() {
    let manifest = manifest();
    let granted = strings(&manifest["oauth_config"]["scopes"]["bot"]);
    let mut needed: BTreeSet<String> = BTreeSet::from(["commands".to_owned()]);
    needed.extend(BOT_EVENTS.iter().map(|(_, scope)| scope.to_string()));
    for (_, scopes) in fanout_slack_web::METHODS {
        needed.extend(scopes.iter().map(|s| s.to_string()));
    }
    assert_eq!(granted, needed);
    assert!(
        manifest["oauth_config"]["scopes"]["user"].is_null(),
        "no user scopes"
    );
}

#[test]
fn the_command_and_the_urls_are_the_documented_ones() {
    let manifest = manifest();
    let commands = manifest["features"]["slash_commands"]
        .as_sequence()
        .expect("slash_commands");
    assert_eq!(commands.len(), 1);
    assert_eq!(commands[0]["command"].as_str(), Some(SLASH_COMMAND));
    assert!(fanout_words_core::command::help_text().contains(SLASH_COMMAND));
    let placeholder = "https://REPLACE-WITH-YOUR-SlackUrl";
    assert_eq!(commands[0]["url"].as_str(), Some(placeholder));
    assert_eq!(
        manifest["settings"]["event_subscriptions"]["request_url"].as_str(),
        Some(placeholder)
    );
    let guide =
        std::fs::read_to_string(workspace_root().join("docs/slack.md")).expect("docs/slack.md");
    assert!(
        guide.contains("REPLACE-WITH-YOUR-SlackUrl"),
        "docs/slack.md says what to replace"
    );
    assert_eq!(
        manifest["settings"]["socket_mode_enabled"].as_bool(),
        Some(false)
    );
}
