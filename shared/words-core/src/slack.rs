//! Slack requests: verification (v0 signatures, legacy tokens) and parsing of the three kinds
//! fanout accepts: legacy outgoing webhooks and slash commands (forms), and the Events API (JSON).

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::message::{Source, MAX_MESSAGE_ID_BYTES};

/// How far a request's timestamp may be from now, in seconds (Slack's recommendation).
pub const MAX_CLOCK_SKEW_SECS: u64 = 5 * 60;

/// Why a request was refused as unauthenticated (HTTP 401).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("the counter has neither SLACK_SIGNING_SECRET nor SLACK_VERIFICATION_TOKEN configured, so it refuses every request")]
    NotConfigured,
    #[error(
        "the request is not signed: X-Slack-Signature or X-Slack-Request-Timestamp is missing"
    )]
    Unsigned,
    #[error("X-Slack-Request-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error(
        "X-Slack-Request-Timestamp is more than 5 minutes from now (a stale or replayed request)"
    )]
    StaleTimestamp,
    #[error("X-Slack-Signature does not match the request")]
    BadSignature,
    #[error("the verification token is missing")]
    MissingToken,
    #[error("the verification token does not match")]
    BadToken,
    #[error("an unsigned request is accepted with the token only as a form (an outgoing webhook or slash command); Slack signs Events API requests")]
    UnsignedJson,
}

/// Why a request could not be read (HTTP 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the request body is not valid UTF-8")]
    NotUtf8,
    #[error("the request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("the request body is not a Slack outgoing webhook, slash command or Events API payload: {0}")]
    Unrecognized(String),
    #[error("the request does not identify its message: it needs a channel and the message's ts (`event.channel` and `event.ts`, or `channel_id` and `timestamp`), or a slash command's `trigger_id`")]
    NoMessageId,
    #[error("the request's message id (team, channel and ts, or trigger_id) is {0} bytes long; Slack's are far shorter, and at most {MAX_MESSAGE_ID_BYTES} are accepted")]
    MessageIdTooLong(usize),
}

/// What a verified request proves, before or after parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// The signature matched: the request is authentic.
    Signed,
    /// No signing secret is configured: the parsed request's token must still be checked.
    TokenPending,
    /// Unsigned, accepted with a token ([`Verifier::accepting_unsigned_with_token`]): the
    /// token must be checked, and the request must be a form (a legacy outgoing webhook or
    /// slash command) — never an Events API payload, which Slack always signs.
    UnsignedForm,
}

/// Checks requests with Slack's signing secret or, failing that, the legacy verification token.
#[derive(Clone, Default)]
pub struct Verifier {
    signing_secret: Option<Vec<u8>>,
    token: Option<Vec<u8>>,
    /// With a signing secret too: a request that carries no signature at all (a legacy
    /// outgoing webhook, which Slack never signs) is checked by its token instead.
    unsigned_with_token: bool,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("unsigned_with_token", &self.unsigned_with_token)
            .finish()
    }
}

impl Verifier {
    pub fn new(signing_secret: Option<String>, token: Option<String>) -> Self {
        Verifier {
            signing_secret: signing_secret.map(String::into_bytes),
            token: token.map(String::into_bytes),
            unsigned_with_token: false,
        }
    }

    /// Where both a signing secret and a token are configured, whether a request with neither
    /// signature header is checked by its token (`SLACK_ACCEPT_UNSIGNED_WITH_TOKEN`): for a
    /// legacy outgoing webhook beside a signed Slack app. A request that carries a signature
    /// header is always checked by its signature, so a bad signature is never excused by a
    /// token. Off by default: the token is a static secret that every payload repeats.
    pub fn accepting_unsigned_with_token(mut self, accept: bool) -> Self {
        self.unsigned_with_token = accept;
        self
    }

    /// Whether any credential is configured; without one, every request is refused.
    pub fn is_configured(&self) -> bool {
        self.signing_secret.is_some() || self.token.is_some()
    }

