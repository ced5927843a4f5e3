//! What the local stack sets where AWS would have the deployer's choices: the template's
//! parameters and the Slack credentials kept in SSM.

/// Template parameters as the local stack sets them.
pub const LOCAL_PARAMETERS: &[(&str, &str)] = &[
    (
        "SlackSigningSecretParameter",
        "/fanout/local/slack-signing-secret",
    ),
    (
        "SlackVerificationTokenParameter",
        "/fanout/local/slack-verification-token",
    ),
    // The samples in events/ are legacy outgoing webhooks and slash commands with the token and
    // no signature (a fixed timestamp would be stale); signed requests are still checked by
    // their signature (docs/local-stack.md).
    ("SlackAcceptUnsignedWithToken", "true"),
    ("SlackBotTokenParameter", "/fanout/local/slack-bot-token"),
    ("SourceBucket", "fanout-local-source"),
    ("DestinationBucket", "fanout-local-backup"),
    ("CopyMultipartThreshold", "8MiB"),
    ("CopyPartSize", "5MiB"),
];

/// The Slack credentials stored in the local SSM parameters.
pub const SIGNING_SECRET: &str = "local-signing-secret";
pub const VERIFICATION_TOKEN: &str = "local-verification-token";
/// The bot token the stand-in Slack Web API accepts (stored in SSM like the others).
pub const BOT_TOKEN: &str = "xoxb-local-bot-token";

/// The objects `make up` puts in the source bucket, as `(key, size)`, so that the s3-fanout
/// samples in events/ list something and the s3-copier samples copy an object that exists (their
/// ETag is the MD5 of `sample_bytes` of its size).
pub const SAMPLE_OBJECTS: &[(&str, usize)] = &[
    ("photos/2016/12/13/sunrise.jpg", 1 << 20),
    ("photos/2016/12/13/harbour.jpg", 64 << 10),
    ("photos/2016/12/14/lighthouse.jpg", 256 << 10),
];

/// The content of a sample object of `size` bytes (the demo's objects are made the same way).
pub fn sample_bytes(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}
