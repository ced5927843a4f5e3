//! Reading typed configuration from environment variables.
//!
//! Every function reads its configuration once, at init, through [`Vars`]. A missing or invalid
//! variable becomes a [`ConfigError`] that names the variable and says what it should hold.

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

/// A configuration variable that is missing or does not hold what it should.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: it should hold {expected}")]
    Missing {
        var: &'static str,
        expected: &'static str,
    },
    #[error("{var} is invalid ({value:?}: {reason}): it should hold {expected}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
        expected: &'static str,
    },
    /// A secret given both as a value and as the name of a parameter holding it.
    #[error("{var} and {param_var} are both set: set {var} to the value, or {param_var} to the name of an SSM SecureString parameter holding it, not both")]
    ValueAndParameter {
        var: &'static str,
        param_var: &'static str,
    },
}

impl ConfigError {
    /// The variable the error is about, if it is about one.
    pub fn var(&self) -> Option<&'static str> {
        match self {
            ConfigError::Missing { var, .. }
            | ConfigError::Invalid { var, .. }
            | ConfigError::ValueAndParameter { var, .. } => Some(var),
        }
    }
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A source of configuration variables: the process environment, or a fixed map in tests.
pub struct Vars {
    lookup: Lookup,
}

impl Vars {
    /// The process environment.
    pub fn process() -> Self {
        Vars {
            lookup: Box::new(|name| std::env::var(name).ok()),
        }
    }

    /// A fixed set of variables, for tests.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Vars {
            lookup: Box::new(move |name| map.get(name).cloned()),
        }
    }

    /// These variables, telling `observe` the name of every variable looked up, set or not: tests
    /// check with it that a configuration reads only the variables its function declares.
    pub fn observed(self, observe: impl Fn(&str) + Send + Sync + 'static) -> Self {
        let lookup = self.lookup;
        Vars {
            lookup: Box::new(move |name| {
                observe(name);
                lookup(name)
            }),
        }
    }

    /// The variable's value, if it is set and not blank.
    pub fn optional(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|value| !value.trim().is_empty())
    }

    /// The variable's value; an error if it is unset or blank.
    pub fn required(
        &self,
        var: &'static str,
        expected: &'static str,
    ) -> Result<String, ConfigError> {
        self.optional(var)
            .ok_or(ConfigError::Missing { var, expected })
    }

    /// The variable parsed as `T`, or `default` when it is unset or blank.
    pub fn parsed_or<T>(
        &self,
        var: &'static str,
        default: T,
        expected: &'static str,
    ) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: Display,
    {
        match self.optional(var) {
            None => Ok(default),
            Some(value) => parse(var, &value, expected, |v| v.trim().parse::<T>()),
        }
    }

    /// The variable parsed with `parser`, or `None` when it is unset or blank.
    pub fn parsed_with<T, E: Display>(
        &self,
        var: &'static str,
        expected: &'static str,
        parser: impl Fn(&str) -> Result<T, E>,
    ) -> Result<Option<T>, ConfigError> {
        self.optional(var)
            .map(|value| parse(var, &value, expected, parser))
            .transpose()
    }
}

fn parse<T, E: Display>(
    var: &'static str,
    value: &str,
    expected: &'static str,
    parser: impl Fn(&str) -> Result<T, E>,
) -> Result<T, ConfigError> {
    parser(value).map_err(|err| ConfigError::Invalid {
        var,
        value: value.to_owned(),
        reason: err.to_string(),
        expected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_names_the_missing_variable() {
        let vars = Vars::from_pairs([("OTHER", "x"), ("BLANK", "  ")]);
        let err = vars
            .required("WORDS_TABLE", "a DynamoDB table name")
            .unwrap_err();
        assert_eq!(err.var(), Some("WORDS_TABLE"));
        assert_eq!(
            err.to_string(),
            "WORDS_TABLE is not set: it should hold a DynamoDB table name"
        );
        assert!(
            vars.required("BLANK", "x").is_err(),
            "blank counts as unset"
        );
    }

    #[test]
    fn observed_vars_tell_every_lookup_and_answer_as_before() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let vars = Vars::from_pairs([("SET", "x")])
            .observed(move |name| log.lock().unwrap().push(name.to_owned()));
        assert_eq!(vars.optional("SET").as_deref(), Some("x"));
        assert!(vars.required("UNSET", "y").is_err());
        assert_eq!(*seen.lock().unwrap(), ["SET", "UNSET"]);
    }

    #[test]
    fn parsed_or_uses_the_default_and_rejects_garbage() {
        let vars = Vars::from_pairs([("MULTIPLIER", "ten"), ("GOOD", " 7 ")]);
        assert_eq!(vars.parsed_or("UNSET", 10_i64, "a number").unwrap(), 10);
        assert_eq!(vars.parsed_or("GOOD", 10_i64, "a number").unwrap(), 7);
        let err = vars
            .parsed_or("MULTIPLIER", 10_i64, "a whole number")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with("MULTIPLIER is invalid (\"ten\": "),
            "{text}"
        );
        assert!(text.ends_with("it should hold a whole number"), "{text}");
    }
}