    /// The first check, on the raw request. With a signing secret, the signature over
    /// `v0:{timestamp}:{body}` must match and the timestamp be within 5 minutes of `now`;
    /// unless the request has neither header and unsigned requests are accepted with the token.
    pub fn check_signature(
        &self,
        timestamp: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
        now: i64,
    ) -> Result<Verified, AuthError> {
        let Some(secret) = &self.signing_secret else {
            return if self.token.is_some() {
                Ok(Verified::TokenPending)
            } else {
                Err(AuthError::NotConfigured)
            };
        };
        let (Some(timestamp), Some(signature)) = (timestamp, signature) else {
            let unsigned = timestamp.is_none() && signature.is_none();
            return if unsigned && self.unsigned_with_token && self.token.is_some() {
                Ok(Verified::UnsignedForm)
            } else {
                Err(AuthError::Unsigned)
            };
        };
        let ts: i64 = timestamp
            .trim()
            .parse()
            .map_err(|_| AuthError::BadTimestamp)?;
        // abs_diff cannot overflow, whatever the two times (`now - ts` can: i64::MIN).
        if now.abs_diff(ts) > MAX_CLOCK_SKEW_SECS {
            return Err(AuthError::StaleTimestamp);
        }
        let expected = signature
            .trim()
            .strip_prefix("v0=")
            .and_then(|hex_digest| hex::decode(hex_digest).ok())
            .ok_or(AuthError::BadSignature)?;
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).map_err(|_| AuthError::BadSignature)?;
        mac.update(b"v0:");
        mac.update(timestamp.trim().as_bytes());
        mac.update(b":");
        mac.update(body);
        // verify_slice compares in constant time.
        mac.verify_slice(&expected)
            .map(|()| Verified::Signed)
            .map_err(|_| AuthError::BadSignature)
    }

    /// The second check, after parsing, for token-only configurations.
    pub fn check_token(&self, verified: Verified, token: Option<&str>) -> Result<(), AuthError> {
        match (verified, &self.token) {
            (Verified::Signed, _) => Ok(()),
            (Verified::TokenPending | Verified::UnsignedForm, None) => {
                Err(AuthError::NotConfigured)
            }
            (Verified::TokenPending | Verified::UnsignedForm, Some(expected)) => {
                let given = token.ok_or(AuthError::MissingToken)?;
                if bool::from(given.as_bytes().ct_eq(expected)) {
                    Ok(())
                } else {
                    Err(AuthError::BadToken)
                }
            }
        }
    }
}

/// Computes the `X-Slack-Signature` header value for a request, as Slack does. For clients and
/// tests that play Slack.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// A parsed Slack request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The legacy verification token the request carries, if any.
    pub token: Option<String>,
    pub kind: RequestKind,
}

