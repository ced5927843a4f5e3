//! The two classes of failure, which decide what happens to a message that failed.

/// Whether a failure can pass by trying again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// It never succeeds, however often it is tried (a malformed or invalid message): refuse
    /// it, dead-letter it at once, report it.
    Permanent,
    /// It may pass later (throttling, a 5xx, a timeout): retry with backoff.
    Transient,
}

impl FailureClass {
    /// The name logs carry in their `class` field.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureClass::Permanent => "permanent",
            FailureClass::Transient => "transient",
        }
    }
}
