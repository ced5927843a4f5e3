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
    ("SourceBucket", "fanout-local-source"),
    ("DestinationBucket", "fanout-local-backup"),
    ("CopyMultipartThreshold", "8MiB"),
    ("CopyPartSize", "5MiB"),
];

/// The Slack credentials stored in the local SSM parameters.
pub const SIGNING_SECRET: &str = "local-signing-secret";
pub const VERIFICATION_TOKEN: &str = "local-verification-token";