impl ParsedRequest {
    /// The id of the message it carries, if it carries one to count.
    pub fn message_id(&self) -> Option<&str> {
        match &self.kind {
            RequestKind::Message(message) => Some(&message.message_id),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestKind {
    /// The Events API's handshake: answer with the challenge.
    UrlVerification { challenge: String },
    /// A message whose words are counted.
    Message(SlackMessage),
    /// Acknowledged and not counted: bot messages, edits, other event types.
    Ignored { reason: String },
}

/// The Events API subscriptions the counter handles, with the bot scope each needs (the app's
/// manifest, slack/manifest.yaml, subscribes to exactly these).
pub const BOT_EVENTS: &[(&str, &str)] = &[
    ("app_mention", "app_mentions:read"),
    ("message.channels", "channels:history"),
    ("message.groups", "groups:history"),
];

/// The message subtypes that carry someone's words, beside the plain message (no subtype): a
/// file shared with a comment, a thread reply also sent to the channel, a `/me` message. Every
/// other subtype (edits, deletions, joins, bot messages…) is acknowledged and not counted.
pub const COUNTED_SUBTYPES: &[&str] = &["file_share", "thread_broadcast", "me_message"];

/// A Slack message's identity: `team:channel:ts`, the same whichever way the message reached
/// us (an Events API `message` or `app_mention`, an outgoing webhook). Without a team the
/// segment stays empty (`:C456:1481660433.000004`): nothing is guessed.
pub fn message_id(team_id: Option<&str>, channel_id: &str, ts: &str) -> String {
    format!("{}:{channel_id}:{ts}", team_id.unwrap_or_default())
}

/// Refuses an id no store could key on; Slack's ids are a few dozen bytes.
fn bounded(message_id: String) -> Result<String, ParseError> {
    if message_id.len() > MAX_MESSAGE_ID_BYTES {
        return Err(ParseError::MessageIdTooLong(message_id.len()));
    }
    Ok(message_id)
}

/// A Slack message to count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackMessage {
    pub source: Source,
    /// The message itself, `team:channel:ts` ([`message_id`]); a slash command's `trigger_id`.
    pub message_id: String,
    pub team_id: Option<String>,
    pub channel_id: Option<String>,
    pub user_id: Option<String>,
    pub text: String,
    /// Said to the app: a slash command, or an app mention. Its text may be a command
    /// ([`crate::command`]).
    pub addressed: bool,
    /// Where a reply to an Events API message goes: the thread it is in (its `thread_ts`), or
    /// a new thread under it (its `ts`). `None` for the other sources, which answer inline.
    pub thread_ts: Option<String>,
    /// A slash command's `response_url`: where its answer goes when it comes later.
    pub response_url: Option<String>,
}

/// Whether the request is Slack's `ssl_check=1` (a form Slack sends to check a slash command's
/// certificate, to be answered with 200).
pub fn is_ssl_check(content_type: Option<&str>, body: &[u8]) -> bool {
    let form =
        content_type.is_none_or(|ct| ct.to_ascii_lowercase().contains("x-www-form-urlencoded"));
    form && serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .is_ok_and(|fields| fields.iter().any(|(k, v)| k == "ssl_check" && v == "1"))
}

/// Parses a request body. `content_type` decides between JSON and a form; without one, a body
/// that starts with `{` is JSON.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<ParsedRequest, ParseError> {
    let body = std::str::from_utf8(body).map_err(|_| ParseError::NotUtf8)?;
    let json = match content_type.map(|ct| ct.to_ascii_lowercase()) {
        Some(ct) if ct.contains("json") => true,
        Some(ct) if ct.contains("x-www-form-urlencoded") => false,
        _ => body.trim_start().starts_with('{'),
    };
    if json {
        parse_events_api(body)
    } else {
        parse_form(body)
    }
}

fn parse_form(body: &str) -> Result<ParsedRequest, ParseError> {
    let fields: Vec<(String, String)> =
        serde_urlencoded::from_str(body).map_err(|e| ParseError::Unrecognized(e.to_string()))?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .filter(|value| !value.is_empty())
    };
    let source = if field("command").is_some() {
        Source::SlashCommand
    } else if field("trigger_word").is_some() || field("timestamp").is_some() {
        Source::OutgoingWebhook
    } else {
        return Err(ParseError::Unrecognized(
            "a form needs `command` (slash command) or `timestamp`/`trigger_word` (outgoing webhook)".into(),
        ));
    };
    // A bot's post, such as this app's own reply, would otherwise trigger the webhook again.
    if field("bot_id").is_some() {
        return Ok(ParsedRequest {
            token: field("token"),
            kind: RequestKind::Ignored {
                reason: "message from a bot".into(),
            },
        });
    }
    let text = fields
        .iter()
        .find(|(key, _)| key == "text")
        .map(|(_, value)| value.clone())
        .ok_or_else(|| ParseError::Unrecognized("the form has no `text` field".into()))?;
    let message_id = match (source, field("channel_id"), field("timestamp")) {
        (Source::OutgoingWebhook, Some(channel), Some(ts)) => {
            message_id(field("team_id").as_deref(), &channel, &ts)
        }
        (Source::SlashCommand, _, _) => field("trigger_id").ok_or(ParseError::NoMessageId)?,
        _ => return Err(ParseError::NoMessageId),
    };
    let message_id = bounded(message_id)?;
    Ok(ParsedRequest {
        token: field("token"),
        kind: RequestKind::Message(SlackMessage {
            source,
            message_id,
            team_id: field("team_id"),
            channel_id: field("channel_id"),
            user_id: field("user_id"),
            text,
            addressed: source == Source::SlashCommand,
            thread_ts: None,
            response_url: field("response_url").filter(|_| source == Source::SlashCommand),
        }),
    })
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    token: Option<String>,
    challenge: Option<String>,
    team_id: Option<String>,
    event: Option<Event>,
    /// Who the app is in the workspace: its bot user is among these.
    #[serde(default)]
    authorizations: Vec<Authorization>,
}

#[derive(Deserialize)]
struct Authorization {
    user_id: Option<String>,
    #[serde(default)]
    is_bot: bool,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    subtype: Option<String>,
    bot_id: Option<String>,
    channel: Option<String>,
    user: Option<String>,
    text: Option<String>,
    ts: Option<String>,
    thread_ts: Option<String>,
    team: Option<String>,
}

fn parse_events_api(body: &str) -> Result<ParsedRequest, ParseError> {
    let envelope: Envelope =
        serde_json::from_str(body).map_err(|e| ParseError::BadJson(e.to_string()))?;
    let token = envelope.token;
    let kind = match envelope.kind.as_str() {
        "url_verification" => RequestKind::UrlVerification {
            challenge: envelope.challenge.ok_or_else(|| {
                ParseError::Unrecognized("url_verification without a `challenge`".into())
            })?,
        },
        "event_callback" => {
            let event = envelope.event.ok_or_else(|| {
                ParseError::Unrecognized("event_callback without an `event`".into())
            })?;
            event_request(event, envelope.team_id, &envelope.authorizations)?
        }
        other => RequestKind::Ignored {
            reason: format!("Events API payload of type {other:?}"),
        },
    };
    Ok(ParsedRequest { token, kind })
}

fn event_request(
    event: Event,
    team_id: Option<String>,
    authorizations: &[Authorization],
) -> Result<RequestKind, ParseError> {
    let ignored = |reason: String| Ok(RequestKind::Ignored { reason });
    if event.kind != "message" && event.kind != "app_mention" {
        return ignored(format!("event of type {:?}", event.kind));
    }
    if let Some(subtype) = event
        .subtype
        .as_deref()
        .filter(|subtype| !COUNTED_SUBTYPES.contains(subtype))
    {
        return ignored(format!("message with subtype {subtype:?}"));
    }
    if event.bot_id.is_some() {
        return ignored("message from a bot".into());
    }
    let own = authorizations
        .iter()
        .any(|a| a.is_bot && a.user_id.is_some() && a.user_id == event.user);
    if own {
        return ignored("the app's own message".into());
    }
    // "@app top 3" reaches a channel's app twice: as a message and as an app_mention. The
    // mention answers it; the message is not counted.
    let text = event.text.unwrap_or_default();
    // The leading mentions, as `command::parse` skips them: a command to the app is one of them.
    let to_the_app = text
        .split_whitespace()
        .take_while(|w| w.starts_with("<@") && w.ends_with('>'))
        .any(|mention| {
            authorizations
                .iter()
                .filter_map(|a| a.user_id.as_deref().filter(|_| a.is_bot))
                .any(|bot| mention == format!("<@{bot}>"))
        });
    if event.kind == "message"
        && to_the_app
        && crate::command::parse(&text) != crate::command::Command::Text
    {
        return ignored("a command to the app, answered as its app_mention".into());
    }
    // The workspace the event was delivered for, as an outgoing webhook's team_id is.
    let team_id = team_id.or(event.team);
    let (Some(channel), Some(ts)) = (&event.channel, &event.ts) else {
        return Err(ParseError::NoMessageId);
    };
    let message_id = bounded(message_id(team_id.as_deref(), channel, ts))?;
    Ok(RequestKind::Message(SlackMessage {
        source: Source::EventsApi,
        message_id,
        team_id,
        channel_id: event.channel,
        user_id: event.user,
        text,
        addressed: event.kind == "app_mention",
        thread_ts: event.thread_ts.or(event.ts),
        response_url: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Slack's published example, from "Verifying requests from Slack".
    const EXAMPLE_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const EXAMPLE_TIMESTAMP: &str = "1531420618";
    const EXAMPLE_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const EXAMPLE_SIGNATURE: &str =
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    const EXAMPLE_NOW: i64 = 1531420618 + 10;

    fn signed() -> Verifier {
        Verifier::new(Some(EXAMPLE_SECRET.into()), None)
    }

    /// Also accepts unsigned requests with a token: signed ones must be checked the same.
    fn signed_or_token() -> Verifier {
        Verifier::new(Some(EXAMPLE_SECRET.into()), Some("tok".into()))
            .accepting_unsigned_with_token(true)
    }

    #[test]
    fn slacks_published_example_verifies() {
        assert_eq!(
            sign(EXAMPLE_SECRET, EXAMPLE_TIMESTAMP, EXAMPLE_BODY.as_bytes()),
            EXAMPLE_SIGNATURE
        );
        let verified = signed().check_signature(
            Some(EXAMPLE_TIMESTAMP),
            Some(EXAMPLE_SIGNATURE),
            EXAMPLE_BODY.as_bytes(),
            EXAMPLE_NOW,
        );
        assert_eq!(verified, Ok(Verified::Signed));
    }

    #[test]
    fn a_changed_byte_secret_or_signature_fails() {
        let v = signed();
        let mut body = EXAMPLE_BODY.as_bytes().to_vec();
        body[10] ^= 1;
        let check = |v: &Verifier, sig: &str, body: &[u8]| {
            v.check_signature(Some(EXAMPLE_TIMESTAMP), Some(sig), body, EXAMPLE_NOW)
        };
        assert_eq!(
            check(&v, EXAMPLE_SIGNATURE, &body),
            Err(AuthError::BadSignature)
        );
        let other = Verifier::new(Some("another-secret".into()), None);
        assert_eq!(
            check(&other, EXAMPLE_SIGNATURE, EXAMPLE_BODY.as_bytes()),
            Err(AuthError::BadSignature)
        );
        for bad in [
            "",
            "v0=",
            "v0=zz",
            "v1=a2114d57",
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        ] {
            assert_eq!(
                check(&v, bad, EXAMPLE_BODY.as_bytes()),
                Err(AuthError::BadSignature),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn stale_missing_and_garbage_timestamps_are_refused() {
        for v in [signed(), signed_or_token()] {
            stale_missing_and_garbage_timestamps_are_refused_by(&v);
        }
    }

    fn stale_missing_and_garbage_timestamps_are_refused_by(v: &Verifier) {
        let body = EXAMPLE_BODY.as_bytes();
        let stale = v.check_signature(
            Some(EXAMPLE_TIMESTAMP),
            Some(EXAMPLE_SIGNATURE),
            body,
            EXAMPLE_NOW + 301,
        );
        assert_eq!(stale, Err(AuthError::StaleTimestamp));
        let future = v.check_signature(
            Some(EXAMPLE_TIMESTAMP),
            Some(EXAMPLE_SIGNATURE),
            body,
            1531420618 - 301,
        );
        assert_eq!(future, Err(AuthError::StaleTimestamp));
        assert_eq!(
            v.check_signature(None, Some(EXAMPLE_SIGNATURE), body, EXAMPLE_NOW),
            Err(AuthError::Unsigned)
        );
        assert_eq!(
            v.check_signature(Some(EXAMPLE_TIMESTAMP), None, body, EXAMPLE_NOW),
            Err(AuthError::Unsigned)
        );
        assert_eq!(
            v.check_signature(Some("soon"), Some(EXAMPLE_SIGNATURE), body, EXAMPLE_NOW),
            Err(AuthError::BadTimestamp)
        );
    }

    #[test]
    fn extreme_timestamps_are_refused_without_overflow() {
        let v = signed();
        let body = EXAMPLE_BODY.as_bytes();
        let check = |timestamp: &str, now: i64| {
            v.check_signature(Some(timestamp), Some(EXAMPLE_SIGNATURE), body, now)
        };
        let (min, max) = ("-9223372036854775808", "9223372036854775807");
        for now in [i64::MIN, -1, 0, EXAMPLE_NOW, i64::MAX] {
            for far in [min, max] {
                let near = far.parse::<i64>().unwrap().abs_diff(now) <= MAX_CLOCK_SKEW_SECS;
                let expected = if near {
                    AuthError::BadSignature
                } else {
                    AuthError::StaleTimestamp
                };
                assert_eq!(check(far, now), Err(expected), "{far} at {now}");
            }
            let huge = "9".repeat(10_000);
            for garbage in [
                "9223372036854775808",
                "-9223372036854775809",
                huge.as_str(),
                "",
                "1531420618.5",
                "١٥٣١٤٢٠٦١٨",
            ] {
                assert_eq!(
                    check(garbage, now),
                    Err(AuthError::BadTimestamp),
                    "{garbage} at {now}"
                );
            }
        }
    }

    #[test]
    fn token_check_is_exact() {
        let v = Verifier::new(None, Some("xyzz0WbapA4vBCDEFasx0q6G".into()));
        let pending = v.check_signature(None, None, b"", 0).unwrap();
        assert_eq!(pending, Verified::TokenPending);
        assert_eq!(
            v.check_token(pending, Some("xyzz0WbapA4vBCDEFasx0q6G")),
            Ok(())
        );
        assert_eq!(
            v.check_token(pending, Some("xyzz0WbapA4vBCDEFasx0q6g")),
            Err(AuthError::BadToken)
        );
        assert_eq!(
            v.check_token(pending, Some("xyzz0WbapA4vBCDEFasx0q6")),
            Err(AuthError::BadToken)
        );
        assert_eq!(v.check_token(pending, Some("")), Err(AuthError::BadToken));
        assert_eq!(v.check_token(pending, None), Err(AuthError::MissingToken));
    }

    #[test]
    fn with_a_secret_the_token_alone_is_not_enough() {
        let v = Verifier::new(Some(EXAMPLE_SECRET.into()), Some("tok".into()));
        assert_eq!(
            v.check_signature(None, None, b"token=tok", EXAMPLE_NOW),
            Err(AuthError::Unsigned)
        );
    }

    #[test]
    fn unsigned_requests_accepted_with_the_token_are_checked_by_it_and_signed_ones_by_signature() {
        let v = signed_or_token();
        let pending = v.check_signature(None, None, b"token=tok", EXAMPLE_NOW);
        assert_eq!(pending, Ok(Verified::UnsignedForm));
        assert_eq!(v.check_token(Verified::UnsignedForm, Some("tok")), Ok(()));
        assert_eq!(
            v.check_token(Verified::UnsignedForm, Some("tok2")),
            Err(AuthError::BadToken)
        );
        assert_eq!(
            v.check_token(Verified::UnsignedForm, None),
            Err(AuthError::MissingToken)
        );
        // A signature header present means the request is checked by its signature alone (the
        // half-signed and stale cases are in the tests above, for this verifier too).
        let body = EXAMPLE_BODY.as_bytes();
        assert_eq!(
            v.check_signature(Some(EXAMPLE_TIMESTAMP), Some("v0=00"), body, EXAMPLE_NOW),
            Err(AuthError::BadSignature)
        );
        assert_eq!(
            v.check_signature(
                Some(EXAMPLE_TIMESTAMP),
                Some(EXAMPLE_SIGNATURE),
                body,
                EXAMPLE_NOW
            ),
            Ok(Verified::Signed)
        );
        // Without a token to check there is nothing to accept an unsigned request with.
        let secret_only =
            Verifier::new(Some(EXAMPLE_SECRET.into()), None).accepting_unsigned_with_token(true);
        assert_eq!(
            secret_only.check_signature(None, None, b"token=tok", EXAMPLE_NOW),
            Err(AuthError::Unsigned)
        );
    }

    #[test]
    fn with_nothing_configured_everything_is_refused() {
        let v = Verifier::default();
        assert!(!v.is_configured());
        assert_eq!(
            v.check_signature(Some("1"), Some("v0=00"), b"", 1),
            Err(AuthError::NotConfigured)
        );
        assert_eq!(
            v.check_token(Verified::TokenPending, Some("x")),
            Err(AuthError::NotConfigured)
        );
    }

    #[test]
    fn parses_slacks_example_slash_command() {
        let parsed = parse(
            Some("application/x-www-form-urlencoded"),
            EXAMPLE_BODY.as_bytes(),
        )
        .unwrap();
        assert_eq!(parsed.token.as_deref(), Some("xyzz0WbapA4vBCDEFasx0q6G"));
        let RequestKind::Message(message) = parsed.kind else {
            panic!("not a message")
        };
        assert_eq!(message.source, Source::SlashCommand);
        assert_eq!(
            message.message_id,
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        assert_eq!(message.text, "");
        assert_eq!(message.channel_id.as_deref(), Some("G8PSS9T3V"));
    }

    #[test]
    fn parses_an_outgoing_webhook() {
        let body = "token=t&team_id=T1&team_domain=d&channel_id=C1&channel_name=general&timestamp=1481660433.000004&user_id=U1&user_name=bob&text=awsadvent+some+words&trigger_word=awsadvent";
        let parsed = parse(None, body.as_bytes()).unwrap();
        let RequestKind::Message(message) = parsed.kind else {
            panic!("not a message")
        };
        assert_eq!(message.source, Source::OutgoingWebhook);
        assert_eq!(message.message_id, "T1:C1:1481660433.000004");
        assert_eq!(message.text, "awsadvent some words");
        assert_eq!(message.user_id.as_deref(), Some("U1"));
    }

    #[test]
    fn parses_events_api_payloads() {
        let verification = r#"{"token":"t","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        assert_eq!(
            parse(Some("application/json"), verification.as_bytes())
                .unwrap()
                .kind,
            RequestKind::UrlVerification {
                challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P".into()
            }
        );
        let message = r#"{"token":"t","team_id":"T1","type":"event_callback","event_id":"Ev1","event":{"type":"message","channel":"C1","user":"U1","text":"Hello world","ts":"1.2"}}"#;
        let RequestKind::Message(m) = parse(None, message.as_bytes()).unwrap().kind else {
            panic!()
        };
        assert_eq!(
            (m.message_id.as_str(), m.text.as_str(), m.source),
            ("T1:C1:1.2", "Hello world", Source::EventsApi)
        );
        let mention = r#"{"type":"event_callback","event":{"type":"app_mention","channel":"C1","user":"U1","text":"<@U0> hi","ts":"9.9"}}"#;
        let RequestKind::Message(m) = parse(None, mention.as_bytes()).unwrap().kind else {
            panic!()
        };
        assert_eq!(m.message_id, ":C1:9.9", "no team: an empty segment");
    }

    fn message_of(content_type: Option<&str>, body: &str) -> SlackMessage {
        match parse(content_type, body.as_bytes()).map(|parsed| parsed.kind) {
            Ok(RequestKind::Message(message)) => message,
            other => panic!("not a message: {other:?}: {body}"),
        }
    }

    #[test]
    fn one_slack_message_has_one_id_whichever_way_it_arrives() {
        let event = |kind: &str, event_id: &str| {
            format!(
                r#"{{"team_id":"T123","type":"event_callback","event_id":"{event_id}","event":{{"type":"{kind}","channel":"C456","user":"U1","text":"<@U0> hi","ts":"1481660433.000004","event_ts":"1481660433.000004"}}}}"#
            )
        };
        let webhook = "token=t&team_id=T123&channel_id=C456&timestamp=1481660433.000004&user_id=U1&text=hi&trigger_word=hi";
        let ids = [
            message_of(None, &event("message", "Ev1")).message_id,
            message_of(None, &event("app_mention", "Ev2")).message_id,
            message_of(None, webhook).message_id,
        ];
        assert_eq!(ids, ["T123:C456:1481660433.000004"; 3]);
        // The event's own team stands in for a missing envelope team_id.
        let own_team = r#"{"type":"event_callback","event":{"type":"message","team":"T9","channel":"C1","text":"x","ts":"1.0"}}"#;
        assert_eq!(message_of(None, own_team).message_id, "T9:C1:1.0");
        let no_team = "token=t&channel_id=C456&timestamp=1.5&text=hi&trigger_word=hi";
        assert_eq!(message_of(None, no_team).message_id, ":C456:1.5");
        assert_eq!(message_id(None, "C", "1.0"), ":C:1.0");
    }

    #[test]
    fn a_slash_command_is_keyed_on_its_trigger_id() {
        let body = "token=t&team_id=T1&channel_id=C1&command=%2Fcount&text=hi&trigger_id=13345224609.738474920.8088930838d88f008e0&timestamp=1.0";
        assert_eq!(
            message_of(None, body).message_id,
            "13345224609.738474920.8088930838d88f008e0"
        );
    }

    #[test]
    fn counted_subtypes_are_counted() {
        for subtype in COUNTED_SUBTYPES {
            let body = format!(
                r#"{{"team_id":"T1","type":"event_callback","event":{{"type":"message","subtype":"{subtype}","channel":"C1","user":"U1","text":"words here","ts":"5.0"}}}}"#
            );
            let message = message_of(Some("application/json"), &body);
            assert_eq!(
                (message.message_id.as_str(), message.text.as_str()),
                ("T1:C1:5.0", "words here"),
                "{subtype}"
            );
        }
        assert_eq!(
            COUNTED_SUBTYPES,
            ["file_share", "thread_broadcast", "me_message"]
        );
    }

    #[test]
    fn bots_and_the_apps_own_messages_are_never_counted() {
        for body in [
            // A bot's message of a counted subtype.
            r#"{"type":"event_callback","event":{"type":"message","subtype":"file_share","bot_id":"B1","channel":"C","text":"beep","ts":"1"}}"#,
            r#"{"type":"event_callback","event":{"type":"app_mention","bot_id":"B1","channel":"C","text":"<@U0> beep","ts":"1"}}"#,
            // The app's own bot user, even without a bot_id.
            r#"{"type":"event_callback","authorizations":[{"user_id":"UAPP","is_bot":true}],"event":{"type":"message","user":"UAPP","channel":"C","text":"my reply","ts":"1"}}"#,
            // An outgoing webhook fired by a bot's post (the app's reply, say).
            "token=t&team_id=T1&channel_id=C1&timestamp=1.0&user_id=USLACKBOT&bot_id=B1&text=awsadvent+reply&trigger_word=awsadvent",
        ] {
            assert!(
                matches!(
                    parse(None, body.as_bytes()).unwrap().kind,
                    RequestKind::Ignored { .. }
                ),
                "{body}"
            );
        }
        // A person the app is installed for is counted.
        let person = r#"{"type":"event_callback","authorizations":[{"user_id":"UAPP","is_bot":true}],"event":{"type":"message","user":"U1","channel":"C","text":"hi","ts":"1"}}"#;
        assert_eq!(message_of(None, person).message_id, ":C:1");
    }

    #[test]
    fn commands_to_the_app_are_answered_once_as_its_mention() {
        let event = |kind: &str, text: &str| {
            format!(
                r#"{{"type":"event_callback","authorizations":[{{"user_id":"UAPP","is_bot":true}}],"event":{{"type":"{kind}","user":"U1","channel":"C","text":"{text}","ts":"1"}}}}"#
            )
        };
        // The mention is addressed to the app; the same message as a `message` is not counted.
        let mention = message_of(None, &event("app_mention", "<@UAPP> top 3"));
        assert!(mention.addressed);
        assert!(matches!(
            parse(None, event("message", "<@UAPP> top 3").as_bytes())
                .unwrap()
                .kind,
            RequestKind::Ignored { .. }
        ));
        // Words said to the app, or a command word mid-sentence, are counted as ever.
        for text in [
            "<@UAPP> nice words",
            "top of the morning <@UAPP>",
            "<@UOTHER> top 3",
        ] {
            let message = message_of(None, &event("message", text));
            assert!(!message.addressed, "{text}");
        }
        let slash = message_of(
            None,
            "token=t&team_id=T1&channel_id=C1&user_id=U1&command=%2Fwordcount&text=top&trigger_id=1.2.3",
        );
        assert!(slash.addressed);
        let webhook = message_of(
            None,
            "token=t&channel_id=C1&timestamp=1.0&text=top&trigger_word=top",
        );
        assert!(!webhook.addressed);
    }

    #[test]
    fn ssl_checks_are_recognised_and_nothing_else_is() {
        let form = Some("application/x-www-form-urlencoded");
        assert!(is_ssl_check(form, b"ssl_check=1&token=abc"));
        assert!(is_ssl_check(None, b"token=abc&ssl_check=1"));
        for (content_type, body) in [
            (form, &b"ssl_check=0&token=abc"[..]),
            (form, b"token=abc&text=ssl_check%3D1"),
            (Some("application/json"), b"ssl_check=1"),
            (form, b"\xff\xfe"),
        ] {
            assert!(!is_ssl_check(content_type, body), "{body:?}");
        }
    }

    #[test]
    fn an_id_no_store_could_key_on_is_refused() {
        let long_ts = "1".repeat(MAX_MESSAGE_ID_BYTES);
        let body = format!(
            r#"{{"team_id":"T1","type":"event_callback","event":{{"type":"message","channel":"C1","text":"hi","ts":"{long_ts}"}}}}"#
        );
        assert_eq!(
            parse(None, body.as_bytes()),
            Err(ParseError::MessageIdTooLong(MAX_MESSAGE_ID_BYTES + 6))
        );
        let trigger = "x".repeat(MAX_MESSAGE_ID_BYTES + 1);
        let body = format!("command=%2Fcount&text=hi&trigger_id={trigger}");
        assert!(matches!(
            parse(None, body.as_bytes()),
            Err(ParseError::MessageIdTooLong(_))
        ));
    }

    #[test]
    fn bot_messages_subtypes_and_other_events_are_ignored() {
        for body in [
            r#"{"type":"event_callback","event_id":"E","event":{"type":"message","subtype":"message_changed","channel":"C","ts":"1"}}"#,
            r#"{"type":"event_callback","event_id":"E","event":{"type":"message","subtype":"message_deleted","channel":"C","ts":"1","deleted_ts":"0.5"}}"#,
            r#"{"type":"event_callback","event_id":"E","event":{"type":"message","subtype":"channel_join","user":"U1","channel":"C","text":"<@U1> has joined the channel","ts":"1"}}"#,
            r#"{"type":"event_callback","event_id":"E","event":{"type":"message","subtype":"bot_message","channel":"C","text":"beep","ts":"1"}}"#,
            r#"{"type":"event_callback","event_id":"E","event":{"type":"message","bot_id":"B1","text":"beep","channel":"C","ts":"1"}}"#,
            r#"{"type":"event_callback","event_id":"E","event":{"type":"reaction_added"}}"#,
            r#"{"type":"app_rate_limited","minute_rate_limited":1}"#,
        ] {
            assert!(
                matches!(
                    parse(None, body.as_bytes()).unwrap().kind,
                    RequestKind::Ignored { .. }
                ),
                "{body}"
            );
        }
    }

    #[test]
    fn malformed_bodies_are_clear_errors() {
        assert_eq!(parse(None, &[0xff, 0xfe, b'a']), Err(ParseError::NotUtf8));
        assert!(matches!(
            parse(Some("application/json"), b"{not json"),
            Err(ParseError::BadJson(_))
        ));
        assert!(matches!(
            parse(Some("application/json"), b"[1,2]"),
            Err(ParseError::BadJson(_))
        ));
        assert!(matches!(
            parse(None, b"hello=world"),
            Err(ParseError::Unrecognized(_))
        ));
        assert!(matches!(
            parse(None, b"command=%2Fcount"),
            Err(ParseError::Unrecognized(_))
        ));
        assert_eq!(
            parse(None, b"command=%2Fcount&text=hi"),
            Err(ParseError::NoMessageId)
        );
        assert!(matches!(
            parse(None, br#"{"type":"event_callback"}"#),
            Err(ParseError::Unrecognized(_))
        ));
        assert_eq!(
            parse(
                None,
                br#"{"type":"event_callback","event":{"type":"message","text":"hi"}}"#
            ),
            Err(ParseError::NoMessageId)
        );
    }
}
